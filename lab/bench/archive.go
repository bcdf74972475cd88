package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/lab/proc"
	"github.com/clickstream-go/clickstream/producers"
	"github.com/clickstream-go/clickstream/producers/loadgen"
)

// ArchiveConfig is one archive-efficiency run: a fixed stream is loaded
// first, then `clickstream consume archive` reads it from the oldest record
// until every event is in S3, and its CPU time and peak RSS are read from
// /proc — the archive process alone, start-up included.
type ArchiveConfig struct {
	Binary  string // the clickstream binary
	Clients *awsx.Clients
	Bucket  string
	Shards  int // default 4
	Events  int // default 100,000
	// Aggregate puts the events KPL-aggregated (many per Kinesis record),
	// as the producer library does by default; false puts one per record.
	Aggregate bool
	// MaxAge is the archive's --archive-max-age (default 5s): a fixed
	// stream is read in seconds, so the last partial files are flushed by
	// age.
	MaxAge time.Duration
	// Args are more flags for `consume archive` (e.g. --archive-memory-budget).
	Args []string
	// Runs is how many times the archive reads the stream (default 1): the
	// stream is loaded once, and each run starts from its oldest record with
	// a leases table and an S3 prefix of its own. The figures are those of
	// the median run by CPU time; every run is listed. On a shared machine a
	// single run varies by ±15%. A warm-up run of Binary comes first and is
	// not counted (ArchiveResult.WarmUp).
	Runs int
	// Versus is another clickstream binary run as many times, alternately
	// with Binary on the same stream (Binary first): a before/after
	// comparison under the same conditions.
	Versus string
	// Timeout bounds the wait for every event to be archived (default 10m).
	Timeout time.Duration

	// ProfileDir, when set, gets a CPU profile of the warm-up run from its
	// start, for ProfileFor (default 20s; the run waits for it):
	// DIR/consume-archive.cpu.pprof.
	ProfileDir string
	ProfileFor time.Duration
	LogDir     string
	Keep       bool
	Label      string
	Name       string
	Env        []string // environment of the archive process [os.Environ()]
	Progress   io.Writer
}

// ArchiveResult is what an archive-efficiency run measured.
type ArchiveResult struct {
	Name, Label, Machine string
	Started              time.Time
	Shards               int
	Aggregate            bool
	Args                 []string

	Events         int64 // put and acknowledged by Kinesis
	KinesisRecords int64 // Kinesis records holding them (aggregates count once)
	OnStream       int64 // user records read back from the stream
	LoadTook       time.Duration

	ArchiveRun // the median run of Binary (by CPU time)
	// Runs are every run of Binary, in order; VersusRuns those of Versus.
	Runs, VersusRuns []ArchiveRun
	// WarmUp is the first run of Binary, profiled when ProfileDir is set
	// and counted in neither Runs nor the median: a profiled run pays for
	// its samples, and the first read of a freshly loaded stream was often
	// the slowest of a series (1.71 against 1.26-1.37 CPU-s on 200,000
	// plain events); with Versus, the binary run first paid both.
	WarmUp         ArchiveRun
	Binary, Versus string

	Profile *ProfileSummary
	Errors  []string
}

// ArchiveRun is what one run of the archive over the stream measured.
type ArchiveRun struct {
	Rows, Objects, Bytes, Bad int64         // the archive's counters at the end
	Took                      time.Duration // process start → last row written
	CPUSeconds                float64       // of the archive process, start → last row
	PeakRSS                   int64         // VmHWM of the archive process
}

// EventsPerCPUSecond is the headline figure.
func (r ArchiveRun) EventsPerCPUSecond() float64 {
	if r.CPUSeconds <= 0 {
		return 0
	}
	return float64(r.Rows) / r.CPUSeconds
}

// medianRun is the run of median CPU time (the lower middle one of an even
// count).
func medianRun(runs []ArchiveRun) ArchiveRun {
	if len(runs) == 0 {
		return ArchiveRun{}
	}
	s := slices.Clone(runs)
	slices.SortStableFunc(s, func(a, b ArchiveRun) int { return cmp.Compare(a.CPUSeconds, b.CPUSeconds) })
	return s[(len(s)-1)/2]
}

// RunArchive loads a fresh stream, runs the archive over it and returns the
// figures. Resources are deleted afterwards unless Keep.
func RunArchive(ctx context.Context, cfg ArchiveConfig) (*ArchiveResult, error) {
	cfg.Shards = cmp.Or(cfg.Shards, 4)
	cfg.Events = cmp.Or(cfg.Events, 100_000)
	cfg.MaxAge = cmp.Or(cfg.MaxAge, 5*time.Second)
	cfg.Timeout = cmp.Or(cfg.Timeout, 10*time.Minute)
	cfg.ProfileFor = cmp.Or(cfg.ProfileFor, 20*time.Second)
	cfg.Runs = max(cfg.Runs, 1)
	cfg.Bucket = cmp.Or(cfg.Bucket, setup.DefaultBucket)
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	if cfg.Binary == "" || cfg.Clients == nil {
		return nil, errors.New("bench-archive: Binary and Clients are required")
	}
	id := time.Now().UTC().Format("20060102-150405")
	prefix := "bench-archive/" + id
	res := setup.Resources{Stream: "bench-archive-" + id, Shards: cfg.Shards, Bucket: cfg.Bucket,
		VectorsTable: "bench-archive-" + id + "-vectors", MetricsTable: "bench-archive-" + id + "-metrics",
		LeasesTable: "bench-archive-" + id + "-leases"}
	r := &ArchiveResult{Name: cmp.Or(cfg.Name, "Run"), Label: cfg.Label, Machine: machine(), Started: time.Now(),
		Shards: cfg.Shards, Aggregate: cfg.Aggregate, Args: cfg.Args, Binary: cfg.Binary, Versus: cfg.Versus}
	fmt.Fprintf(cfg.Progress, "bench-archive: creating stream %s (%d shards), tables, prefix s3://%s/%s\n", res.Stream, res.Shards, res.Bucket, prefix)
	if err := setup.Ensure(ctx, cfg.Clients, res, nil); err != nil {
		return nil, err
	}
	// Every run after the first has a leases table of its own: with no
	// checkpoint, it reads the stream from its oldest record.
	runs := cfg.Runs
	if cfg.Versus != "" {
		runs *= 2
	}
	runs++ // the warm-up
	leases := []string{res.LeasesTable}
	for i := 2; i <= runs; i++ {
		leases = append(leases, fmt.Sprintf("%s-%d", res.LeasesTable, i))
	}
	if !cfg.Keep {
		defer func() {
			cleanup(cfg.Clients, res, prefix, cfg.Progress)
			for _, t := range leases[1:] {
				cfg.Clients.DynamoDB.DeleteTable(context.WithoutCancel(ctx), &dynamodb.DeleteTableInput{TableName: aws.String(t)})
			}
		}()
	}
	for _, t := range leases[1:] {
		if _, err := setup.EnsureTable(ctx, cfg.Clients.DynamoDB, setup.LeasesTable.Named(t)); err != nil {
			return nil, err
		}
	}
	if cfg.LogDir == "" {
		d, err := os.MkdirTemp("", "clickstream-bench-archive-")
		if err != nil {
			return nil, err
		}
		cfg.LogDir = d
	} else if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, err
	}

	if err := loadFixedStream(ctx, cfg, res.Stream, r); err != nil {
		return nil, err
	}
	if err := countStream(ctx, cfg.Clients, res.Stream, r); err != nil {
		return nil, err
	}
	if r.OnStream != r.Events {
		r.Errors = append(r.Errors, fmt.Sprintf("%d events acknowledged but %d user records on the stream", r.Events, r.OnStream))
	}
	warm := res
	warm.LeasesTable = leases[len(leases)-1]
	fmt.Fprintf(cfg.Progress, "bench-archive: warm-up run (not counted): %s\n", cfg.Binary)
	wu, err := runArchive(ctx, cfg, cfg.Binary, warm, prefix+"/warm-up", true, r)
	if err != nil {
		return nil, err
	}
	r.WarmUp = wu
	n := 0
	for i := range cfg.Runs {
		for _, vs := range []bool{false, true} {
			if vs && cfg.Versus == "" {
				continue
			}
			bin, name := cfg.Binary, "run"
			if vs {
				bin, name = cfg.Versus, "versus-run"
			}
			run := res
			run.LeasesTable = leases[n]
			fmt.Fprintf(cfg.Progress, "bench-archive: %s %d of %d: %s\n", name, i+1, cfg.Runs, bin)
			ar, err := runArchive(ctx, cfg, bin, run, fmt.Sprintf("%s/%s-%d", prefix, name, i+1), false, r)
			if err != nil {
				return nil, err
			}
			if vs {
				r.VersusRuns = append(r.VersusRuns, ar)
			} else {
				r.Runs = append(r.Runs, ar)
			}
			n++
		}
	}
	r.ArchiveRun = medianRun(r.Runs)
	return r, nil
}

// loadFixedStream puts cfg.Events loadgen events with the producer library
// and counts what Kinesis acknowledged.
func loadFixedStream(ctx context.Context, cfg ArchiveConfig, stream string, r *ArchiveResult) error {
	p, err := producers.New(cfg.Clients.Kinesis, stream, producers.WithAggregation(cfg.Aggregate))
	if err != nil {
		return err
	}
	defer p.Close(context.WithoutCancel(ctx))
	how := "one event per Kinesis record"
	if cfg.Aggregate {
		how = "KPL-aggregated"
	}
	fmt.Fprintf(cfg.Progress, "bench-archive: putting %d events (%s)\n", cfg.Events, how)
	start := time.Now()
	st, err := loadgen.Run(ctx, loadgen.Config{GeneratorConfig: loadgen.GeneratorConfig{Seed: 1}, Events: int64(cfg.Events),
		BatchSize: 500, Concurrency: 8}, loadgen.ProducerSink{P: p}, cfg.Progress)
	if err != nil {
		return fmt.Errorf("load the stream: %w", err)
	}
	r.LoadTook = time.Since(start)
	r.Events = st.Sent
	if st.Sent != int64(cfg.Events) {
		return fmt.Errorf("load the stream: %d of %d events acknowledged (%d rejected, %d failed)", st.Sent, cfg.Events, st.Rejected, st.Failed)
	}
	return nil
}

// countStream reads the stream back as the runtime would and counts its
// Kinesis records and user records: the archive must write exactly these.
func countStream(ctx context.Context, c *awsx.Clients, stream string, r *ArchiveResult) error {
	shards, err := consumers.ListShards(ctx, c.Kinesis, stream)
	if err != nil {
		return err
	}
	var recs []consumers.Record
	for _, s := range shards {
		var n int
		recs, n, err = consumers.ReadShard(ctx, c.Kinesis, stream, s, recs[:0])
		if err != nil {
			return err
		}
		r.KinesisRecords += int64(n)
		r.OnStream += int64(len(recs))
	}
	return nil
}

// runArchive starts `consume archive` of bin, waits until it has written
// every event, and reads its CPU time and peak RSS at that moment. What goes
// wrong is added to r's Errors; with profile, r gets the CPU profile.
func runArchive(ctx context.Context, cfg ArchiveConfig, bin string, res setup.Resources, prefix string, profile bool, r *ArchiveResult) (ArchiveRun, error) {
	var ar ArchiveRun
	addr, err := proc.FreeAddr()
	if err != nil {
		return ar, err
	}
	args := []string{"consume", "archive", "--metrics-addr", addr, "--prefix", prefix, "--archive-max-age", cfg.MaxAge.String(),
		"--stream", res.Stream, "--bucket", res.Bucket, "--leases-table", res.LeasesTable}
	args = append(args, cfg.Args...)
	var pprofAddr string
	if profile && cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return ar, err
		}
		if pprofAddr, err = proc.FreeAddr(); err != nil {
			return ar, err
		}
		args = append(args, "--pprof-addr", pprofAddr)
	}
	fmt.Fprintf(cfg.Progress, "bench-archive: clickstream %s\n", strings.Join(args, " "))
	start := time.Now()
	c, err := proc.Start(bin, cfg.LogDir, "consume-archive", addr, cfg.Env, args...)
	if err != nil {
		return ar, err
	}
	c.PprofAddr = pprofAddr
	defer c.Stop(30 * time.Second)
	if err := c.WaitHealthy(ctx, time.Minute); err != nil {
		return ar, err
	}
	profDone := make(chan error, 1)
	cpuPath := filepath.Join(cfg.ProfileDir, "consume-archive.cpu.pprof")
	if pprofAddr != "" {
		go func() {
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, max(1, int(cfg.ProfileFor/time.Second)))
			profDone <- fetchProfile(ctx, url, cfg.ProfileFor, cpuPath)
		}()
	}

	deadline := time.Now().Add(cfg.Timeout)
	var m proc.Metrics
	// Every scrape costs the archive ~0.5-1 ms of CPU (gathering and encoding
	// its metrics): scraped every 100 ms, that was 5% of its CPU on this
	// stream, 100 times what a Prometheus scraping every 15 s costs. Every
	// 500 ms adds at most half a second of an idle archive's polls.
	const scrapeEvery = 500 * time.Millisecond
	for {
		if m, err = c.Scrape(ctx); err == nil && int64(m.Sum("clickstream_archive_rows_total")) >= r.OnStream {
			break
		}
		select {
		case <-c.Exited():
			return ar, fmt.Errorf("the archive exited before writing every event; its log:\n%s", c.Tail(20))
		case <-ctx.Done():
			return ar, ctx.Err()
		case <-time.After(scrapeEvery):
		}
		if time.Now().After(deadline) {
			return ar, fmt.Errorf("%d of %d events archived after %s", int64(m.Sum("clickstream_archive_rows_total")), r.OnStream, cfg.Timeout)
		}
	}
	st, err := proc.ReadStats(c.Pid())
	if err != nil {
		return ar, err
	}
	ar.Took = time.Since(start)
	ar.CPUSeconds, ar.PeakRSS = st.CPUSeconds, st.PeakRSS
	ar.Rows = int64(m.Sum("clickstream_archive_rows_total"))
	ar.Objects = int64(m.Sum("clickstream_archive_objects_total"))
	ar.Bytes = int64(m.Sum("clickstream_archive_bytes_total"))
	ar.Bad = int64(m.Sum("clickstream_archive_bad_records_total"))
	if ar.Rows != r.OnStream {
		r.Errors = append(r.Errors, fmt.Sprintf("%s: %d rows archived for %d events on the stream", bin, ar.Rows, r.OnStream))
	}
	fmt.Fprintf(cfg.Progress, "bench-archive: %d rows in %d objects after %s; %.2f CPU-s, peak RSS %d MiB\n",
		ar.Rows, ar.Objects, ar.Took.Round(time.Millisecond), ar.CPUSeconds, ar.PeakRSS>>20)
	if pprofAddr != "" {
		// A profile cut short is lost (the handler writes it when its time
		// is up): wait for it; the idle archive adds little.
		fmt.Fprintf(cfg.Progress, "bench-archive: waiting for the CPU profile (%s from the start)\n", cfg.ProfileFor)
		if err := <-profDone; err != nil {
			r.Errors = append(r.Errors, "profile: "+err.Error())
		} else if ps, err := summarizeProfile("consume-archive", cpuPath, 12); err == nil {
			r.Profile = &ps
		}
	}
	return ar, nil
}

// Markdown renders the run as a report section.
func (r *ArchiveResult) Markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	how := "plain (one event per Kinesis record)"
	if r.Aggregate {
		how = "KPL-aggregated"
	}
	w("### %s of %s (%s)\n\n", r.Name, r.Started.UTC().Format("2006-01-02 15:04 UTC"), cmp.Or(r.Label, "unnamed stack"))
	w("Machine: %s. Stream: %d shards, %d events %s in %d Kinesis records (put in %s). `clickstream consume archive",
		r.Machine, r.Shards, r.Events, how, r.KinesisRecords, r.LoadTook.Round(100*time.Millisecond))
	for _, a := range r.Args {
		w(" %s", a)
	}
	w("`, from its start to its last row written.\n\n")
	w("| figure | value |\n|---|---|\n")
	w("| events per CPU-second | **%.0f** |\n", r.EventsPerCPUSecond())
	w("| CPU-seconds (per million events) | %.2f (%.1f) |\n", r.CPUSeconds, r.CPUSeconds*1e6/float64(max(r.Rows, 1)))
	w("| peak RSS | %d MiB |\n", r.PeakRSS>>20)
	w("| wall time, start → last row | %s |\n", r.Took.Round(10*time.Millisecond))
	w("| rows written / user records on the stream | %d / %d |\n", r.Rows, r.OnStream)
	w("| objects, bytes on S3 per event | %d, %.2f |\n", r.Objects, float64(r.Bytes)/float64(max(r.Rows, 1)))
	if len(r.Runs) > 1 {
		w("\nThe figures are those of the median of %d runs by CPU time; each run's CPU-seconds and peak RSS: %s.\n",
			len(r.Runs), runList(r.Runs))
	}
	if r.WarmUp.Rows > 0 {
		how := "not counted: a freshly loaded stream's first read was often the slowest"
		if r.Profile != nil {
			how = "profiled, not counted: profiling costs CPU, and a freshly loaded stream's first read was often the slowest"
		}
		w("A first run before them (%s): %s.\n", how, runList([]ArchiveRun{r.WarmUp}))
	}
	if len(r.VersusRuns) > 0 {
		v := medianRun(r.VersusRuns)
		this, other := filepath.Base(r.Binary), filepath.Base(r.Versus)
		if this == other {
			this, other = r.Binary, r.Versus
		}
		w("\nAgainst `%s`, run alternately on the same stream (this binary first):\n\n", other)
		w("| | `%s` | `%s` |\n|---|---:|---:|\n", this, other)
		w("| events per CPU-second, median run | **%.0f** | **%.0f** |\n", r.EventsPerCPUSecond(), v.EventsPerCPUSecond())
		w("| CPU-seconds / peak RSS of each run | %s | %s |\n", runList(r.Runs), runList(r.VersusRuns))
		w("| bytes on S3 per event, median run | %.2f | %.2f |\n", float64(r.Bytes)/float64(max(r.Rows, 1)), float64(v.Bytes)/float64(max(v.Rows, 1)))
	}
	if p := r.Profile; p != nil && p.CPU > 0 {
		w("\nWhere the CPU goes (%.2f s of CPU sampled; `go tool pprof %s`):\n\n| function | flat | cum |\n|---|---|---|\n", p.CPU.Seconds(), p.Path)
		for _, f := range p.Top {
			w("| `%s` | %.1f%% | %.1f%% |\n", f.Name, 100*f.Flat, 100*f.Cum)
		}
	}
	if len(r.Errors) > 0 {
		w("\nErrors during the run:\n")
		for _, e := range r.Errors {
			w("- %s\n", e)
		}
	}
	return b.String()
}

// runList renders runs as "1.63 s / 171 MiB, 1.86 s / 150 MiB".
func runList(runs []ArchiveRun) string {
	parts := make([]string, len(runs))
	for i, r := range runs {
		parts[i] = fmt.Sprintf("%.2f s / %d MiB", r.CPUSeconds, r.PeakRSS>>20)
	}
	return strings.Join(parts, ", ")
}
