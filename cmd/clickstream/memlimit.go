package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// memoryGovernor keeps the Go runtime's soft memory limit a reserve above
// what the archive buffers (its partitions' files being written), the part
// of an archive process's heap that grows until a flush and drops after it.
//
// With GOGC=100 alone the heap may reach twice what is live before a
// collection: on a 200,000-event stream the archive ran at 111-136 MiB RSS
// for a live heap of ~55 MB at its peak. A fixed limit is wrong for any
// other load (below what the buffers legitimately hold, the collector runs
// back to back), and a lower GOGC collects far more often while the heap is
// small (GOGC=30: ~15% more CPU than a limit on the same stream). So the
// limit follows the buffers, and never comes nearer than a quarter of the
// heap the last collection found live (at least liveHeadroom), whatever
// holds it (many shards' GetRecords answers, uploads). Measured on that stream, alternately with
// the limit off (5 runs each): a reserve of 56 MiB, 89-94 MiB RSS for the
// same CPU (1.52 s median both); 40 MiB, 78-85 MiB RSS but 26% more CPU
// (the collector ran every ~15 MB allocated near the peak). Since then the
// heap besides the buffers has shrunk (answers no longer pinned by earlier
// batches' lists), and 48 MiB is as cheap: 14 collections a run at 56 and
// 48 MiB alike, peak RSS 98.8 against 101.2 MiB (means of 6 runs each,
// alternately; CPU within the runs' noise).
//
// What a limit costs depends on how fast the process allocates, and
// reading with enhanced fan-out (the SDK decodes every event) allocates
// far more than polling: under the limit the archive's collections took 18%
// of its CPU there, and its CPU per event rose by half. So the governor
// also watches what collections cost: when they take more than
// gcShareHigh of the CPU the process uses in a second, it raises the limit
// by as much again as it last did (16 MiB at first), and when they take
// less than gcShareLow it gives half of that back. Memory is traded for CPU
// only up to a bounded price.
type memoryGovernor struct {
	buffered func() int64 // the archive's buffered rows (archive.BufferedBytes)
	reserve  int64        // room for the rest of the heap, above the buffers
	max      int64        // the buffers' term goes no higher
	live     func() int64 // heap live after the last collection
	set      func(int64) int64
	last     int64 // the limit set last (0: none yet)

	// What collections cost: gcCPU reports the CPU-seconds collections
	// and the process used so far; extra is what the limit was raised by
	// for them.
	gcCPU      func() (gc, used float64)
	gc0, used0 float64
	steps      int
	extra      int64
}

// Defaults of the governor: the heap of an archive process besides its
// buffers (GetRecords answers, de-duplication windows, uploads, the SDKs)
// was 25-30 MB on a 4-shard stream, and the collector needs room above it
// (see memoryGovernor).
const (
	memoryReserve = 48 << 20
	liveHeadroom  = 16 << 20
	// memoryStep: smaller moves of the limit are not worth a call.
	memoryStep = 1 << 20
	// The share of its CPU the process may spend on collections before
	// the limit gives way (see memoryGovernor), judged every gcWindow
	// steps.
	gcShareHigh = 0.10
	gcShareLow  = 0.05
	gcWindow    = 10
)

func newMemoryGovernor(buffered func() int64, max int64) *memoryGovernor {
	return &memoryGovernor{buffered: buffered, reserve: memoryReserve, max: max, live: liveHeap, set: debug.SetMemoryLimit, gcCPU: gcCPU}
}

// limit is the soft memory limit for the buffers and live heap now: the
// reserve above the buffers, at most max, but never less than the live
// heap and a quarter as much again (at least liveHeadroom), so that a heap
// larger than anyone planned (many shards' answers and de-duplication
// windows) is collected as with GOGC=25, never back to back. (Half as much
// again set the limit at the fixed stream's peak, 60 MB live, and its RSS
// at 104-108 MiB.)
func (g *memoryGovernor) limit() int64 {
	live := g.live()
	return max(min(g.buffered()+g.reserve, g.max), live+max(live/4, liveHeadroom)) + g.extra
}

// weigh judges the last window's collections: their share of the CPU the
// process used moves extra up or down.
func (g *memoryGovernor) weigh() {
	if g.gcCPU == nil {
		return
	}
	gc, used := g.gcCPU()
	dgc, dused := gc-g.gc0, used-g.used0
	g.gc0, g.used0 = gc, used
	if dused <= 0 {
		return
	}
	switch share := dgc / dused; {
	case share > gcShareHigh:
		g.extra = min(max(2*g.extra, liveHeadroom), g.max)
	case share < gcShareLow:
		if g.extra /= 2; g.extra < memoryStep {
			g.extra = 0
		}
	}
}

// step sets the limit when it moved by memoryStep or more.
func (g *memoryGovernor) step() {
	if g.steps++; g.steps%gcWindow == 0 {
		g.weigh()
	}
	l := g.limit()
	if d := l - g.last; g.last == 0 || d >= memoryStep || d <= -memoryStep {
		g.set(l)
		g.last = l
	}
}

// run steps now and every interval until ctx is done.
func (g *memoryGovernor) run(ctx context.Context, every time.Duration) {
	g.step()
	tick(ctx, every, func(time.Time) { g.step() })
}

// tick calls f with the time every interval until ctx is done (the
// governors' loop).
func tick(ctx context.Context, every time.Duration, f func(time.Time)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}

// liveHeap is the heap the last collection marked live.
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

// gcCPU is the CPU-seconds collections took and the process used (not
// idle), as the runtime estimates them. The runtime updates them at each
// collection, so a window without one moves nothing (weigh).
func gcCPU() (gc, used float64) {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}, {Name: "/cpu/classes/idle:cpu-seconds"}}
	metrics.Read(s)
	for _, v := range s {
		if v.Value.Kind() != metrics.KindFloat64 {
			return 0, 0
		}
	}
	return s[0].Value.Float64(), s[1].Value.Float64() - s[2].Value.Float64()
}
