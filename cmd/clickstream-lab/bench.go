package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/clickstream-go/clickstream/internal/cli"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/lab/bench"
)

func benchCommand(stdout, stderr io.Writer) *cli.Command {
	var (
		binary   string
		cfg      bench.Config
		report   string
		appendTo bool
		stackDir string
		apps     cli.StringList
	)
	return &cli.Command{
		Name:  "bench",
		Short: "end-to-end benchmark: loadgen → collector → stream → consumers, with a report",
		Long: `Creates a fresh stream (--shards), tables and archive prefix, starts the collector,
each consumer (archive, vectors, metrics) and the API as separate processes of this
binary, drives synthetic load through the collector for --duration (at --rate, or as
fast as it goes), waits for the consumers to catch up, and prints a markdown report:

  - sustained events/s end to end, and whether each consumer kept up (its lag in
    the last third of the load no higher than in the middle third);
  - latency percentiles: put → vector visible (probe clicks read back through the
    API), put → processed per consumer and put → archived (count crossing),
    window end → metric readable;
  - CPU seconds per million events and peak RSS per component (from /proc);
  - DynamoDB writes, S3 PUTs and Kinesis calls per million events
    (clickstream_aws_requests_total of every process) and an estimated AWS cost
    per million events at list prices (stated in the report).

With --profile-dir DIR every component also serves /debug/pprof/ (--pprof-addr) and
a CPU profile of each is taken a third into the load; the report lists the busiest
component's top functions (inspect any of them with go tool pprof DIR/NAME.cpu.pprof).

With --report FILE the run replaces the "latest" section of FILE and the runs before
it move to "previous"; --report-append adds it to the latest section instead (a
benchmark made of several runs). --apps runs a subset of the consumers: without
vectors there are no vector probes, without vectors and metrics no API. Resources are deleted afterwards unless --keep.
` + "`make bench-e2e`" + ` runs it twice on a kinesalite stack behind the shard-limit proxy:
a throughput run of archive and metrics at full speed, then a latency run of all
three consumers at 1,000 events/s.`,
		Flags: func(fs *flag.FlagSet) {
			binaryFlag(fs, &binary)
			fs.IntVar(&cfg.Shards, "shards", 8, "shards of the benchmark stream")
			fs.StringVar(&cfg.Bucket, "bucket", setup.DefaultBucket, "bucket for the archive (a fresh bench/ prefix is used)")
			fs.Float64Var(&cfg.Rate, "rate", 0, "target events/s (0: as fast as the pipeline takes them)")
			fs.DurationVar(&cfg.Duration, "duration", time.Minute, "length of the load phase")
			fs.DurationVar(&cfg.Drain, "drain", time.Minute, "how long to wait for the consumers to catch up afterwards")
			fs.IntVar(&cfg.Concurrency, "concurrency", 4, "collector requests in flight")
			fs.IntVar(&cfg.BatchSize, "batch-size", 500, "events per collector request")
			fs.Float64Var(&cfg.ProbeRate, "probe-rate", 4, "vector-visibility probes per second")
			fs.DurationVar(&cfg.ArchiveMaxAge, "archive-max-age", 10*time.Second, "the archive consumer's --archive-max-age")
			fs.Var(&apps, "apps", "consumers to run: archive, vectors, metrics (repeatable or comma-separated; default all three)")
			fs.BoolVar(&cfg.Combined, "combined", false, "run the three consumers in one process")
			fs.StringVar(&cfg.ReadMode, "read-mode", "poll", `the consumers' --read-mode: "poll" (sharing each shard's 5 GetRecords calls/s) or "efo" (enhanced fan-out)`)
			fs.StringVar(&cfg.LogDir, "log-dir", "", "directory for the components' logs (default a temporary one)")
			fs.BoolVar(&cfg.Keep, "keep", false, "keep the stream, tables and archive objects")
			fs.StringVar(&cfg.Label, "label", "", `environment name in the report (default from CLICKSTREAM_LOCAL_KINESIS, e.g. "kinesalite")`)
			fs.StringVar(&cfg.Name, "name", "Run", `name of the run in the report's heading (e.g. "Throughput run")`)
			fs.StringVar(&report, "report", "", "markdown file to update (e.g. docs/BENCHMARKS.md)")
			fs.BoolVar(&appendTo, "report-append", false, "add this run to the latest runs in --report instead of starting a new latest set")
			fs.StringVar(&cfg.ProfileDir, "profile-dir", "", "take a CPU profile of every component a third into the load, into DIR/NAME.cpu.pprof; the report shows the busiest one's top functions")
			fs.DurationVar(&cfg.ProfileFor, "profile-for", 0, "length of the CPU profiles (default a third of --duration, at most 30s)")
			fs.StringVar(&stackDir, "stack-dir", "", "local stack state dir (e.g. .local): also account the emulators' CPU and RSS")
		},
		Run: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return cli.UsageErr("bench takes no arguments")
			}
			var err error
			if cfg.Binary, cfg.Clients, err = binaryAndClients(ctx, binary); err != nil {
				return err
			}
			if cfg.Label == "" {
				cfg.Label = os.Getenv("CLICKSTREAM_LOCAL_KINESIS")
				if cfg.Label == "" {
					cfg.Label = "AWS or unnamed stack"
				}
				if os.Getenv("CLICKSTREAM_LOCAL_LIMITS") != "" {
					cfg.Label += " behind the shard-limit proxy (" + os.Getenv("CLICKSTREAM_LOCAL_LIMITS") + ")"
				}
			}
			if stackDir != "" {
				cfg.StackPIDs = stackPIDs(stackDir)
			}
			cfg.Progress = stderr
			cfg.Apps = apps
			res, err := bench.Run(ctx, cfg)
			if err != nil {
				return err
			}
			return printReport(stdout, stderr, res.Markdown(), bench.E2EReport, report, appendTo, "bench")
		},
	}
}

// printReport prints a run's markdown section and, with a report path,
// writes it into that file's part for the benchmark: as the new latest run,
// or added to the latest runs with appendTo.
func printReport(stdout, stderr io.Writer, md string, part bench.ReportSection, path string, appendTo bool, who string) error {
	fmt.Fprintln(stdout, md)
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	write := part.Update
	if appendTo {
		write = part.Append
	}
	if err := write(path, md); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s: report written to %s\n", who, path)
	return nil
}

// stackPIDs reads the local stack's PID files (localstack/stack.sh writes
// STATE_DIR/run/NAME.pid).
func stackPIDs(dir string) map[string]int {
	out := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(dir, "run", "*.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			out[strings.TrimSuffix(filepath.Base(f), ".pid")] = pid
		}
	}
	return out
}
