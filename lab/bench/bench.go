// Package bench drives the whole pipeline on a local (or real) stack and
// measures it: loadgen → collector → stream → archive, vectors and metrics
// consumers, each component in its own process so its CPU time and peak RSS
// can be read from /proc. It backs `clickstream-lab bench` and `make bench-e2e`.
//
// What it measures, and how:
//   - sustained events/s: events acknowledged by Kinesis (producer counter of
//     the collector) over the load phase;
//   - consumer lag: events on the stream minus events each consumer has
//     processed (runtime counter), sampled every second; "keeps up" means the
//     lag in the last third of the run is not above the middle third's by
//     more than a second of input;
//   - put → vector visible: probe clicks for fresh users posted to the
//     collector a few times a second, then GET /v1/users/{id}/vector polled
//     until it answers 200;
//   - put → processed and put → archived: count crossing — the moment a
//     consumer's processed (archive: written) count reaches the number of
//     events that had been put at time t, minus t (exact for FIFO delivery,
//     an approximation across shards);
//   - window end → metric readable: GET /v1/metrics/engagement polled; the
//     first time a window appears published, minus the window's end;
//   - CPU seconds per million events and peak RSS from /proc/PID/{stat,status};
//   - DynamoDB writes, S3 PUT-class requests and Kinesis calls from each
//     process's clickstream_aws_requests_total, priced with list prices.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/clickstream-go/clickstream/consumers/apps"
	"github.com/clickstream-go/clickstream/lab/proc"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/producers/loadgen"
)

// Config configures a run. Zero fields take the defaults in brackets.
type Config struct {
	// Binary is the clickstream executable started for each component.
	// Required.
	Binary string
	// Clients talk to the stack (resource creation and clean-up). Required.
	Clients *awsx.Clients
	// Env is the environment of the components [os.Environ()].
	Env []string
	// Shards of the fresh benchmark stream [8].
	Shards int
	// Bucket receives the archive under a fresh prefix [clickstream-archive].
	Bucket string
	// Rate is the target events/s; 0 sends as fast as the pipeline takes [0].
	Rate float64
	// Duration of the load phase [60s].
	Duration time.Duration
	// Drain bounds the wait for the consumers to catch up afterwards [60s].
	Drain time.Duration
	// Concurrency of the load generator's requests [4].
	Concurrency int
	// BatchSize is events per collector request [500].
	BatchSize int
	// ProbeRate is vector-visibility probes per second [4].
	ProbeRate float64
	// ArchiveMaxAge is the archive consumer's --archive-max-age [10s].
	ArchiveMaxAge time.Duration
	// Apps are the consumers to run, a subset of archive, vectors and
	// metrics [all three]. Without vectors there are no vector probes;
	// without vectors and metrics no read API.
	Apps []string
	// PollIntervals are the consumers' --poll-interval [sharedPollIntervals:
	// together they stay within a shard's 5 GetRecords calls/s].
	PollIntervals map[string]time.Duration
	// ReadMode is the consumers' --read-mode ["poll"]. With "efo" every
	// consumer gets its own 2 MiB/s per shard (through the proxy's fan-out
	// on the local stack) and polls nothing, so PollIntervals only pace the
	// empty batches of idle shards: 200ms each.
	ReadMode string
	// Combined runs the three consumers in one `consume archive vectors
	// metrics` process instead of one process each [false: separate, so
	// CPU and RSS are per consumer].
	Combined bool
	// LogDir receives the components' logs [a temporary directory].
	LogDir string
	// Keep leaves the stream, tables and archive objects in place.
	Keep bool
	// Label names the environment in the report (e.g. "kinesalite").
	Label string
	// Name names the run in the report's heading (e.g. "Throughput run").
	// ["Run"]
	Name string
	// Progress receives a line per second [discard].
	Progress io.Writer
	// StackPIDs are emulator processes to account CPU and RSS for (name → pid).
	StackPIDs map[string]int
	// ProfileDir, when set, receives a CPU profile of every component
	// (NAME.cpu.pprof), taken from a third into the load phase for
	// ProfileFor, and the report shows where the busiest one spends its CPU
	// [""; no profiles].
	ProfileDir string
	// ProfileFor is the length of the CPU profiles [Duration/3, at most 30s].
	ProfileFor time.Duration
}

// Result is what a run measured.
type Result struct {
	Started          time.Time
	Apps             []string // the consumers that ran, in report order
	PollIntervals    map[string]time.Duration
	ReadMode         string
	Label            string
	Name             string
	Machine          string
	Shards           int
	TargetRate       float64
	Duration         time.Duration
	Generated        int64 // events loadgen generated
	Accepted         int64 // events the collector accepted
	OnStream         int64 // events Kinesis acknowledged
	KinesisRecords   int64 // Kinesis records (aggregates) they took
	StreamBytes      int64
	EventsPerSec     float64 // OnStream / load phase
	Processed        map[string]int64
	Archived         int64
	LagMid, LagEnd   map[string]float64 // mean lag (events) in the middle and last third
	KeptUp           map[string]bool
	CaughtUpAfter    map[string]time.Duration // after the load phase; -1 if not within Drain
	VectorLatency    Percentiles
	ProcessedLatency map[string]Percentiles
	ArchiveLatency   Percentiles
	WindowLatency    Percentiles
	Components       []ComponentStats
	Calls            Calls
	// Profile is where the busiest component's CPU went (nil without
	// Config.ProfileDir); ProfilePaths are every component's profile files.
	Profile      *ProfileSummary
	ProfilePaths map[string]string
	Errors       []string
}

// ComponentStats are one process's costs.
type ComponentStats struct {
	Name                 string
	CPUSeconds           float64 // from the end of start-up to the end of the run
	CPUSecondsPerMillion float64
	PeakRSS              int64
	// DynamoDBWrites and S3Puts are this process's calls per million events.
	DynamoDBWrites, S3Puts float64
}

// Calls are the billed AWS requests of the whole run.
type Calls struct {
	DynamoDBWrites   float64 // UpdateItem, PutItem, DeleteItem, TransactWriteItems, BatchWriteItem calls
	DynamoDBReads    float64
	S3Puts           float64 // PUT, COPY, POST, LIST class
	S3Gets           float64
	KinesisPutCalls  float64
	KinesisGetCalls  float64
	PutPayloadUnits  float64 // 25 KB units, estimated from records and bytes
	ShardHoursPerMEv float64
}

// Percentiles summarises latency samples.
type Percentiles struct {
	N             int
	P50, P99, Max time.Duration
}

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return Percentiles{N: len(s), P50: q(0.50), P99: q(0.99), Max: s[len(s)-1]}
}

func (c *Config) defaults() error {
	if c.Binary == "" || c.Clients == nil {
		return errors.New("bench: Binary and Clients are required")
	}
	if c.Env == nil {
		c.Env = os.Environ()
	}
	if c.Shards <= 0 {
		c.Shards = 8
	}
	if c.Bucket == "" {
		c.Bucket = setup.DefaultBucket
	}
	if c.Duration <= 0 {
		c.Duration = 60 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 60 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.ProbeRate <= 0 {
		c.ProbeRate = 4
	}
	if c.ArchiveMaxAge <= 0 {
		c.ArchiveMaxAge = 10 * time.Second
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if len(c.Apps) == 0 {
		c.Apps = consumerApps
	}
	for _, app := range c.Apps {
		if !slices.Contains(consumerApps, app) {
			return fmt.Errorf("bench: unknown consumer %q (choose from %s)", app, strings.Join(consumerApps, ", "))
		}
	}
	// Report order, whatever the order given.
	apps := c.Apps
	c.Apps = nil
	for _, app := range consumerApps {
		if slices.Contains(apps, app) {
			c.Apps = append(c.Apps, app)
		}
	}
	if c.ReadMode == "" {
		c.ReadMode = "poll"
	}
	if c.PollIntervals == nil && c.ReadMode == "efo" {
		c.PollIntervals = map[string]time.Duration{}
		for _, app := range c.Apps {
			c.PollIntervals[app] = 200 * time.Millisecond
		}
	}
	if c.PollIntervals == nil {
		c.PollIntervals = sharedPollIntervals(c.Apps, c.Combined)
	}
	if c.ProfileFor <= 0 {
		c.ProfileFor = min(30*time.Second, c.Duration/3)
	}
	return nil
}

// apiKey is the read API's key in a run (the API refuses requests without one).
const apiKey = "bench-read-api-key-0123456789"

// sampleEvery is the sampling interval of the counters (the resolution of
// count-crossing latencies, which interpolate between samples).
const sampleEvery = 250 * time.Millisecond

// sharedPollIntervals splits a shard's read limit (AWS: 5 GetRecords
// calls/s, shared by every application reading the stream) between the
// consumers, as a deployment of several applications must: alone, a
// consumer polls every 200ms; vectors, whose point is latency, gets 3
// calls/s and the others share the other 2; without vectors they share
// equally. In one process (combined) they share one interval.
func sharedPollIntervals(apps []string, combined bool) map[string]time.Duration {
	out := map[string]time.Duration{}
	n := len(apps)
	for _, app := range apps {
		switch {
		case n == 1:
			out[app] = 200 * time.Millisecond
		case combined || !slices.Contains(apps, "vectors"):
			out[app] = time.Duration(n) * 200 * time.Millisecond
		case app == "vectors":
			out[app] = 340 * time.Millisecond // ≈ 2.9 calls/s
		default:
			out[app] = time.Duration(n-1) * 500 * time.Millisecond // 2 calls/s shared
		}
	}
	return out
}

// consumerApps are the processors, in report order.
var consumerApps = apps.Names()

// sample is one second's view of the counters.
type sample struct {
	at        time.Time
	onStream  float64
	processed map[string]float64
	archived  float64
}

// Run creates a fresh stream, tables and archive prefix, starts the
// components, drives load for Duration, waits for the consumers to catch up,
// and returns the figures. Resources are deleted afterwards unless Keep.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	id := time.Now().UTC().Format("20060102-150405")
	b := &benchRun{cfg: cfg, prefix: "bench/" + id}
	b.res = setup.Resources{
		Stream: "bench-" + id, Shards: cfg.Shards, Bucket: cfg.Bucket,
		VectorsTable: "bench-" + id + "-vectors", MetricsTable: "bench-" + id + "-metrics", LeasesTable: "bench-" + id + "-leases",
	}
	r := &Result{Started: time.Now(), Apps: cfg.Apps, PollIntervals: cfg.PollIntervals, ReadMode: cfg.ReadMode, Label: cfg.Label, Name: cmp.Or(cfg.Name, "Run"), Shards: cfg.Shards, TargetRate: cfg.Rate, Duration: cfg.Duration,
		Machine:   machine(),
		Processed: map[string]int64{}, LagMid: map[string]float64{}, LagEnd: map[string]float64{}, KeptUp: map[string]bool{},
		CaughtUpAfter: map[string]time.Duration{}, ProcessedLatency: map[string]Percentiles{}}
	b.r = r
	fmt.Fprintf(cfg.Progress, "bench: creating stream %s (%d shards), tables, archive prefix s3://%s/%s\n", b.res.Stream, b.res.Shards, b.res.Bucket, b.prefix)
	if err := setup.Ensure(ctx, cfg.Clients, b.res, nil); err != nil {
		return nil, err
	}
	if !cfg.Keep {
		defer cleanup(cfg.Clients, b.res, b.prefix, cfg.Progress)
	}
	if b.cfg.LogDir == "" {
		d, err := os.MkdirTemp("", "clickstream-bench-")
		if err != nil {
			return nil, err
		}
		b.cfg.LogDir = d
	} else if err := os.MkdirAll(b.cfg.LogDir, 0o755); err != nil {
		return nil, err
	}
	defer b.stopAll()
	if err := b.startComponents(ctx); err != nil {
		return nil, err
	}
	cfg = b.cfg
	fmt.Fprintf(cfg.Progress, "bench: components up (logs in %s); load for %s at %s\n", cfg.LogDir, cfg.Duration, rateString(cfg.Rate))

	// Sampler, probes (vector visibility, window publication) and CPU
	// profiles run beside the load; wg waits for all of them.
	sampleCtx, stopSampling := context.WithCancel(ctx)
	probeCtx, stopProbes := context.WithCancel(ctx)
	winCtx, stopWindows := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopProbes(); stopWindows(); stopSampling(); wg.Wait() }()
	wg.Go(func() { b.sample(sampleCtx) })
	var vecLat, winLat []time.Duration
	var windowsSeen atomic.Int64
	var probeErrs, profErrs []string
	probesDone := make(chan struct{})
	if slices.Contains(cfg.Apps, "vectors") {
		wg.Go(func() {
			defer close(probesDone)
			vecLat, probeErrs = probeVectors(probeCtx, b.collector.Addr, b.api.Addr, cfg.ProbeRate)
		})
	} else {
		close(probesDone)
	}
	if slices.Contains(cfg.Apps, "metrics") {
		wg.Go(func() { winLat = probeWindows(winCtx, b.api.Addr, r.Started, &windowsSeen) })
	} else {
		windowsSeen.Store(1) // nothing to wait for in the drain
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, err
		}
		wg.Go(func() { profErrs = b.profile(ctx, probeCtx) })
	}

	// Load, then the collector's deliveries, then the drain.
	loadStart := time.Now()
	st, loadErr := loadgen.Run(ctx, loadgen.Config{
		GeneratorConfig: loadgen.GeneratorConfig{Seed: 1},
		Rate:            cfg.Rate, Duration: cfg.Duration, BatchSize: cfg.BatchSize, Concurrency: cfg.Concurrency,
	}, &loadgen.CollectorSink{URL: "http://" + b.collector.Addr}, cfg.Progress)
	loadEnd := time.Now()
	r.Generated = st.Generated
	if loadErr != nil && !errors.Is(loadErr, context.Canceled) {
		r.Errors = append(r.Errors, "loadgen: "+loadErr.Error())
	}
	// Probe clicks count as accepted events too: wait for the ones in
	// flight to be answered before counting.
	stopProbes()
	<-probesDone
	target, err := b.delivered(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Progress, "bench: load done: %d events on the stream; draining (up to %s)\n", int64(target), cfg.Drain)
	caught, err := b.drain(ctx, target, &windowsSeen)
	if err != nil {
		return nil, err
	}
	stopWindows()
	stopSampling()
	wg.Wait()

	b.results(ctx, target, caught, loadStart, loadEnd)
	r.VectorLatency = percentiles(vecLat)
	r.WindowLatency = percentiles(winLat)
	r.Errors = append(r.Errors, probeErrs...)
	r.Errors = append(r.Errors, profErrs...)
	if err := b.costs(ctx, target); err != nil {
		return nil, err
	}
	for _, c := range b.comps {
		if err := c.Stop(30 * time.Second); err != nil {
			r.Errors = append(r.Errors, err.Error())
		}
	}
	b.comps = nil
	return r, nil
}

// benchRun is one run's state: its resources, its components, and the
// samples taken while it runs.
type benchRun struct {
	cfg      Config
	res      setup.Resources
	prefix   string
	r        *Result
	comps    []*proc.Process
	baseline map[int]proc.Stats // CPU at start-up's end, by pid

	collector, api *proc.Process
	consumersByApp map[string]*proc.Process

	mu      sync.Mutex
	samples []sample
}

func (b *benchRun) resFlags() []string {
	return []string{"--stream", b.res.Stream, "--bucket", b.res.Bucket, "--vectors-table", b.res.VectorsTable,
		"--metrics-table", b.res.MetricsTable, "--leases-table", b.res.LeasesTable}
}

// start runs one component on a free address (and a pprof address when
// profiling).
func (b *benchRun) start(name string, args func(addr string) []string) (*proc.Process, error) {
	addr, err := proc.FreeAddr()
	if err != nil {
		return nil, err
	}
	argv := args(addr)
	var pprofAddr string
	if b.cfg.ProfileDir != "" {
		if pprofAddr, err = proc.FreeAddr(); err != nil {
			return nil, err
		}
		argv = append(argv, "--pprof-addr", pprofAddr)
	}
	c, err := proc.Start(b.cfg.Binary, b.cfg.LogDir, name, addr, b.cfg.Env, argv...)
	if err != nil {
		return nil, err
	}
	c.PprofAddr = pprofAddr
	b.comps = append(b.comps, c)
	return c, nil
}

func (b *benchRun) stopAll() {
	for _, c := range b.comps {
		c.Stop(30 * time.Second)
	}
}

// consumeArgs is `clickstream consume` of apps, polling at the first app's
// share of the shard's reads.
func (b *benchRun) consumeArgs(addr string, apps ...string) []string {
	poll := b.cfg.PollIntervals[apps[0]].String()
	args := append([]string{"consume"}, apps...)
	args = append(args, "--metrics-addr", addr, "--prefix", b.prefix, "--archive-max-age", b.cfg.ArchiveMaxAge.String(), "--poll-interval", poll,
		"--read-mode", b.cfg.ReadMode)
	if slices.Contains(apps, "vectors") {
		// Latency-critical: an empty poll (MillisBehindLatest 0 when
		// caught up) must not add a second to the next click.
		args = append(args, "--idle-interval", poll)
	}
	return append(args, b.resFlags()...)
}

// startComponents starts the collector, the consumers (one process each,
// or one for all with Combined) and the API when a probe needs it, waits
// until all are healthy and takes the CPU baseline: start-up is excluded,
// peak RSS is the process's.
func (b *benchRun) startComponents(ctx context.Context) error {
	cfg := b.cfg
	var err error
	if b.collector, err = b.start("collector", func(a string) []string {
		return []string{"collector", "--addr", a, "--insecure-no-auth", "--stream", b.res.Stream, "--rate-per-key", "-1"}
	}); err != nil {
		return err
	}
	b.consumersByApp = map[string]*proc.Process{}
	if cfg.Combined {
		c, err := b.start("consumers", func(a string) []string { return b.consumeArgs(a, cfg.Apps...) })
		if err != nil {
			return err
		}
		for _, app := range cfg.Apps {
			b.consumersByApp[app] = c
		}
	} else {
		for _, app := range cfg.Apps {
			c, err := b.start("consume-"+app, func(a string) []string { return b.consumeArgs(a, app) })
			if err != nil {
				return err
			}
			b.consumersByApp[app] = c
		}
	}
	if slices.Contains(cfg.Apps, "vectors") || slices.Contains(cfg.Apps, "metrics") {
		if b.api, err = b.start("api", func(a string) []string {
			return append([]string{"api", "--addr", a, "--no-alerts", "--api-key", apiKey}, b.resFlags()...)
		}); err != nil {
			return err
		}
	}
	for _, c := range b.comps {
		if err := c.WaitHealthy(ctx, 60*time.Second); err != nil {
			return err
		}
	}
	b.baseline = map[int]proc.Stats{}
	for _, c := range b.comps {
		b.baseline[c.Pid()], _ = proc.ReadStats(c.Pid())
	}
	for _, pid := range cfg.StackPIDs {
		b.baseline[pid], _ = proc.ReadStats(pid)
	}
	return nil
}

// scrapeAll samples the collector's deliveries and each consumer's
// progress.
func (b *benchRun) scrapeAll(ctx context.Context) (sample, error) {
	s := sample{at: time.Now(), processed: map[string]float64{}}
	m, err := b.collector.Scrape(ctx)
	if err != nil {
		return s, err
	}
	s.onStream = m.Sum("clickstream_producer_records_sent_total")
	seen := map[*proc.Process]proc.Metrics{}
	for _, app := range b.cfg.Apps {
		c := b.consumersByApp[app]
		cm, ok := seen[c]
		if !ok {
			if cm, err = c.Scrape(ctx); err != nil {
				return s, err
			}
			seen[c] = cm
		}
		s.processed[app] = cm.Sum("clickstream_consumer_records_total", "app", app)
		if app == "archive" {
			s.archived = cm.Sum("clickstream_archive_rows_total")
		}
	}
	return s, nil
}

func (b *benchRun) keep(s sample) {
	b.mu.Lock()
	b.samples = append(b.samples, s)
	b.mu.Unlock()
}

// sample takes a sample every sampleEvery until ctx ends.
func (b *benchRun) sample(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		if s, err := b.scrapeAll(ctx); err == nil {
			b.keep(s)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// profile takes every component's CPU profile from a third into the load
// (past the warm-up), unless the load ends first.
func (b *benchRun) profile(ctx, load context.Context) []string {
	select {
	case <-time.After(b.cfg.Duration / 3):
	case <-load.Done():
		return nil
	}
	fmt.Fprintf(b.cfg.Progress, "bench: CPU profiles of every component for %s into %s\n", b.cfg.ProfileFor, b.cfg.ProfileDir)
	var errs []string
	b.r.ProfilePaths, errs = fetchProfiles(ctx, b.comps, b.cfg.ProfileDir, b.cfg.ProfileFor)
	return errs
}

// delivered waits up to 30 s until the collector's producer has delivered
// what the collector accepted, and returns the events on the stream.
func (b *benchRun) delivered(ctx context.Context) (float64, error) {
	for end := time.Now().Add(30 * time.Second); ; {
		m, err := b.collector.Scrape(ctx)
		if err != nil {
			return 0, err
		}
		target := m.Sum("clickstream_producer_records_sent_total")
		if target >= m.Sum("clickstream_collector_events_total", "result", "accepted") || time.Now().After(end) {
			return target, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// drain samples until every consumer processed target events and the
// archive wrote them — and a complete minute window was published, so the
// window latency has a sample even in a short run — or Drain passes. It
// returns when each caught up ("archive-written" for the archive's rows).
func (b *benchRun) drain(ctx context.Context, target float64, windowsSeen *atomic.Int64) (map[string]time.Time, error) {
	caught := map[string]time.Time{}
	deadline := time.Now().Add(b.cfg.Drain)
	withArchive := slices.Contains(b.cfg.Apps, "archive")
	wantCaught := len(b.cfg.Apps)
	if withArchive {
		wantCaught++ // and written
	}
	for time.Now().Before(deadline) && (len(caught) < wantCaught || windowsSeen.Load() == 0) {
		s, err := b.scrapeAll(ctx)
		if err != nil {
			return nil, err
		}
		for _, app := range b.cfg.Apps {
			if _, ok := caught[app]; !ok && s.processed[app] >= target {
				caught[app] = s.at
			}
		}
		if _, ok := caught["archive-written"]; withArchive && !ok && s.archived >= target {
			caught["archive-written"] = s.at
		}
		b.keep(s)
		time.Sleep(500 * time.Millisecond)
	}
	return caught, nil
}

// results fills in throughput, what each consumer processed, when it
// caught up, and the lag analysis of the samples.
func (b *benchRun) results(ctx context.Context, target float64, caught map[string]time.Time, loadStart, loadEnd time.Time) {
	r := b.r
	last, _ := b.scrapeAll(ctx)
	r.OnStream = int64(target)
	r.EventsPerSec = target / loadEnd.Sub(loadStart).Seconds()
	since := func(key string) time.Duration {
		if t, ok := caught[key]; ok {
			return t.Sub(loadEnd)
		}
		return -1
	}
	for _, app := range b.cfg.Apps {
		r.Processed[app] = int64(last.processed[app])
		r.CaughtUpAfter[app] = since(app)
	}
	r.Archived = int64(last.archived)
	r.CaughtUpAfter["archive-written"] = since("archive-written")
	b.mu.Lock()
	analyse(r, b.samples, loadStart, loadEnd)
	b.mu.Unlock()
}

// costs reads every component's counters (AWS calls) and /proc figures
// (CPU since the baseline, peak RSS), the emulators' too, and the busiest
// component's profile.
func (b *benchRun) costs(ctx context.Context, target float64) error {
	r := b.r
	var all []proc.Metrics
	seen := map[*proc.Process]bool{}
	for _, c := range b.comps {
		if seen[c] {
			continue
		}
		seen[c] = true
		m, err := c.Scrape(ctx)
		if err != nil {
			return err
		}
		all = append(all, m)
		if c == b.collector {
			r.Accepted = int64(m.Sum("clickstream_collector_events_total", "result", "accepted"))
			r.KinesisRecords = int64(m.Sum("clickstream_producer_kinesis_records_sent_total"))
			r.StreamBytes = int64(m.Sum("clickstream_producer_bytes_sent_total"))
		}
		ps, err := proc.ReadStats(c.Pid())
		if err != nil {
			return err
		}
		ps.CPUSeconds -= b.baseline[c.Pid()].CPUSeconds
		cs := componentStats(c.Name, ps, target)
		cs.DynamoDBWrites = m.AWSCalls("DynamoDB", dynamoWriteOps...) / target * 1e6
		cs.S3Puts = m.AWSCalls("S3", s3PutOps...) / target * 1e6
		r.Components = append(r.Components, cs)
	}
	names := make([]string, 0, len(b.cfg.StackPIDs))
	for name := range b.cfg.StackPIDs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		pid := b.cfg.StackPIDs[name]
		if ps, err := proc.ReadStats(pid); err == nil {
			ps.CPUSeconds -= b.baseline[pid].CPUSeconds
			r.Components = append(r.Components, componentStats("emulator: "+name, ps, target))
		}
	}
	r.Calls = countCalls(all, r)
	if busiest := busiestProfiled(r); busiest != "" {
		sum, err := summarizeProfile(busiest, r.ProfilePaths[busiest], 15)
		if err != nil {
			r.Errors = append(r.Errors, err.Error())
		} else {
			r.Profile = &sum
		}
	}
	return nil
}

// busiestProfiled is the component with the most CPU time that has a profile.
func busiestProfiled(r *Result) string {
	best, bestCPU := "", -1.0
	for _, c := range r.Components {
		if _, ok := r.ProfilePaths[c.Name]; ok && c.CPUSeconds > bestCPU {
			best, bestCPU = c.Name, c.CPUSeconds
		}
	}
	return best
}

func componentStats(name string, ps proc.Stats, events float64) ComponentStats {
	cs := ComponentStats{Name: name, CPUSeconds: ps.CPUSeconds, PeakRSS: ps.PeakRSS}
	if events > 0 {
		cs.CPUSecondsPerMillion = ps.CPUSeconds / events * 1e6
	}
	return cs
}

// analyse derives lag and count-crossing latencies from the samples.
func analyse(r *Result, samples []sample, loadStart, loadEnd time.Time) {
	sort.Slice(samples, func(i, j int) bool { return samples[i].at.Before(samples[j].at) })
	span := loadEnd.Sub(loadStart)
	mid0, mid1 := loadStart.Add(span/3), loadStart.Add(2*span/3)
	for _, app := range r.Apps {
		var midSum, endSum float64
		var midN, endN int
		for _, s := range samples {
			lag := s.onStream - s.processed[app]
			switch {
			case s.at.After(mid0) && s.at.Before(mid1):
				midSum += lag
				midN++
			case !s.at.Before(mid1) && !s.at.After(loadEnd):
				endSum += lag
				endN++
			}
		}
		if midN > 0 {
			r.LagMid[app] = midSum / float64(midN)
		}
		if endN > 0 {
			r.LagEnd[app] = endSum / float64(endN)
		}
		perSec := r.EventsPerSecDuring(samples, loadStart, loadEnd)
		r.KeptUp[app] = r.LagEnd[app] <= r.LagMid[app]+perSec
		r.ProcessedLatency[app] = percentiles(crossings(samples, func(s sample) float64 { return s.processed[app] }, loadEnd))
	}
	r.ArchiveLatency = percentiles(crossings(samples, func(s sample) float64 { return s.archived }, loadEnd))
}

// EventsPerSecDuring is the mean rate of events put on the stream between a and b.
func (r *Result) EventsPerSecDuring(samples []sample, a, b time.Time) float64 {
	var first, last *sample
	for i := range samples {
		s := &samples[i]
		if s.at.Before(a) || s.at.After(b) {
			continue
		}
		if first == nil {
			first = s
		}
		last = s
	}
	if first == nil || last == first {
		return 0
	}
	return (last.onStream - first.onStream) / last.at.Sub(first.at).Seconds()
}

// crossings: for each sample during the load at which n events had been
// put, the time until count reached n, interpolated linearly between the two
// samples around the crossing.
func crossings(samples []sample, count func(sample) float64, loadEnd time.Time) []time.Duration {
	var out []time.Duration
	j := 0
	for _, s := range samples {
		if s.at.After(loadEnd) || s.onStream == 0 {
			continue
		}
		for j < len(samples) && count(samples[j]) < s.onStream {
			j++
		}
		if j == len(samples) {
			break
		}
		at := samples[j].at
		if j > 0 {
			a, b := samples[j-1], samples[j]
			if ca, cb := count(a), count(b); cb > ca {
				f := (s.onStream - ca) / (cb - ca)
				at = a.at.Add(time.Duration(f * float64(b.at.Sub(a.at))))
			}
		}
		if d := at.Sub(s.at); d >= 0 {
			out = append(out, d)
		}
	}
	return out
}

var (
	dynamoWriteOps = []string{"UpdateItem", "PutItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
	s3PutOps       = []string{"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "ListObjectsV2", "ListMultipartUploads", "CopyObject"}
)

func countCalls(all []proc.Metrics, r *Result) Calls {
	var c Calls
	for _, m := range all {
		c.DynamoDBWrites += m.AWSCalls("DynamoDB", dynamoWriteOps...)
		c.DynamoDBReads += m.AWSCalls("DynamoDB", "GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems")
		c.S3Puts += m.AWSCalls("S3", s3PutOps...)
		c.S3Gets += m.AWSCalls("S3", "GetObject", "HeadObject")
		c.KinesisPutCalls += m.AWSCalls("Kinesis", "PutRecords", "PutRecord")
		c.KinesisGetCalls += m.AWSCalls("Kinesis", "GetRecords")
	}
	// A PUT payload unit is 25 KB of one record: at least one per record.
	c.PutPayloadUnits = max(float64(r.KinesisRecords), float64(r.StreamBytes)/25600)
	if r.EventsPerSec > 0 {
		c.ShardHoursPerMEv = float64(r.Shards) * (1e6 / r.EventsPerSec) / 3600
	}
	return c
}

// probeVectors posts one click for a fresh user every 1/rate seconds and
// measures until the read API shows the user's vector.
func probeVectors(ctx context.Context, collectorAddr, apiAddr string, rate float64) ([]time.Duration, []string) {
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs []string
		wg   sync.WaitGroup
	)
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return lat, errs
		case <-t.C:
		}
		user := fmt.Sprintf("probe-%d-%d", time.Now().UnixNano(), i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := probeOne(ctx, collectorAddr, apiAddr, user)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if ctx.Err() == nil && len(errs) < 5 {
					errs = append(errs, "vector probe: "+err.Error())
				}
				return
			}
			lat = append(lat, d)
		}()
	}
}

func probeOne(ctx context.Context, collectorAddr, apiAddr, user string) (time.Duration, error) {
	body := fmt.Sprintf(`{"type":"click","ts":%q,"user_id":%q,"item_id":"probe","placement":"probe","features":{"probe":1}}`,
		time.Now().UTC().Format(time.RFC3339Nano), user)
	start := time.Now()
	// A stop does not abandon a click in flight: the collector may have put
	// it on the stream, and the run must know whether it accepted it.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(pctx, http.MethodPost, "http://"+collectorAddr+"/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return 0, fmt.Errorf("collector answered %s", resp.Status)
	}
	u := "http://" + apiAddr + "/v1/users/" + url.PathEscape(user) + "/vector?k=1"
	deadline := start.Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return time.Since(start), nil
		}
		// Fine-grained where the target (≤ 1 s) is, coarse beyond: polling
		// every 20 ms for 30 s per probe overloaded the API and DynamoDB
		// Local whenever the vectors consumer fell behind.
		if time.Since(start) < 2*time.Second {
			time.Sleep(20 * time.Millisecond)
		} else {
			time.Sleep(250 * time.Millisecond)
		}
	}
	return 0, fmt.Errorf("user %s not visible within 30s", user)
}

// probeWindows polls the engagement metric and records, for each window
// that started after the run began, when it was first readable as
// published, minus the window's end.
func probeWindows(ctx context.Context, apiAddr string, started time.Time, seenCount *atomic.Int64) []time.Duration {
	seen := map[time.Time]bool{}
	var lat []time.Duration
	first := started.Truncate(time.Minute).Add(time.Minute) // the first complete window
	for {
		select {
		case <-ctx.Done():
			return lat
		case <-time.After(250 * time.Millisecond):
		}
		q := url.Values{"from": {first.UTC().Format(time.RFC3339)}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+apiAddr+"/v1/metrics/engagement?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		var res struct {
			Rows []struct {
				WindowStart time.Time `json:"window_start"`
				Open        bool      `json:"open"`
			} `json:"rows"`
		}
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil {
			continue
		}
		now := time.Now()
		for _, row := range res.Rows {
			if row.Open || seen[row.WindowStart] {
				continue
			}
			seen[row.WindowStart] = true
			lat = append(lat, now.Sub(row.WindowStart.Add(time.Minute)))
			seenCount.Add(1)
		}
	}
}

// cleanup deletes the run's stream, tables and archive objects.
func cleanup(c *awsx.Clients, res setup.Resources, prefix string, progress io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.Kinesis.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(res.Stream), EnforceConsumerDeletion: aws.Bool(true)})
	for _, t := range []string{res.VectorsTable, res.MetricsTable, res.LeasesTable} {
		c.DynamoDB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(t)})
	}
	n, err := deletePrefix(ctx, c, res.Bucket, prefix+"/")
	if err != nil {
		fmt.Fprintf(progress, "bench: clean-up of s3://%s/%s/: %v\n", res.Bucket, prefix, err)
		return
	}
	fmt.Fprintf(progress, "bench: deleted stream %s, 3 tables and %d archive objects\n", res.Stream, n)
}

func rateString(r float64) string {
	if r <= 0 {
		return "full speed"
	}
	return fmt.Sprintf("%.0f events/s", r)
}

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%d cores (%s)%s, %s/%s, %s", runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
