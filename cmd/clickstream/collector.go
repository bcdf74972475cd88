package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/cli"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/producers"
	"github.com/clickstream-go/clickstream/producers/collector"
)

// newRegistry is the process's Prometheus registry: Go runtime and process
// metrics, the AWS calls made (awsx.Requests), plus whatever the components
// register.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), awsx.Requests)
	return reg
}

// logFlags registers --log-format and --log-level.
func logFlags(fs *flag.FlagSet, format, level *string) {
	fs.StringVar(format, "log-format", "text", "log format: text or json")
	fs.StringVar(level, "log-level", "info", "log level: debug, info, warn, error")
}

func collectorCommand(stderr io.Writer) *cli.Command {
	var (
		cfg                 collector.Config
		stream              string
		keys, origins       cli.StringList
		logFormat, logLevel string
		pprofAddr           string
		aggregate           bool
		linger, ackLinger   time.Duration
		maxBuffered         int
	)
	return &cli.Command{
		Name:  "collector",
		Short: "HTTP collector: POST /v1/events → Kinesis",
		Long: `Runs the HTTP collector for apps that cannot hold AWS credentials.

  POST /v1/events   a JSON array of events, NDJSON (Content-Type: application/x-ndjson)
                    or one JSON object; optional Content-Encoding: gzip.
                    Authorization: Bearer KEY (see --api-key, or --insecure-no-auth locally).
                    202 {"accepted":N,"rejected":[{"index":i,"error":"..."}]}: valid events are
                    accepted even when others in the request are not. 400 unparseable body,
                    401 bad key, 413 too large, 415 content type, 429 rate limit, 503 with
                    Retry-After (producer buffer or spool full, or not confirmed in time).
  GET  /healthz     liveness
  GET  /metrics     Prometheus metrics (collector, producer, spool)

What 202 means — nothing answered 202 is lost:
  default        the events are on the stream: the answer waits until Kinesis acknowledged
                 every one (about one PutRecords round trip; --ack-linger). If that takes
                 longer than --ack-timeout, the answer is 503.
  --spool DIR    the events are fsync'd to a write-ahead spool in DIR (concurrent requests
                 share an fsync) and shipped to the stream from there. A crash or SIGKILL
                 loses nothing: restarted on the same DIR, the collector ships what is left.
                 At least once: events shipped just before a crash may be shipped twice.
                 --spool-max-bytes bounds DIR; beyond it requests get 503.

What clients see: a 429, or a 503 refused up front (buffer or spool full), accepted nothing.
A 503 after waiting (not acknowledged in time, failed on the stream), a 500 or a dropped
connection may come although some events ARE on the stream. So clients retry 5xx and network
errors with the same events and the same "id" fields, and consumers drop repeated event ids.
Events without an id get a new one per attempt: clients that retry should set ids.

Events get an id (ULID) when they have none and received_at (server time), are
re-encoded canonically and put on the stream with partition key user_id (or id),
batched and KPL-aggregated by the producer library. SIGINT/SIGTERM drain in-flight
requests, ship what the spool holds (for up to 30s; the rest waits in DIR for the next
start) and flush the producer before exiting.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&cfg.Addr, "addr", collector.DefaultAddr, "listen address")
			fs.StringVar(&stream, "stream", setup.DefaultStream, "Kinesis stream name")
			fs.Var(&keys, "api-key", "accepted API key (repeatable or comma-separated)")
			fs.BoolVar(&cfg.InsecureNoAuth, "insecure-no-auth", false, "accept requests without an API key (local use only)")
			fs.Var(&origins, "cors-origin", `browser origin allowed to post cross-origin, or "*" (repeatable)`)
			fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", collector.DefaultMaxBodyBytes, "request body limit, compressed and decompressed")
			fs.IntVar(&cfg.MaxEvents, "max-events", collector.DefaultMaxEvents, "events per request limit")
			fs.DurationVar(&cfg.MaxFuture, "max-future", event.DefaultMaxFuture, "reject events whose ts is more than this after they were received (a wrong device clock; negative: accept any)")
			fs.Float64Var(&cfg.RatePerKey, "rate-per-key", collector.DefaultRatePerKey, "sustained events/s per API key (negative: unlimited)")
			fs.IntVar(&cfg.Burst, "burst", collector.DefaultBurst, "events a key may send at once above the rate")
			fs.BoolVar(&aggregate, "aggregate", true, "KPL-aggregate records that go to the same shard")
			fs.DurationVar(&linger, "linger", 0, "how long the producer waits to fill a batch (0: the library default)")
			fs.IntVar(&maxBuffered, "max-buffered", 0, "producer buffer in records; beyond it requests get 503 (0: the library default)")
			fs.DurationVar(&cfg.AckTimeout, "ack-timeout", collector.DefaultAckTimeout, "how long a request waits for its events to be on the stream (or fsync'd, with --spool) before 503")
			fs.DurationVar(&ackLinger, "ack-linger", producers.DefaultAckLinger, "how long events a request waits for may linger to share a PutRecords call")
			fs.StringVar(&cfg.SpoolDir, "spool", "", "write-ahead spool directory: 202 after fsync, shipped from there, survives crashes (default: 202 after the stream acknowledged)")
			fs.Int64Var(&cfg.SpoolMaxBytes, "spool-max-bytes", collector.DefaultSpoolMaxBytes, "spool size limit; beyond it requests get 503")
			logFlags(fs, &logFormat, &logLevel)
			pprofFlag(fs, &pprofAddr)
		},
		Run: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return cli.UsageErr("collector takes no arguments")
			}
			log, err := newLogger(stderr, logFormat, logLevel)
			if err != nil {
				return err
			}
			stopPprof, err := servePprof(ctx, pprofAddr, log)
			if err != nil {
				return err
			}
			defer stopPprof()
			cfg.APIKeys, cfg.AllowedOrigins = keys, origins
			c, err := awsx.Load(ctx)
			if err != nil {
				return err
			}
			reg := newRegistry()
			opts := []producers.Option{producers.WithLogger(log), producers.WithRegisterer(reg), producers.WithAggregation(aggregate), producers.WithAckLinger(ackLinger)}
			if linger > 0 {
				opts = append(opts, producers.WithLinger(linger))
			}
			if maxBuffered > 0 {
				opts = append(opts, producers.WithMaxBufferedRecords(maxBuffered))
			}
			p, err := producers.New(c.Kinesis, stream, opts...)
			if err != nil {
				return fmt.Errorf("start producer: %w", err)
			}
			srv, err := collector.New(cfg, p, log, reg)
			if err != nil {
				p.Close(context.Background())
				return err
			}
			log.Info("collector listening", "addr", cfg.Addr, "stream", stream)
			runErr := srv.Run(ctx)
			// The HTTP server has drained; ship what the spool holds, then
			// flush the producer.
			closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			spoolErr := srv.Close(closeCtx)
			closeErr := p.Close(closeCtx)
			if errors.Is(runErr, context.Canceled) {
				runErr = nil
			}
			return errors.Join(runErr, spoolErr, closeErr)
		},
	}
}
