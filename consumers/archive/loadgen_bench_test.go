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
// benchmarks' traffic: 100,000 events of one event-time hour in one file.
func BenchmarkEncodeLoadgen(b *testing.B) {
	benchEncode(b, loadgenEvents(b, 100_000), CompressionZstd)
}

// BenchmarkDecodeAndArchiveLoadgen is BenchmarkDecodeAndArchive on the
// end-to-end benchmarks' traffic.
func BenchmarkDecodeAndArchiveLoadgen(b *testing.B) {
	benchDecodeAndArchive(b, loadgenEvents(b, 100_000))
}
