package consumers

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/event"
)

func TestDedupWindow_SeesACopyWithinTheWindowOnly(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		maxAge    time.Duration
		maxIDs    int
		between   int           // other events between the original and its copy
		gap       time.Duration // arrival of the copy after the original
		wantDup   bool
		wantInWin int
	}{
		{"copy right after", time.Minute, 100, 0, 0, true, 1},
		{"copy after others", time.Minute, 100, 50, time.Second, true, 51},
		{"copy older than the window", time.Minute, 100, 0, 61 * time.Second, false, 1},
		{"copy past the id bound", time.Minute, 10, 10, time.Second, false, 10},
		{"copy at the id bound", time.Minute, 11, 10, time.Second, true, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewDedupWindow(tc.maxAge, tc.maxIDs)
			if w.Seen("orig", t0) {
				t.Fatal("first sight reported as seen")
			}
			for i := range tc.between {
				if w.Seen(fmt.Sprint("other-", i), t0.Add(time.Millisecond)) {
					t.Fatalf("distinct id %d reported as seen", i)
				}
			}
			if got := w.Seen("orig", t0.Add(tc.gap)); got != tc.wantDup {
				t.Fatalf("copy seen = %v, want %v", got, tc.wantDup)
			}
			if w.Len() != tc.wantInWin {
				t.Fatalf("window holds %d ids, want %d", w.Len(), tc.wantInWin)
			}
		})
	}
}

func TestDedupWindow_StaysBoundedOverALongRun(t *testing.T) {
	w := NewDedupWindow(time.Hour, 1000)
	t0 := time.Now()
	for i := range 100_000 {
		w.Seen(fmt.Sprint(i), t0)
	}
	if w.Len() != 1000 || w.ids.n != 1000 || len(w.ids.slots) > 1000*5/3+1 ||
		len(w.fifo.hashes.chunks) > 1000/queueChunk+2 || len(w.fifo.runs.chunks) > 1000/queueChunk+2 {
		t.Fatalf("window of %d ids, set of %d in %d slots, FIFO of %d chunks of hashes and %d of arrivals: not bounded",
			w.Len(), w.ids.n, len(w.ids.slots), len(w.fifo.hashes.chunks), len(w.fifo.runs.chunks))
	}
	// The last 1000 are still recognised, the one before is not.
	if !w.Seen("99999", t0) || !w.Seen("99000", t0) || w.Seen("98999", t0) {
		t.Fatal("window lost its most recent ids or kept an evicted one")
	}
}

func TestDedupWindow_MarksCopiesButNotBadRecordsOrEventsWithoutID(t *testing.T) {
	now := time.Now()
	rec := func(id string, err error) Record {
		return Record{Event: event.Event{ID: id}, Err: err, ArrivalTime: now}
	}
	rs := []Record{rec("a", nil), rec("b", nil), rec("a", nil), rec("", nil), rec("", nil), rec("b", errors.New("bad")), rec("b", nil)}
	w := NewDedupWindow(time.Minute, 100)
	if n := w.Mark(rs); n != 2 {
		t.Fatalf("marked %d, want 2", n)
	}
	want := []bool{false, false, true, false, false, false, true}
	for i, r := range rs {
		if r.Duplicate != want[i] {
			t.Fatalf("record %d Duplicate = %v, want %v", i, r.Duplicate, want[i])
		}
		if r.Applies() == (want[i] || r.Err != nil) {
			t.Fatalf("record %d Applies = %v", i, r.Applies())
		}
	}
	var nilw *DedupWindow
	if nilw.Mark(rs) != 0 || nilw.Seen("a", now) || NewDedupWindow(0, 10) != nil || NewDedupWindow(time.Minute, 0) != nil {
		t.Fatal("a disabled window must treat nothing as seen")
	}
}

func BenchmarkDedupWindow_Seen(b *testing.B) {
	w := NewDedupWindow(time.Minute, DefaultDedupMaxIDs)
	ids := make([]string, 1<<18) // more than the window holds: every lookup misses, inserts and evicts
	for i := range ids {
		ids[i] = fmt.Sprintf("01JD3%021d", i)
	}
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w.Seen(ids[i&(len(ids)-1)], now)
		i++
	}
}

// TestIDSet_AgainstAMap runs random adds, removes and lookups against a Go
// map, with hashes crowded onto a few home slots (long probe runs) and onto
// the table's last slots (runs that wrap), where a removal that shifts the
// wrong member back loses it.
func TestIDSet_AgainstAMap(t *testing.T) {
	for _, maxLen := range []int{1, 7, 1000, 5000} {
		t.Run(fmt.Sprint(maxLen), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(maxLen), 1))
			s := idSet{maxLen: maxLen}
			ref := map[uint64]bool{}
			var members []uint64
			hash := func() uint64 {
				switch rng.IntN(4) {
				case 0: // near the top: homes in the last slots, runs wrap
					return ^uint64(0) - rng.Uint64N(1<<54)
				case 1: // a handful of homes
					return uint64(rng.IntN(4))<<62 | rng.Uint64N(1<<40) | 1
				default:
					return rng.Uint64() | 1
				}
			}
			for step := range 40 * maxLen {
				switch op := rng.IntN(3); {
				case op == 0 && len(members) > 0:
					i := rng.IntN(len(members))
					h := members[i]
					members[i] = members[len(members)-1]
					members = members[:len(members)-1]
					delete(ref, h)
					s.remove(h)
				case len(members) < maxLen:
					h := hash()
					if ref[h] {
						continue
					}
					ref[h] = true
					members = append(members, h)
					s.add(h)
				}
				if h := hash(); s.has(h) != ref[h] {
					t.Fatalf("step %d: has(%x) = %v, want %v", step, h, s.has(h), ref[h])
				}
				if step%(maxLen/4+1) == 0 {
					if s.n != len(ref) {
						t.Fatalf("step %d: n = %d, want %d", step, s.n, len(ref))
					}
					for _, h := range members {
						if !s.has(h) {
							t.Fatalf("step %d: member %x lost", step, h)
						}
					}
				}
				if len(s.slots) > maxLen*5/3+1 && len(s.slots) > 1024 {
					t.Fatalf("%d slots for at most %d members", len(s.slots), maxLen)
				}
			}
			s.remove(hash()) // absent: a no-op
			if s.n != len(ref) {
				t.Fatalf("n = %d after removing an absent hash, want %d", s.n, len(ref))
			}
		})
	}
}

// TestDedupWindow_AgainstAReference holds the window to a plain one (a map
// of ids and a slice in arrival order) over ids that repeat, arrivals that
// jitter back and forth, and both bounds evicting.
func TestDedupWindow_AgainstAReference(t *testing.T) {
	for _, tc := range []struct {
		maxAge time.Duration
		maxIDs int
		late   int // ms: how much earlier than the latest an arrival may be
	}{{time.Second, 3000, 5}, {time.Minute, 500, 5}, {200 * time.Millisecond, 5000, 5}, {100 * time.Millisecond, 5000, 300}} {
		t.Run(fmt.Sprint(tc.maxAge, tc.maxIDs, tc.late), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.maxIDs), 2))
			w := NewDedupWindow(tc.maxAge, tc.maxIDs)
			type entry struct {
				id string
				at int64
			}
			var fifo []entry
			ids := map[string]bool{}
			var newest int64
			t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
			at := t0.UnixMilli()
			dups := 0
			for step := range 60_000 {
				at += int64(rng.IntN(3)) // ~1 ms apart
				arrival := at - int64(rng.IntN(tc.late))
				id := fmt.Sprint("e-", rng.IntN(8000))
				// The reference: evict by age, look up, evict by count, add.
				newest = max(newest, arrival)
				for len(fifo) > 0 && fifo[0].at < newest-tc.maxAge.Milliseconds() {
					delete(ids, fifo[0].id)
					fifo = fifo[1:]
				}
				want := ids[id]
				if !want {
					if len(fifo) >= tc.maxIDs {
						delete(ids, fifo[0].id)
						fifo = fifo[1:]
					}
					ids[id] = true
					fifo = append(fifo, entry{id, arrival})
				}
				if got := w.Seen(id, time.UnixMilli(arrival)); got != want {
					t.Fatalf("step %d: Seen(%s) = %v, want %v", step, id, got, want)
				}
				if w.Len() != len(fifo) {
					t.Fatalf("step %d: window holds %d, want %d", step, w.Len(), len(fifo))
				}
				if want {
					dups++
				}
			}
			if dups == 0 || dups == 60_000 {
				t.Fatalf("%d copies seen: the case tests nothing", dups)
			}
		})
	}
}

// BenchmarkDedupWindow_Memory fills the default window of one shard and
// reports the heap it holds per id, after as many again have passed
// through: ids arriving a millisecond apart (the most the arrival runs
// cost), and 30 to a millisecond (KPL aggregates, PutRecords batches).
func BenchmarkDedupWindow_Memory(b *testing.B) {
	ids := make([]string, 2*DefaultDedupMaxIDs)
	for i := range ids {
		ids[i] = fmt.Sprintf("01JD3%021d", i)
	}
	t0 := time.Now()
	for _, perMS := range []int{1, 30} {
		b.Run(fmt.Sprintf("%d-per-ms", perMS), func(b *testing.B) {
			var perID float64
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				w := NewDedupWindow(time.Hour, DefaultDedupMaxIDs)
				for i, id := range ids {
					w.Seen(id, t0.Add(time.Duration(i/perMS)*time.Millisecond))
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perID = float64(after.HeapAlloc-before.HeapAlloc) / float64(w.Len())
				runtime.KeepAlive(w)
			}
			b.ReportMetric(perID, "heap-bytes/id")
		})
	}
}
