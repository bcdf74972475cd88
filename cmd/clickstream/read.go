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
	"github.com/clickstream-go/clickstream/internal/setup"
)

// Commands that read the consumers' outputs from the terminal.

func vectorsCommand(stdout io.Writer) *command {
	return &command{
		name:  "vectors",
		short: "read user vectors",
		subs:  []*command{vectorsGetCommand(stdout), vectorsTopCommand(stdout)},
	}
}

func vectorsGetCommand(stdout io.Writer) *command {
	var (
		table string
		k     int
		at    string
	)
	return &command{
		name:  "get",
		args:  "USER",
		short: "print a user's top features as JSON (the read API's shape)",
		long: `Prints USER's vector exactly as GET /v1/users/{user_id}/vector returns it: the k
strongest features with their decayed click and impression sums and the ratio,
as of now or --at. Exits with status 1 and "not found" for an unknown user.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&table, "vectors-table", setup.DefaultVectorsTable, "DynamoDB table of user vectors")
			fs.IntVar(&k, "k", 20, "number of features")
			fs.StringVar(&at, "at", "", `decay values to this time: RFC 3339, "now" or relative ("-1h")`)
		},
		run: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return usageErr("vectors get takes one USER")
			}
			var when time.Time
			if at != "" {
				t, err := metrics.ParseTime(at, time.Now())
				if err != nil {
					return usageErr("--at: %v", err)
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

func vectorsTopCommand(stdout io.Writer) *command {
	var (
		table string
		n, k  int
	)
	return &command{
		name:  "sample",
		short: "print the top features of a few users (a scan; for small tables and demos)",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&table, "vectors-table", setup.DefaultVectorsTable, "DynamoDB table of user vectors")
			fs.IntVar(&n, "n", 5, "number of users")
			fs.IntVar(&k, "k", 5, "features per user")
		},
		run: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErr("vectors sample takes no arguments")
			}
			c, err := awsx.Load(ctx)
			if err != nil {
				return err
			}
			return vectors.WriteSummary(ctx, stdout, vectors.NewReader(c.DynamoDB, vectors.ReaderConfig{Table: table}), n, k)
		},
	}
}

func metricsCommand(stdout io.Writer) *command {
	return &command{
		name:  "metrics",
		short: "read minute metrics",
		subs:  []*command{metricsQueryCommand(stdout), metricsListCommand(stdout)},
	}
}

func metricsQueryCommand(stdout io.Writer) *command {
	var (
		table       string
		definitions string
		from, to    string
		values      stringList
		open, js    bool
	)
	return &command{
		name:  "query",
		args:  "METRIC [DIM=VALUE...]",
		short: "print a metric's one-minute windows as a table",
		long:  metrics.QueryHelp,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&table, "metrics-table", setup.DefaultMetricsTable, "DynamoDB table of minute metrics")
			fs.StringVar(&definitions, "definitions", "", "metrics definitions file (default the built-ins)")
			fs.StringVar(&from, "from", "-15m", "first window: RFC 3339, now or relative")
			fs.StringVar(&to, "to", "now", "end of the range (exclusive)")
			fs.Var(&values, "values", "value columns to print (comma-separated; default all)")
			fs.BoolVar(&open, "open", false, "include windows not yet published (the live minute)")
			fs.BoolVar(&js, "json", false, "print the API's JSON")
		},
		run: func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return usageErr("metrics query needs a METRIC")
			}
			now := time.Now()
			q := metrics.Query{Metric: args[0], IncludeOpen: open, Dims: map[string]string{}}
			var err error
			if q.From, err = metrics.ParseTime(from, now); err != nil {
				return usageErr("--from: %v", err)
			}
			if q.To, err = metrics.ParseTime(to, now); err != nil {
				return usageErr("--to: %v", err)
			}
			for _, a := range args[1:] {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return usageErr("dimension filter %q is not NAME=VALUE", a)
				}
				q.Dims[k] = v
			}
			defs, err := apps.LoadDefinitions(definitions)
			if err != nil {
				return err
			}
			if _, ok := defs.Metric(q.Metric); !ok {
				return usageErr("unknown metric %q (defined: %s)", q.Metric, strings.Join(defs.MetricNames(), ", "))
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

func metricsListCommand(stdout io.Writer) *command {
	var definitions string
	return &command{
		name:  "list",
		short: "list the defined metrics, their dimensions and values",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&definitions, "definitions", "", "metrics definitions file (default the built-ins)")
		},
		run: func(ctx context.Context, args []string) error {
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

func archiveCommand(stdout io.Writer) *command {
	return &command{
		name:  "archive",
		short: "inspect the Parquet archive in S3",
		long:  archive.Help,
		subs: []*command{
			archiveInventoryCommand(stdout, "ls", "list partitions with files and bytes (listings only, fast)", false),
			archiveInventoryCommand(stdout, "stats", "partitions with files, rows (from Parquet footers), bytes and dead letters", true),
			archiveCompactCommand(stdout),
		},
	}
}

func archiveInventoryCommand(stdout io.Writer, name, short string, stats bool) *command {
	var (
		bucket, prefix, typ, from, to string
		long                          bool
	)
	return &command{
		name:  name,
		short: short,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&bucket, "bucket", setup.DefaultBucket, "S3 bucket of the archive")
			fs.StringVar(&prefix, "prefix", "", "key prefix of the archive")
			fs.StringVar(&typ, "type", "", "only this event type")
			fs.StringVar(&from, "from", "", "only event-time hours from this time (RFC 3339, now or relative)")
			fs.StringVar(&to, "to", "", "only event-time hours before this time")
			fs.BoolVar(&long, "objects", false, "list every object")
		},
		run: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErr("archive %s takes no arguments", name)
			}
			f := archive.Filter{Type: typ}
			now := time.Now()
			var err error
			if from != "" {
				if f.From, err = metrics.ParseTime(from, now); err != nil {
					return usageErr("--from: %v", err)
				}
			}
			if to != "" {
				if f.To, err = metrics.ParseTime(to, now); err != nil {
					return usageErr("--to: %v", err)
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
