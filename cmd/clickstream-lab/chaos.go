package main

import (
	"context"
	"errors"
	"flag"
	"github.com/clickstream-go/clickstream/internal/cli"
	"io"
	"time"

	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/lab/chaos"
)

// errChaosFailed makes `clickstream-lab chaos` exit non-zero after printing its table.
var errChaosFailed = errors.New("chaos run failed: see the table above")

func chaosCommand(stdout, stderr io.Writer) *cli.Command {
	var (
		binary string
		cfg    chaos.Config
		seed   uint64
	)
	return &cli.Command{
		Name:  "chaos",
		Short: "run the pipeline under faults, then verify every output against the stream",
		Long: `Creates a fresh stream (--shards), tables and archive prefix, starts one consumer
process per application (archive, vectors, metrics) and produces synthetic load
(loadgen --via kinesis at --rate) for --duration while injecting faults:

  - kill -9 of a consumer process at random times (about every --fault-every),
    restarted after up to 3 s; sometimes a second process of the same
    application is started beside the first, so leases change hands;
  - the components reach Kinesis through the in-process shard-limit proxy
    (AWS per-shard limits; 3% throttling, 1% HTTP 500, 1% dropped connections
    from 15% to 45% of the run; a restart at 75%; --no-proxy to skip);
  - a split of a shard at 30% of the run and a merge of two adjacent shards
    at 60% (--no-reshard to skip).

Then it reads every shard of the stream from TRIM_HORIZON (closed parents
included) — the accepted events — waits until every application's checkpoints
cover them (--drain), stops the consumers gracefully, and checks from the
outputs alone:

  - archive: every valid record in exactly one Parquet row (by shard, sequence
    and sub-sequence number), no other rows, every bad record a dead letter;
  - vectors: every user's vector equals the direct computation from the events
    (relative error ≤ 1e-6), event counts exact, no other users;
  - metrics: every minute window and group of access and engagement has the
    exact counts of a direct count; quantiles and unique users within their
    sketches' error.

It prints a pass/fail table and the faults injected, and exits 1 on any loss,
duplicate or difference. ` + "`make chaos`" + ` runs it for 5 minutes on a private
kinesis-local stack.`,
		Flags: func(fs *flag.FlagSet) {
			binaryFlag(fs, &binary)
			fs.IntVar(&cfg.Shards, "shards", 4, "shards of the fresh stream (before the split and merge)")
			fs.StringVar(&cfg.Bucket, "bucket", setup.DefaultBucket, "bucket for the archive (a fresh chaos/ prefix is used)")
			fs.Float64Var(&cfg.Rate, "rate", 250, "load in events/s")
			fs.DurationVar(&cfg.Duration, "duration", 5*time.Minute, "length of the load and fault phase")
			fs.DurationVar(&cfg.Drain, "drain", 4*time.Minute, "how long to wait for the consumers to catch up afterwards")
			fs.DurationVar(&cfg.FaultEvery, "fault-every", 0, "mean time between consumer faults (default duration/12, at least 5s)")
			fs.BoolVar(&cfg.NoReshard, "no-reshard", false, "skip the split and the merge")
			fs.StringVar(&cfg.ReadMode, "read-mode", "", `the consumers' --read-mode (default "poll,vectors=efo"; "poll" with --no-proxy)`)
			fs.BoolVar(&cfg.NoProxy, "no-proxy", false, "components talk to the emulator directly: no shard limits, injected faults or proxy restart")
			fs.Uint64Var(&seed, "seed", 0, "seed of the fault schedule and the load (default time-based)")
			fs.IntVar(&cfg.Users, "users", 1000, "distinct users of the load")
			fs.DurationVar(&cfg.LeaseDuration, "lease-duration", 6*time.Second, "the consumers' --lease-duration (fail-over time after a kill)")
			fs.DurationVar(&cfg.ArchiveMaxAge, "archive-max-age", 10*time.Second, "the archive consumer's --archive-max-age")
			fs.StringVar(&cfg.LogDir, "log-dir", "", "directory for the components' logs (default a temporary one)")
			fs.BoolVar(&cfg.Keep, "keep", false, "keep the stream, tables and archive objects")
		},
		Run: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return cli.UsageErr("chaos takes no arguments")
			}
			var err error
			if cfg.Binary, cfg.Clients, err = binaryAndClients(ctx, binary); err != nil {
				return err
			}
			cfg.Seed, cfg.Progress = seed, stderr
			rep, err := chaos.Run(ctx, cfg)
			if err != nil {
				return err
			}
			if err := rep.WriteText(stdout); err != nil {
				return err
			}
			if !rep.Passed() {
				return errChaosFailed
			}
			return nil
		},
	}
}
