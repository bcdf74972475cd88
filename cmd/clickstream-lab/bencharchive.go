package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/clickstream-go/clickstream/internal/cli"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/lab/bench"
)

func benchArchiveCommand(stdout, stderr io.Writer) *cli.Command {
	var (
		binary   string
		cfg      bench.ArchiveConfig
		report   string
		appendTo bool
		args     cli.StringList
	)
	return &cli.Command{
		Name:  "bench-archive",
		Short: "archive efficiency: a fixed stream archived to Parquet, CPU and memory of the archive alone",
		Long: `Creates a fresh stream (--shards) and puts --events synthetic events on it with the
producer library (one per Kinesis record, or KPL-aggregated with --aggregate), reads
the stream back to count its records, then starts ` + "`clickstream consume archive`" + ` over
it from the oldest record and waits until every event is in S3. It prints:

  - events per CPU-second of the archive process, from its start to its last row
    written (CPU time from /proc, start-up included), and CPU-s per million events;
  - its peak RSS (VmHWM);
  - rows written against user records on the stream (they must be equal), objects,
    and bytes on S3 per event;
  - with --profile-dir, the top functions of a CPU profile taken from its start.

A warm-up run comes first and is not counted: it is the one profiled, and a freshly
loaded stream's first read was often the slowest. With --runs N the archive then reads the
stream N times (the stream is loaded once; each run has a leases table and an S3
prefix of its own) and the figures are the median run's, every run listed: a single
run on a shared machine varies by ±15%. With
--versus BINARY a second clickstream binary runs as many times, alternately with
the first on the same stream, and the report compares the two.

With --report FILE the run replaces the latest archive-efficiency section of FILE
(docs/BENCHMARKS.md) and the one before moves to "previous"; --report-append adds
it to the latest section. ` + "`make bench-archive`" + ` runs it twice, plain and
aggregated, on a kinesalite stack.`,
		Flags: func(fs *flag.FlagSet) {
			binaryFlag(fs, &binary)
			fs.IntVar(&cfg.Shards, "shards", 4, "shards of the benchmark stream")
			fs.IntVar(&cfg.Events, "events", 100_000, "events to put on the stream")
			fs.BoolVar(&cfg.Aggregate, "aggregate", false, "KPL-aggregate the events (many per Kinesis record)")
			fs.StringVar(&cfg.Bucket, "bucket", setup.DefaultBucket, "bucket for the archive (a fresh bench-archive/ prefix is used)")
			fs.DurationVar(&cfg.MaxAge, "archive-max-age", 5*time.Second, "the archive's --archive-max-age")
			fs.IntVar(&cfg.Runs, "runs", 1, "times the archive reads the stream; the figures are the median run's")
			fs.StringVar(&cfg.Versus, "versus", "", "another clickstream binary, run --runs times alternately with --binary on the same stream, for a before/after comparison")
			fs.Var(&args, "arg", "one more flag for `consume archive`, e.g. --arg=--archive-memory-budget=64MiB (repeatable)")
			fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "give up when not every event is archived after this long")
			fs.StringVar(&cfg.ProfileDir, "profile-dir", "", "take a CPU profile of the warm-up run from its start into DIR/consume-archive.cpu.pprof; the report shows its top functions")
			fs.DurationVar(&cfg.ProfileFor, "profile-for", 20*time.Second, "length of the CPU profile (the run waits for it)")
			fs.StringVar(&cfg.LogDir, "log-dir", "", "directory for the archive's log (default a temporary one)")
			fs.BoolVar(&cfg.Keep, "keep", false, "keep the stream, tables and archive objects")
			fs.StringVar(&cfg.Label, "label", "", `environment name in the report (default from CLICKSTREAM_LOCAL_KINESIS, e.g. "kinesalite")`)
			fs.StringVar(&cfg.Name, "name", "Run", `name of the run in the report's heading (e.g. "Plain records")`)
			fs.StringVar(&report, "report", "", "markdown file to update (e.g. docs/BENCHMARKS.md)")
			fs.BoolVar(&appendTo, "report-append", false, "add this run to the latest runs in --report instead of starting a new latest set")
		},
		Run: func(ctx context.Context, rest []string) error {
			if len(rest) > 0 {
				return cli.UsageErr("bench-archive takes no arguments")
			}
			if cfg.Runs < 1 {
				return cli.UsageErr("--runs must be at least 1")
			}
			var err error
			if cfg.Binary, cfg.Clients, err = binaryAndClients(ctx, binary); err != nil {
				return err
			}
			if cfg.Label == "" {
				cfg.Label = os.Getenv("CLICKSTREAM_LOCAL_KINESIS")
			}
			cfg.Args = args
			cfg.Progress = stderr
			res, err := bench.RunArchive(ctx, cfg)
			if err != nil {
				return err
			}
			if err := printReport(stdout, stderr, res.Markdown(), bench.ArchiveReport, report, appendTo, "bench-archive"); err != nil {
				return err
			}
			if len(res.Errors) > 0 {
				return fmt.Errorf("bench-archive: %d problems (see the report)", len(res.Errors))
			}
			return nil
		},
	}
}
