package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/cli"
	"github.com/clickstream-go/clickstream/internal/setup"
)

// resourceFlags registers the resource-name flags shared by every command.
func resourceFlags(fs *flag.FlagSet, r *setup.Resources) {
	*r = setup.Defaults()
	fs.StringVar(&r.Stream, "stream", r.Stream, "Kinesis stream name")
	fs.StringVar(&r.Bucket, "bucket", r.Bucket, "S3 bucket for the archive and dead letters")
	fs.StringVar(&r.VectorsTable, "vectors-table", r.VectorsTable, "DynamoDB table of user vectors")
	fs.StringVar(&r.MetricsTable, "metrics-table", r.MetricsTable, "DynamoDB table of minute metrics")
	fs.StringVar(&r.LeasesTable, "leases-table", r.LeasesTable, "DynamoDB table of shard leases and checkpoints")
}

func setupCommand(stdout io.Writer) *cli.Command {
	var (
		r       setup.Resources
		timeout time.Duration
	)
	return &cli.Command{
		Name:  "setup",
		Short: "create the stream, tables and bucket if missing (idempotent)",
		Long: `Creates what the pipeline needs, if missing, and prints what it created or found:
the Kinesis stream (provisioned with --shards, or --on-demand), the DynamoDB
tables for leases/checkpoints, user vectors and metrics (on-demand capacity;
TTL on the metrics table), and the S3 bucket. Running it again changes nothing.

Meant for the local stack and tests; on AWS, Terraform in infra/ creates the
same resources with the same names.`,
		Flags: func(fs *flag.FlagSet) {
			resourceFlags(fs, &r)
			fs.IntVar(&r.Shards, "shards", r.Shards, "shard count of a new provisioned stream")
			fs.BoolVar(&r.OnDemand, "on-demand", false, "create the stream in on-demand capacity mode (not supported by kinesalite)")
			fs.DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")
		},
		Run: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return cli.UsageErr("setup takes no arguments")
			}
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			c, err := awsx.Load(ctx)
			if err != nil {
				return err
			}
			return setup.Ensure(ctx, c, r, func(s setup.Status) { fmt.Fprintln(stdout, s) })
		},
	}
}
