package metrics

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

// benchEvents is a realistic mix: 2/3 access logs over 20 routes, 1/3
// impressions and clicks over 5 placements, a few seconds out of order.
func benchEvents(n int) []event.Event {
	rng := rand.New(rand.NewPCG(9, 9))
	caches := []string{"HIT", "HIT", "HIT", "MISS", "EXPIRED", "-"}
	evs := make([]event.Event, n)
	for i := range evs {
		ts := t0.Add(time.Duration(i) * time.Millisecond).Add(-time.Duration(rng.IntN(2000)) * time.Millisecond)
		if i%3 == 2 {
			u := fmt.Sprintf("u-%d", rng.IntN(50_000))
			p := fmt.Sprintf("placement_%d", rng.IntN(5))
			if rng.IntN(10) == 0 {
				evs[i] = click(ts, u, p)
			} else {
				evs[i] = impression(ts, u, p)
			}
			continue
		}
		evs[i] = access(ts, fmt.Sprintf("/api/r%d/:id", rng.IntN(20)), caches[rng.IntN(len(caches))], 200, 1+rng.ExpFloat64()*30)
	}
	return evs
}

// cpuTime is the process's user+system CPU time. Benchmarks report CPU
// ns per event besides wall time: on a shared, loaded machine wall time per
// op inflates with the run queue, CPU time much less.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration, n int) {
	cpu := cpuTime() - start
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/event")
	b.ReportMetric(float64(n)/cpu.Seconds(), "events/cpu-s")
}

// BenchmarkAggregate is the per-event aggregation alone: filters, group
// key, window lookup, counts and sketches (what Process does per record
// once rows are in memory).
func BenchmarkAggregate(b *testing.B) {
	evs := benchEvents(1 << 16)
	st := NewMemoryStore()
	p, _ := NewProcessor(st, Config{FlushInterval: time.Hour})
	spi, _ := p.OpenShard(context.Background(), consumers.Shard{ID: shard0})
	sp := spi.(*shardProc)
	// Warm the rows so the loop measures the steady state.
	recs := records(1, evs...)
	if _, err := sp.Process(context.Background(), consumers.Batch{Records: recs, Now: t0}); err != nil {
		b.Fatal(err)
	}
	plan := p.plan
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		e := &evs[i&(len(evs)-1)]
		sp.view.reset(e)
		win := floorMinute(e.TS.UnixMilli())
		for m, mp := range plan.metrics {
			if !sp.view.match(mp.filter) {
				continue
			}
			row := sp.lookup(m, win)
			row.agg.add(mp, &sp.view)
		}
	}
	reportCPU(b, cpu0, b.N)
}

// BenchmarkProcess is the whole ShardProcessor path per record: two passes,
// exactly-once checks, watermark, row loads and a flush to the in-memory
// store every simulated second, in batches of 1,000 records. Each lap over
// the events is a fresh shard on a fresh store.
func BenchmarkProcess(b *testing.B) {
	evs := benchEvents(1 << 16)
	recs := records(1, evs...)
	const batch = 1000
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	n := 0
	for n < b.N {
		p, _ := NewProcessor(NewMemoryStore(), Config{})
		sp, _ := p.OpenShard(context.Background(), consumers.Shard{ID: shard0})
		for i := 0; i < len(recs) && n < b.N; i += batch {
			chunk := recs[i:min(i+batch, len(recs))]
			now := chunk[len(chunk)-1].Event.TS
			if _, err := sp.Process(context.Background(), consumers.Batch{ShardID: shard0, Records: chunk, Now: now}); err != nil {
				b.Fatal(err)
			}
			n += len(chunk)
		}
	}
	reportCPU(b, cpu0, n)
}

// BenchmarkDecodeAndAggregate puts the aggregation next to the decode every
// consumer pays: JSON decode alone, then decode + aggregate.
func BenchmarkDecodeAndAggregate(b *testing.B) {
	evs := benchEvents(1 << 12)
	raw := make([][]byte, len(evs))
	for i := range evs {
		raw[i] = evs[i].AppendJSON(nil)
	}
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := cpuTime()
		for i := 0; i < b.N; i++ {
			if _, err := event.Decode(raw[i&(len(raw)-1)]); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu0, b.N)
	})
	b.Run("decode+aggregate", func(b *testing.B) {
		p, _ := NewProcessor(NewMemoryStore(), Config{FlushInterval: time.Hour})
		spi, _ := p.OpenShard(context.Background(), consumers.Shard{ID: shard0})
		sp := spi.(*shardProc)
		b.ReportAllocs()
		cpu0 := cpuTime()
		for i := 0; i < b.N; i++ {
			e, err := event.Decode(raw[i&(len(raw)-1)])
			if err != nil {
				b.Fatal(err)
			}
			sp.view.reset(&e)
			win := floorMinute(e.TS.UnixMilli())
			for m, mp := range p.plan.metrics {
				if sp.view.match(mp.filter) {
					row := sp.lookup(m, win)
					if row.agg == nil {
						row.agg, row.loaded = newPartial(mp), true
					}
					row.agg.add(mp, &sp.view)
				}
			}
		}
		reportCPU(b, cpu0, b.N)
	})
}

// BenchmarkMemoryPerOpenWindow reports the heap held per open window of
// one group: an access row with 1,000 requests (latency sketch) and an
// engagement row with 1,000 distinct users (HyperLogLog, sparse).
func BenchmarkMemoryPerOpenWindow(b *testing.B) {
	for _, tc := range []struct {
		name  string
		event func(i, w int) event.Event
	}{
		{"access", func(i, w int) event.Event {
			return access(t0.Add(time.Duration(w)*time.Minute), "/r", "HIT", 200, 1+float64(i%997)*0.37)
		}},
		{"engagement", func(i, w int) event.Event {
			return impression(t0.Add(time.Duration(w)*time.Minute), fmt.Sprintf("u-%d", i), "home")
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const windows, perWindow = 200, 1000
			for i := 0; i < b.N; i++ {
				p, _ := NewProcessor(NewMemoryStore(), Config{FlushInterval: time.Hour})
				spi, _ := p.OpenShard(context.Background(), consumers.Shard{ID: shard0})
				sp := spi.(*shardProc)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				for w := 0; w < windows; w++ {
					for j := 0; j < perWindow; j++ {
						e := tc.event(j, w)
						sp.view.reset(&e)
						for m, mp := range p.plan.metrics {
							if sp.view.match(mp.filter) {
								row := sp.lookup(m, floorMinute(e.TS.UnixMilli()))
								if row.agg == nil {
									row.agg, row.loaded = newPartial(mp), true
								}
								row.agg.add(mp, &sp.view)
							}
						}
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/windows, "bytes/window")
				runtime.KeepAlive(sp)
			}
		})
	}
}
