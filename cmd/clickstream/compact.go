package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/clickstream-go/clickstream/consumers/archive"
	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/cli"
	"github.com/clickstream-go/clickstream/internal/setup"
)

// archiveCompactCommand is `clickstream archive compact`.
func archiveCompactCommand(stdout io.Writer) *cli.Command {
	var (
		bucket, prefix, typ, hour, from, to string
		small, target                       int64
		minAge                              time.Duration
		compression                         string
	)
	return &cli.Command{
		Name:  "compact",
		Short: "merge an hour's small archive files into large ones (idempotent)",
		Long: `Merges the small Parquet objects of event-time hours into large ones, per
partition (type, day, hour). The Lambda archive writes one object set per
invocation, so an hour of a busy stream can hold thousands of small files,
which cost PUT requests and slow Athena, Spark and DuckDB down; run this once
per hour (for example from a scheduled job) on hours at least --min-age old.

  clickstream archive compact --hour 2026-11-22T10:00:00Z
  clickstream archive compact --from -26h --to -2h

Objects smaller than --small-bytes are merged in key order, up to
--target-bytes of input per merged object, each row once (rows are keyed by
shard, sequence and sub-sequence number), sorted by shard and position, into
compacted-HASH_FIRST_LAST.parquet named after the rows it holds. A manifest
under PREFIX/compaction/ is written before a merge and removed after its
inputs are deleted, so an interrupted run is finished by the next one, and a
run on a compacted hour changes nothing. Between writing a merged object and
deleting its inputs, readers briefly see those rows twice.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&bucket, "bucket", setup.DefaultBucket, "S3 bucket of the archive")
			fs.StringVar(&prefix, "prefix", "", "key prefix of the archive")
			fs.StringVar(&typ, "type", "", "only this event type")
			fs.StringVar(&hour, "hour", "", "the event-time hour to compact (RFC 3339, now or relative; default: the hour --min-age ago)")
			fs.StringVar(&from, "from", "", "compact every hour from this time (with --to, instead of --hour)")
			fs.StringVar(&to, "to", "", "... up to this time (exclusive)")
			fs.Int64Var(&small, "small-bytes", archive.DefaultCompactSmallBytes, "objects smaller than this are merged")
			fs.Int64Var(&target, "target-bytes", archive.DefaultCompactTargetBytes, "input bytes per merged object at most")
			fs.DurationVar(&minAge, "min-age", archive.DefaultCompactMinAge, "refuse hours that ended less than this long ago (the archive may still write to them)")
			fs.StringVar(&compression, "compression", archive.CompressionZstd, "Parquet codec of merged objects: zstd, snappy, gzip or none")
		},
		Run: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return cli.UsageErr("archive compact takes no arguments")
			}
			now := time.Now()
			var hours []time.Time
			switch {
			case hour != "" && (from != "" || to != ""):
				return cli.UsageErr("give --hour or --from/--to, not both")
			case from != "" || to != "":
				if from == "" || to == "" {
					return cli.UsageErr("--from and --to go together")
				}
				f, err := metrics.ParseTime(from, now)
				if err != nil {
					return cli.UsageErr("--from: %v", err)
				}
				t, err := metrics.ParseTime(to, now)
				if err != nil {
					return cli.UsageErr("--to: %v", err)
				}
				for h := f.UTC().Truncate(time.Hour); h.Before(t); h = h.Add(time.Hour) {
					hours = append(hours, h)
				}
			case hour != "":
				h, err := metrics.ParseTime(hour, now)
				if err != nil {
					return cli.UsageErr("--hour: %v", err)
				}
				hours = []time.Time{h}
			default:
				hours = []time.Time{now.Add(-minAge - time.Hour)}
			}
			c, err := awsx.Load(ctx)
			if err != nil {
				return err
			}
			for _, h := range hours {
				res, err := archive.Compact(ctx, c.S3, archive.CompactOptions{Bucket: bucket, Prefix: prefix, Type: typ, Hour: h,
					SmallBytes: small, TargetBytes: target, MinAge: minAge, Compression: compression})
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%s  partitions %d  merged %d objects (%d bytes) into %d (%d bytes, %d rows)  resumed %d\n",
					h.UTC().Truncate(time.Hour).Format("2006-01-02T15Z"), res.Partitions, res.Merged, res.BytesIn, res.Written, res.BytesOut, res.Rows, res.Resumed)
			}
			return nil
		},
	}
}
