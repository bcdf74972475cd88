package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/archive"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/consumers/vectors"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/setup"
)

// DefaultConsumeMetricsAddr serves /metrics and /healthz of `clickstream consume`.
const DefaultConsumeMetricsAddr = "127.0.0.1:9464"

// processorNames are the processors `consume` can run, in help order.
var processorNames = []string{archive.Name, vectors.DefaultName, metrics.AppName}

func consumeCommand(stderr io.Writer) *command {
	var (
		r                   setup.Resources
		prefix              string
		owner               string
		metricsAddr         string
		logFormat, logLevel string
		leaseDuration       time.Duration
		poll                time.Duration
		shutdown            time.Duration
		archiveCfg          archive.Config
		vectorsCfg          vectors.Config
		metricsCfg          metrics.Config
		definitions         string
	)
	return &command{
		name:  "consume",
		args:  "NAME...",
		short: "run consumers: archive, vectors, metrics",
		long: `Runs one or more processors on the stream, each as its own application with its
own leases and checkpoints, in one process:

  archive   every valid event as Parquet in S3 (s3://BUCKET/PREFIX/events/...)
  vectors   per-user decayed click vectors in DynamoDB (--vectors-table)
  metrics   minute-window metrics in DynamoDB (--metrics-table)

  clickstream consume archive vectors metrics
  clickstream consume vectors --owner vectors-a     # scale out: run more processes

Bad records (not JSON, invalid events, corrupt KPL aggregates) are written to
s3://BUCKET/PREFIX/errors/ with their reason and never stop a shard. Prometheus
metrics (lag per shard, records/s, processor figures) and /healthz are served on
--metrics-addr. SIGINT/SIGTERM flush, checkpoint and release every shard.

` + consumers.Help,
		flags: func(fs *flag.FlagSet) {
			resourceFlags(fs, &r)
			fs.StringVar(&prefix, "prefix", "", "key prefix in the bucket for the archive and dead letters")
			fs.StringVar(&owner, "owner", "", "unique name of this process in the lease table (default hostname-pid-random)")
			fs.StringVar(&metricsAddr, "metrics-addr", DefaultConsumeMetricsAddr, `listen address of /metrics and /healthz ("" to disable)`)
			fs.DurationVar(&leaseDuration, "lease-duration", consumers.DefaultLeaseDuration, "lease expiry without renewal: the fail-over time after a crash")
			fs.DurationVar(&poll, "poll-interval", 200*time.Millisecond, "minimum time between GetRecords calls on a shard")
			fs.DurationVar(&shutdown, "shutdown-timeout", 30*time.Second, "bound on the graceful stop")
			fs.DurationVar(&archiveCfg.MaxAge, "archive-max-age", archive.DefaultMaxAge, "archive: longest a record waits before its file is written")
			fs.StringVar(&archiveCfg.Compression, "archive-compression", archive.CompressionZstd, "archive: Parquet codec zstd, snappy, gzip or none")
			fs.Int64Var(&archiveCfg.MemoryBudget, "archive-memory-budget", 256<<20, "archive: bytes of buffered rows before the largest shard flushes")
			fs.DurationVar(&vectorsCfg.HalfLife, "half-life", 7*24*time.Hour, "vectors: half-life of the decay in event time (fixed for a table's life)")
			fs.IntVar(&vectorsCfg.MaxFeatures, "max-features", 500, "vectors: features kept per user (the weakest are pruned)")
			fs.IntVar(&vectorsCfg.Concurrency, "vectors-concurrency", 32, "vectors: DynamoDB writes in flight")
			fs.StringVar(&definitions, "definitions", "", "metrics: definitions file (YAML; default the built-in access and engagement metrics)")
			fs.DurationVar(&metricsCfg.AllowedLateness, "allowed-lateness", time.Hour, "metrics: how long late events still correct a window")
			fs.DurationVar(&metricsCfg.OutOfOrderness, "out-of-orderness", 5*time.Second, "metrics: watermark delay behind the largest event time")
			fs.DurationVar(&metricsCfg.Retention, "retention", 30*24*time.Hour, "metrics: TTL of stored windows")
			logFlags(fs, &logFormat, &logLevel)
		},
		run: func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return usageErr("name at least one processor: %s", strings.Join(processorNames, ", "))
			}
			log, err := newLogger(stderr, logFormat, logLevel)
			if err != nil {
				return err
			}
			c, err := awsx.Load(ctx)
			if err != nil {
				return err
			}
			if owner == "" {
				owner = consumers.DefaultOwner()
			}
			reg := newRegistry()
			dlq := consumers.NewS3DeadLetter(c.S3, r.Bucket, prefix)
			seen := map[string]bool{}
			var runners []*consumers.Runner
			for _, name := range args {
				if seen[name] {
					return usageErr("processor %q named twice", name)
				}
				seen[name] = true
				plog := log.With("app", name)
				var p consumers.Processor
				switch name {
				case archive.Name:
					cfg := archiveCfg
					cfg.Bucket, cfg.Prefix, cfg.Logger, cfg.Registerer = r.Bucket, prefix, plog, reg
					p, err = archive.New(c.S3, cfg)
				case vectors.DefaultName:
					cfg := vectorsCfg
					cfg.Table, cfg.Logger, cfg.Registerer = r.VectorsTable, plog, reg
					p, err = vectors.New(c.DynamoDB, cfg)
				case metrics.AppName:
					cfg := metricsCfg
					if cfg.Definitions, err = loadDefinitions(definitions); err != nil {
						return err
					}
					cfg.Logger, cfg.Registerer = plog, reg
					p, err = metrics.NewProcessor(metrics.NewDynamoStore(c.DynamoDB, r.MetricsTable), cfg)
				default:
					return usageErr("unknown processor %q (choose from %s)", name, strings.Join(processorNames, ", "))
				}
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				runner, err := consumers.NewRunner(consumers.Config{
					Stream: r.Stream, Processor: p, Kinesis: c.Kinesis,
					Leases:     leases.NewDynamoStore(c.DynamoDB, r.LeasesTable),
					DeadLetter: dlq, Owner: owner,
					LeaseDuration: leaseDuration, PollInterval: poll, ShutdownTimeout: shutdown,
					Logger: plog, Registerer: reg,
				})
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				runners = append(runners, runner)
			}
			if metricsAddr != "" {
				mux := http.NewServeMux()
				mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
				mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
				stopHTTP, err := serveBackground(ctx, metricsAddr, mux, log)
				if err != nil {
					return err
				}
				defer stopHTTP()
			}
			log.Info("consuming", "stream", r.Stream, "processors", strings.Join(args, ","), "owner", owner, "metrics_addr", metricsAddr)
			err = consumers.RunAll(ctx, runners...)
			if errors.Is(err, context.Canceled) {
				err = nil
			}
			return err
		},
	}
}

// loadDefinitions reads a metrics definitions file, or returns the built-ins for "".
func loadDefinitions(path string) (*metrics.Definitions, error) {
	if path == "" {
		return metrics.DefaultDefinitions(), nil
	}
	d, err := metrics.LoadDefinitions(path)
	if err != nil {
		return nil, fmt.Errorf("--definitions: %w", err)
	}
	return d, nil
}

// serveBackground listens on addr (failing now if it cannot) and serves h
// until the returned stop function is called or ctx ends.
func serveBackground(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "addr", addr, "err", err)
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}, nil
}
