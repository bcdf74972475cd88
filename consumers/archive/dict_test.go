package archive

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

// The dictionary numbers values in the order they first arrive, finds
// each again however large it grows, and starts over on reset — checked
// against a map, with values of every length (the empty one included),
// repeats in a row, and chunks after a reset that reuse its memory.
func TestPQDictionary_AgreesWithAMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var d pqDictionary
	for chunk, distinct := range []int{1, 3, 17, 1000, 70_000, 5} {
		d.reset()
		want := map[string]int32{}
		var order []string
		for n := range 4 * distinct {
			var s string
			switch {
			case n%7 == 3 && len(order) > 0:
				s = order[len(order)-1] // the value before, again
			default:
				if k := r.IntN(distinct); k > 0 { // 0 is the empty value
					s = strings.Repeat("-", k%20) + strconv.Itoa(k)
				}
			}
			i, ok := want[s]
			if !ok {
				i = int32(len(want))
				want[s] = i
			}
			order = append(order, s)
			if got := d.index(s); got != i {
				t.Fatalf("chunk %d: value %q is entry %d, want %d", chunk, s, got, i)
			}
		}
		if d.len() != len(want) {
			t.Fatalf("chunk %d: %d entries, want %d", chunk, d.len(), len(want))
		}
		for s, i := range want {
			if got := string(d.entry(i)); got != s {
				t.Fatalf("chunk %d: entry %d is %q, want %q", chunk, i, got, s)
			}
		}
		if 2*d.len() > len(d.slots) {
			t.Fatalf("chunk %d: %d entries in %d slots: more than half full", chunk, d.len(), len(d.slots))
		}
	}
	d.drop()
	if d.heldBytes() != 0 || d.index("x") != 0 || d.index("y") != 1 || d.index("x") != 0 {
		t.Fatal("a dropped dictionary does not start over")
	}
}

// The dictionary page is the entries PLAIN-encoded: a 4-byte length then
// the bytes, in entry order.
func TestPQDictionary_PlainPage(t *testing.T) {
	var d pqDictionary
	for _, s := range []string{"click", "", "impression", "click", "access"} {
		d.index(s)
	}
	want := []byte("\x05\x00\x00\x00click\x00\x00\x00\x00\x0a\x00\x00\x00impression\x06\x00\x00\x00access")
	if string(d.plain) != string(want) {
		t.Fatalf("page %q, want %q", d.plain, want)
	}
}

// BenchmarkPQDictionary_Loadgen looks up the values of the dictionary
// columns of the end-to-end benchmarks' traffic, row by row as the writer
// does, a dictionary a column; per row.
func BenchmarkPQDictionary_Loadgen(b *testing.B) {
	var cols [numColumns][]string
	for _, data := range loadgenEvents(b, 20_000) {
		e, err := event.Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		r := RowOf(&consumers.Record{Event: e, ShardID: testShard})
		for i, v := range []string{r.Type, r.UserID, r.SessionID, r.ItemID, r.App, r.Placement, r.Host, r.Method, r.Route, r.Cache, r.UserAgent, r.ShardID} {
			cols[i] = append(cols[i], v)
		}
	}
	rows := len(cols[0])
	b.Run("table", func(b *testing.B) {
		var d [numColumns]pqDictionary
		for b.Loop() {
			for c := range d {
				d[c].reset()
			}
			for r := range rows {
				for c := range 12 {
					d[c].index(cols[c][r])
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	})
	b.Run("map", func(b *testing.B) { // what it replaced
		var d [numColumns]map[string]int32
		for b.Loop() {
			for c := range d {
				if d[c] == nil {
					d[c] = map[string]int32{}
				}
				clear(d[c])
			}
			for r := range rows {
				for c := range 12 {
					if _, ok := d[c][cols[c][r]]; !ok {
						d[c][strings.Clone(cols[c][r])] = int32(len(d[c]))
					}
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	})
}
