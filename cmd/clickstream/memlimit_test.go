package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

// TestMemoryGovernor_LimitFollowsTheBuffers: the limit is the reserve
// above the buffers (at most the cap), or a quarter of the live heap above
// it (at least the headroom) when that is higher; it is set again only when it
// moved by a step.
func TestMemoryGovernor_LimitFollowsTheBuffers(t *testing.T) {
	const mib = 1 << 20
	var buffered, live int64
	var sets []int64
	g := &memoryGovernor{
		buffered: func() int64 { return buffered },
		live:     func() int64 { return live },
		reserve:  40 * mib, max: 200 * mib,
		set: func(l int64) int64 { sets = append(sets, l); return 0 },
	}
	for _, tc := range []struct {
		name           string
		buffered, live int64
		want           int64 // the limit set, 0: none set
	}{
		{"start: the reserve", 0, 10 * mib, 40 * mib},
		{"buffers grow", 20 * mib, 30 * mib, 60 * mib},
		{"less than a step: not set again", 20*mib + mib/2, 30 * mib, 0},
		{"the live heap is higher than the buffers say", 20 * mib, 50 * mib, 66 * mib},
		{"a larger live heap: a quarter above it", 20 * mib, 80 * mib, 100 * mib},
		{"the live heap drops: the reserve above the buffers again", 20 * mib, 20 * mib, 60 * mib},
		{"capped", 300 * mib, 70 * mib, 200 * mib},
		{"a live heap above the cap: a quarter as much again", 300 * mib, 180 * mib, 225 * mib},
		{"a flush empties the buffers", 0, 30 * mib, 46 * mib},
	} {
		buffered, live = tc.buffered, tc.live
		n := len(sets)
		g.step()
		switch {
		case tc.want == 0 && len(sets) != n:
			t.Errorf("%s: set %d", tc.name, sets[n])
		case tc.want != 0 && (len(sets) != n+1 || sets[n] != tc.want):
			t.Errorf("%s: sets %v, want %d last", tc.name, sets[n:], tc.want)
		}
	}
}

// TestMemoryGovernor_SetsTheRuntimesLimit: run sets the Go runtime's soft
// memory limit from the buffers, and moves it when they grow.
func TestMemoryGovernor_SetsTheRuntimesLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	runtime.GC() // a known live heap
	var buffered atomic.Int64
	buffered.Store(512 << 20)
	g := newMemoryGovernor(buffered.Load, 1<<40)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.run(ctx, 5*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	waitLimit := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for debug.SetMemoryLimit(-1) != want {
			if time.Now().After(deadline) {
				t.Fatalf("runtime limit %d, want %d", debug.SetMemoryLimit(-1), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitLimit(512<<20 + memoryReserve)
	buffered.Store(1 << 30)
	waitLimit(1<<30 + memoryReserve)
}

// TestMemoryGovernor_GivesWayWhenCollectionsCostTooMuch: while collections
// take more than gcShareHigh of the CPU the process uses, each window
// raises the limit by twice what it last did (from the headroom, up to the
// cap); while they take less than gcShareLow, half of it is given back.
func TestMemoryGovernor_GivesWayWhenCollectionsCostTooMuch(t *testing.T) {
	const mib = 1 << 20
	var gc, used float64
	g := &memoryGovernor{
		buffered: func() int64 { return 10 * mib },
		live:     func() int64 { return 20 * mib },
		reserve:  40 * mib, max: 100 * mib,
		set:   func(int64) int64 { return 0 },
		gcCPU: func() (float64, float64) { return gc, used },
	}
	window := func(share float64) int64 {
		for range gcWindow {
			used += 0.1
			gc += 0.1 * share
			g.step()
		}
		return g.last
	}
	for i, tc := range []struct {
		share float64
		want  int64
	}{
		{0.01, 50 * mib},  // cheap: the reserve above the buffers
		{0.20, 66 * mib},  // dear: 16 MiB more
		{0.20, 82 * mib},  // still: 32
		{0.07, 82 * mib},  // between: kept
		{0.20, 114 * mib}, // 64
		{0.20, 150 * mib}, // 100: the cap
		{0.01, 100 * mib}, // cheap again: half back
		{0.01, 75 * mib},
	} {
		if got := window(tc.share); got != tc.want {
			t.Fatalf("window %d (collections %.0f%% of the CPU): limit %d MiB, want %d", i, 100*tc.share, got/mib, tc.want/mib)
		}
	}
}
