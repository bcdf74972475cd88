package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/clickstream-go/clickstream/consumers/apps"
	"io"
	"strings"
	"time"

	"github.com/clickstream-go/clickstream/consumers/archive"
	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/consumers/vectors"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/cli"
	"github.com/clickstream-go/clickstream/internal/setup"
)

// Commands that read the consumers' outputs from the terminal.

func vectorsCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "vectors",
		Short: "read user vectors",
		Subs:  []*cli.Command{vectorsGetCommand(stdout), vectorsTopCommand(stdout)},
	}
}

func vectorsGetCommand(stdout io.Writer) *cli.Command {
	var (
		table string
		k     int
		at    string
	)
	return &cli.Command{
		Name:  "get",
		Args:  "USER",
		Short: "print a user's top features as JSON (the read API's shape)",
		Long: `Prints USER's vector exactly as GET /v1/users/{user_id}/vector returns it: the k
strongest features with their decayed click and impression sums and the ratio,
as of now or --at. Exits with status 1 and "not found" for an unknown user.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&table, "vectors-table", setup.DefaultVectorsTable, "DynamoDB table of user vectors")
			fs.IntVar(&k, "k", 20, "number of features")
			fs.StringVar(&at, "at", "", `decay values to this time: RFC 3339, "now" or relative ("-1h")`)
		},
		Run: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return cli.UsageErr("vectors get takes one USER")
			}
			var when time.Time
			if at != "" {
				t, err := metrics.ParseTime(at, time.Now())
				if err != nil {
					return cli.UsageErr("--at: %v", err)
				}
				when = t
			}
			c, err := awsx.Load(ctx)
			if err != nil {
				return err
			}
			r := vectors.NewReader(c.DynamoDB, vectors.ReaderConfig{Table: table})
			return vectors.WriteVector(ctx, stdout, r, args[0], when, k)
		},
	}
}

func vectorsTopCommand(stdout io.Writer) *cli.Command {
	var (
		table string
		n, k  int
	)
	return &cli.Command{
		Name:  "sample",
		Short: "print the top features of a few users (a scan; for small tables and demos)",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&table, "vectors-table", setup.DefaultVectorsTable, "DynamoDB table of user vectors")
			fs.IntVar(&n, "n", 5, "number of users")
			fs.IntVar(&k, "k", 5, "features per user")
		},
		Run: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return cli.UsageErr("vectors sample takes no arguments")
			}
			c, err := awsx.Load(ctx)
			if err != nil {
				return err
			}
			return vectors.WriteSummary(ctx, stdout, vectors.NewReader(c.DynamoDB, vectors.ReaderConfig{Table: table}), n, k)
		},
	}
}

func metricsCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "metrics",
		Short: "read minute metrics",
		Subs:  []*cli.Command{metricsQueryCommand(stdout), metricsListCommand(stdout)},
	}
}

func metricsQueryCommand(stdout io.Writer) *cli.Command {
	var (
		table       string
		definitions string
		from, to    string
		values      cli.StringList
		open, js    bool
	)
	return &cli.Command{
		Name:  "query",
		Args:  "METRIC [DIM=VALUE...]",
		Short: "print a metric's one-minute windows as a table",
		Long:  metrics.QueryHelp,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&table, "metrics-table", setup.DefaultMetricsTable, "DynamoDB table of minute metrics")
			fs.StringVar(&definitions, "definitions", "", "metrics definitions file (default the built-ins)")
			fs.StringVar(&from, "from", "-15m", "first window: RFC 3339, now or relative")
			fs.StringVar(&to, "to", "now", "end of the range (exclusive)")
			fs.Var(&values, "values", "value columns to print (comma-separated; default all)")
			fs.BoolVar(&open, "open", false, "include windows not yet published (the live minute)")
			fs.BoolVar(&js, "json", false, "print the API's JSON")
		},
		Run: func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return cli.UsageErr("metrics query needs a METRIC")
			}
			now := time.Now()
			q := metrics.Query{Metric: args[0], IncludeOpen: open, Dims: map[string]string{}}
			var err error
			if q.From, err = metrics.ParseTime(from, now); err != nil {
				return cli.UsageErr("--from: %v", err)
			}
			if q.To, err = metrics.ParseTime(to, now); err != nil {
				return cli.UsageErr("--to: %v", err)
			}
			for _, a := range args[1:] {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return cli.UsageErr("dimension filter %q is not NAME=VALUE", a)
				}
				q.Dims[k] = v
			}
			defs, err := apps.LoadDefinitions(definitions)
			if err != nil {
				return err
			}
			if _, ok := defs.Metric(q.Metric); !ok {
				return cli.UsageErr("unknown metric %q (defined: %s)", q.Metric, strings.Join(defs.MetricNames(), ", "))
			}
			c, err := awsx.Load(ctx)
			if err != nil {
				return err
			}
			r := metrics.NewReader(metrics.NewDynamoStore(c.DynamoDB, table), metrics.ReaderConfig{Definitions: defs})
			return metrics.RunQuery(ctx, stdout, r, q, metrics.TableOptions{Values: values, JSON: js})
		},
	}
}

func metricsListCommand(stdout io.Writer) *cli.Command {
	var definitions string
	return &cli.Command{
		Name:  "list",
		Short: "list the defined metrics, their dimensions and values",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&definitions, "definitions", "", "metrics definitions file (default the built-ins)")
		},
		Run: func(ctx context.Context, args []string) error {
			defs, err := apps.LoadDefinitions(definitions)
			if err != nil {
				return err
			}
			for _, name := range defs.MetricNames() {
				m, _ := defs.Metric(name)
				fmt.Fprintf(stdout, "%s\tby %s\tvalues %s\n", name, strings.Join(m.GroupBy, ","), strings.Join(m.ValueNames(), ","))
			}
			return nil
		},
	}
}

func archiveCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "archive",
		Short: "inspect the Parquet archive in S3",
		Long:  archive.Help,
		Subs: []*cli.Command{
			archiveInventoryCommand(stdout, "ls", "list partitions with files and bytes (listings only, fast)", false),
			archiveInventoryCommand(stdout, "stats", "partitions with files, rows (from Parquet footers), bytes and dead letters", true),
			archiveCompactCommand(stdout),
		},
	}
}

func archiveInventoryCommand(stdout io.Writer, name, short string, stats bool) *cli.Command {
	var (
		bucket, prefix, typ, from, to string
		long                          bool
	)
	return &cli.Command{
		Name:  name,
		Short: short,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&bucket, "bucket", setup.DefaultBucket, "S3 bucket of the archive")
			fs.StringVar(&prefix, "prefix", "", "key prefix of the archive")
			fs.StringVar(&typ, "type", "", "only this event type")
			fs.StringVar(&from, "from", "", "only event-time hours from this time (RFC 3339, now or relative)")
			fs.StringVar(&to, "to", "", "only event-time hours before this time")
			fs.BoolVar(&long, "objects", false, "list every object")
		},
		Run: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return cli.UsageErr("archive %s takes no arguments", name)
			}
			f := archive.Filter{Type: typ}
			now := time.Now()
			var err error
			if from != "" {
				if f.From, err = metrics.ParseTime(from, now); err != nil {
					return cli.UsageErr("--from: %v", err)
				}
			}
			if to != "" {
				if f.To, err = metrics.ParseTime(to, now); err != nil {
					return cli.UsageErr("--to: %v", err)
				}
			}
			c, err := awsx.Load(ctx)
			if err != nil {
				return err
			}
			list := archive.List
			if stats {
				list = archive.Stats
			}
			inv, err := list(ctx, c.S3, bucket, prefix, f)
			if err != nil {
				return err
			}
			return inv.WriteText(stdout, long)
		},
	}
}
