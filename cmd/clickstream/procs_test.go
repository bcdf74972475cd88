package main

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

// TestCoreGovernor_FollowsTheLoad: one core at first; doubled (up to the
// most) while the cores are over 70% busy; one given back only after 30s
// in which one fewer would have been at most 35% busy, a busier second
// starting the count again.
func TestCoreGovernor_FollowsTheLoad(t *testing.T) {
	var used time.Duration
	var sets []int
	g := &coreGovernor{max: 6, used: func() (time.Duration, bool) { return used, true },
		set: func(n int) { sets = append(sets, n) }, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	now := time.Unix(1000, 0)
	used = 5 * time.Second // start-up's CPU is not the load
	g.start(now)
	if g.cur != 1 || len(sets) != 1 || sets[0] != 1 {
		t.Fatalf("start: %d cores, sets %v; want 1", g.cur, sets)
	}
	second := func(busy float64) int {
		now = now.Add(time.Second)
		used += time.Duration(busy * float64(time.Second))
		g.step(now)
		return g.cur
	}
	for _, tc := range []struct {
		name    string
		busy    float64 // cores used in the second
		seconds int
		want    int
	}{
		{"mostly waiting", 0.1, 5, 1},
		{"70% of one core: not over", 0.7, 1, 1},
		{"busy: doubled", 0.8, 1, 2},
		{"busier: doubled again", 1.5, 1, 4},
		{"still over 70%: at most the maximum", 3.0, 1, 6},
		{"at the maximum, busy", 6.0, 3, 6},
		{"one fewer would be at most 35% busy, but not for 30s yet", 1.7, 29, 6},
		{"a busier second starts the count again", 2.0, 1, 6},
		{"calm for 29s more", 1.7, 29, 6},
		{"calm for 30s: one fewer", 1.7, 1, 5},
		{"calm again: another 30s for the next", 0.5, 29, 5},
		{"30s", 0.5, 1, 4},
		{"idle: one at a time, 30s each", 0, 90, 1},
		{"never fewer than one", 0, 60, 1},
	} {
		var got int
		for range tc.seconds {
			got = second(tc.busy)
		}
		if got != tc.want {
			t.Errorf("%s: %d cores, want %d", tc.name, got, tc.want)
		}
	}
	if sets[len(sets)-1] != 1 {
		t.Errorf("last set %d, want 1 (sets %v)", sets[len(sets)-1], sets)
	}

	// A reading that fails moves nothing, and the next one measures from
	// the last good one.
	fail := true
	g.used = func() (time.Duration, bool) { return used, !fail }
	now = now.Add(time.Second)
	used += 10 * time.Second
	g.step(now)
	if g.cur != 1 {
		t.Errorf("a failed reading resized to %d", g.cur)
	}
	fail = false
	now = now.Add(time.Second)
	g.step(now)
	if g.cur != 2 {
		t.Errorf("10s of CPU in 2s: %d cores, want 2", g.cur)
	}
}

// TestCoreGovernor_SetsTheRuntimesCores: the governor moves the Go
// runtime's GOMAXPROCS; a number given to --cpus sets it; auto leaves a
// GOMAXPROCS from the environment alone; stopping gives the runtime back
// what it had.
func TestCoreGovernor_SetsTheRuntimesCores(t *testing.T) {
	before := runtime.GOMAXPROCS(3)
	defer runtime.GOMAXPROCS(before)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := newCoreGovernor(3, log)
	g.start(time.Now())
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("GOMAXPROCS %d after start, want 1", got)
	}
	g.resize(3, 1)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("GOMAXPROCS %d after a resize to 3, want 3", got)
	}

	stop := startCores(context.Background(), 2, log)
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Errorf("--cpus 2: GOMAXPROCS %d", got)
	}
	stop()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("--cpus 2 stopped: GOMAXPROCS %d, want 3 back", got)
	}

	stop = startCores(context.Background(), 0, log)
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Errorf("auto: GOMAXPROCS %d at start, want 1", got)
	}
	stop()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("auto stopped: GOMAXPROCS %d, want 3 back", got)
	}

	// auto with GOMAXPROCS in the environment: the user's choice stands.
	t.Setenv("GOMAXPROCS", "2")
	stop = startCores(context.Background(), 0, log)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("auto with GOMAXPROCS set: GOMAXPROCS %d, want 3 untouched", got)
	}
	stop()

	if d, ok := processCPU(); !ok || d <= 0 {
		t.Errorf("processCPU = %v, %v; want the CPU this test used", d, ok)
	}
}

func TestParseCPUs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{{"auto", 0, true}, {"1", 1, true}, {"16", 16, true}, {"0", 0, false}, {"-2", 0, false}, {"two", 0, false}, {"", 0, false}} {
		got, err := parseCPUs(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("parseCPUs(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
