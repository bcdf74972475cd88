package archive

import (
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/producers/loadgen"
)

// loadgenEvents returns n events of the synthetic traffic the end-to-end
// benchmarks send (~320 bytes, random ids, many users and items), encoded
// as producers send them, over one event-time hour.
func loadgenEvents(tb testing.TB, n int) [][]byte {
	g, err := loadgen.NewGenerator(loadgen.GeneratorConfig{Seed: 1})
	if err != nil {
		tb.Fatal(err)
	}
	start := epoch
	out := make([][]byte, n)
	for i := range out {
		e := g.NextAt(start.Add(time.Duration(i) * time.Second / 10000))
		out[i] = e.AppendJSON(nil)
	}
	if _, err := event.Decode(out[0]); err != nil {
		tb.Fatal(err)
	}
	return out
}

// BenchmarkEncodeLoadgen is BenchmarkEncode/zstd on the end-to-end
// benchmarks' traffic: 100,000 events of one type-hour partition in one
// file per type.
func BenchmarkEncodeLoadgen(b *testing.B) {
	events := loadgenEvents(b, 100_000)
	rows := rowsOf(recordsOf(testShard, events, 1))
	cfg, _ := Config{}.withDefaults()
	enc, err := newEncoder(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var size int
	b.SetBytes(int64(rawBytes(events)))
	cpu := cpuTime()
	for b.Loop() {
		out, err := enc.encodeBytes(rows, rawBytes(events)/8)
		if err != nil {
			b.Fatal(err)
		}
		size = len(out)
	}
	reportRates(b, len(rows), cpu)
	b.ReportMetric(float64(size)/float64(len(rows)), "file-bytes/event")
	b.ReportMetric(float64(rawBytes(events))/float64(len(rows)), "json-bytes/event")
}
