package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// coreGovernor sizes the Go scheduler (GOMAXPROCS) to what a consume
// process uses: one core at first, twice as many while the process keeps
// them busy (over procsBusy of them, second after second), up to Go's own
// default (the machine's cores, or its container's CPU limit), and one
// fewer once a core fewer would have been at most procsCalm busy for
// procsCalmFor.
//
// A consumer spends most of its time waiting for Kinesis, DynamoDB and S3:
// the archive of a 4-shard stream used ~9% of its wall time. With two cores
// the scheduler hands a shard's goroutine between them as it wakes, a second
// core looks for work before it sleeps, and collections run on both; on one
// core the same events cost 6-15% less CPU, and ~5% less RSS (the archive of
// a 200,000-event stream, the same binary with GOMAXPROCS=1 and 2
// alternately; docs/BENCHMARKS.md). A process with more to do than one core
// gets more within a second or two, as fast as doubling allows.
type coreGovernor struct {
	max, cur int
	used     func() (time.Duration, bool) // CPU time the process used so far
	set      func(int)
	log      *slog.Logger

	last     time.Time
	lastUsed time.Duration
	calm     time.Duration // how long a core fewer would have done
}

const (
	procsInterval = time.Second
	// procsBusy: more cores when the process used over this share of the
	// ones it has in a second.
	procsBusy = 0.7
	// procsCalm: one core fewer when that many would have been at most
	// this busy for procsCalmFor (not flapping at the edge: one core
	// fewer is then at most half as busy as procsBusy wants).
	procsCalm    = 0.35
	procsCalmFor = 30 * time.Second
)

// procsAuto is the --cpus value that lets the governor decide.
const procsAuto = "auto"

// parseCPUs reads --cpus: auto (0) or a number of cores.
func parseCPUs(s string) (int, error) {
	if s == procsAuto {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("--cpus is %q or a number of cores (1 or more), not %q", procsAuto, s)
	}
	return n, nil
}

// startCores applies --cpus (n cores, 0: auto) until the returned func is
// called, which stops the governor and gives the runtime back the
// GOMAXPROCS it had (for a consume run in-process, as tests do). With auto,
// a GOMAXPROCS in the environment is the user's choice and stands.
func startCores(ctx context.Context, n int, log *slog.Logger) (stop func()) {
	before := runtime.GOMAXPROCS(0)
	restore := func() { runtime.GOMAXPROCS(before) }
	switch {
	case n > 0:
		runtime.GOMAXPROCS(n)
		log.Info("cores", "cpus", n)
		return restore
	case os.Getenv("GOMAXPROCS") != "":
		log.Info("cores: GOMAXPROCS is set", "cpus", before)
		return func() {}
	}
	if _, ok := processCPU(); !ok {
		log.Warn("cores: the process's CPU time is not known; using Go's default", "cpus", before)
		return func() {}
	}
	g := newCoreGovernor(before, log)
	g.start(time.Now())
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick(ctx, procsInterval, g.step)
	}()
	return func() {
		cancel()
		<-done
		restore()
	}
}

func newCoreGovernor(max int, log *slog.Logger) *coreGovernor {
	return &coreGovernor{max: max, used: processCPU, set: func(n int) { runtime.GOMAXPROCS(n) }, log: log}
}

// start takes one core and the CPU used so far as the first reading.
func (g *coreGovernor) start(now time.Time) {
	g.cur = 1
	g.set(1)
	g.last = now
	g.lastUsed, _ = g.used()
	g.log.Info("cores follow the load", "cpus", 1, "max_cpus", g.max)
}

// step looks at the cores used since the last step and resizes.
func (g *coreGovernor) step(now time.Time) {
	used, ok := g.used()
	wall := now.Sub(g.last)
	if !ok || wall <= 0 {
		return
	}
	busy := float64(used-g.lastUsed) / float64(wall) // cores in use
	g.last, g.lastUsed = now, used
	switch {
	case busy > procsBusy*float64(g.cur) && g.cur < g.max:
		g.resize(min(2*g.cur, g.max), busy)
	case g.cur > 1 && busy <= procsCalm*float64(g.cur-1):
		if g.calm += wall; g.calm >= procsCalmFor {
			g.resize(g.cur-1, busy)
		}
	default:
		g.calm = 0
	}
}

func (g *coreGovernor) resize(n int, busy float64) {
	g.log.Info("cores follow the load", "cpus", n, "was", g.cur, "busy_cores", strconv.FormatFloat(busy, 'f', 2, 64))
	g.cur, g.calm = n, 0
	g.set(n)
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
