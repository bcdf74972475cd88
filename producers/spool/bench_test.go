package spool

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/producers"
)

// BenchmarkSpool_Append measures the collector's spool path: encode a
// request's events and append them with group commit, from `writers`
// concurrent requests (the collector's MaxInFlight is 64). It reports
// events/s, fsyncs/s and appends per fsync on this machine's disk.
func BenchmarkSpool_Append(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		for _, events := range []int{10, 100} {
			b.Run(fmt.Sprintf("writers=%d/events=%d", writers, events), func(b *testing.B) {
				rs := make([]producers.Record, events)
				for i := range rs {
					rs[i] = producers.Record{PartitionKey: fmt.Sprint("u-", i), Data: make([]byte, 300)}
				}
				l, err := OpenLog(b.TempDir(), LogOptions{MaxBytes: 8 << 30, SegmentBytes: 64 << 20})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				b.SetBytes(int64(len(EncodeBatch(nil, rs))))
				b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0))) // goroutines = GOMAXPROCS × this
				start := time.Now()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					var buf []byte
					for pb.Next() {
						buf = EncodeBatch(buf[:0], rs)
						if _, err := l.Append(b.Context(), buf); err != nil {
							b.Error(err)
							return
						}
					}
				})
				el := time.Since(start).Seconds()
				st := l.Stats()
				b.ReportMetric(float64(st.Appends*int64(events))/el, "events/s")
				b.ReportMetric(float64(st.Syncs)/el, "fsyncs/s")
				b.ReportMetric(float64(st.Appends)/float64(max(1, st.Syncs)), "appends/fsync")
			})
		}
	}
}
