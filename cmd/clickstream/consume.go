package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/apps"
	"github.com/clickstream-go/clickstream/consumers/archive"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/consumers/vectors"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/cli"
	"github.com/clickstream-go/clickstream/internal/kinesiswire"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/lambdas/esm"
	"github.com/clickstream-go/clickstream/lambdas/functions"
)

// DefaultConsumeMetricsAddr serves /metrics and /healthz of `clickstream consume`.
// With the default, a process that finds it taken (another consume on the
// host) uses the next free port up to metricsPortsTried-1 above it.
const DefaultConsumeMetricsAddr = "127.0.0.1:9464"

// metricsPortsTried is how many ports from the default's a consume process
// tries (9464-9473): ten processes per host.
const metricsPortsTried = 10

func consumeCommand(stderr io.Writer) *cli.Command {
	var (
		r                   setup.Resources
		owner               string
		metricsAddr         string
		logFormat, logLevel string
		pprofAddr           string
		maxBytesPerCall     int64
		idle                time.Duration
		memLimit            int64
		leaseDuration       time.Duration
		poll                time.Duration
		shutdown            time.Duration
		dedupWindow         time.Duration
		dedupMaxIDs         int
		settings            apps.Settings
		host                string
		lambdaBatch         int
		lambdaWindow        time.Duration
		readMode            string
		protocol            string
		cpus                string
	)
	return &cli.Command{
		Name:  "consume",
		Args:  "NAME...",
		Short: "run consumers: archive, vectors, metrics",
		Long: `Runs one or more processors on the stream, each as its own application with its
own leases and checkpoints, in one process:

  archive   every valid event as Parquet in S3 (s3://BUCKET/PREFIX/events/...)
  vectors   per-user decayed click vectors in DynamoDB (--vectors-table)
  metrics   minute-window metrics in DynamoDB (--metrics-table)

  clickstream consume archive vectors metrics
  clickstream consume vectors --owner vectors-a     # scale out: run more processes
  clickstream consume --host lambda archive vectors metrics

--host lambda runs the Lambda functions' code path instead (lambdas/): each
processor inside its Lambda handler, invoked in-process with KinesisEvent
batches by a local event source mapping (--lambda-batch-size records, waiting
up to --lambda-batching-window; a reported batch item failure retries from
that record). Its checkpoints live under the application name esm-NAME; the
handlers keep their per-shard state under NAME as in AWS, so do not run both
hosts of one processor on the same tables at once.

Reading: --read-mode poll (default) or efo, for every application of the
process, or per application: --read-mode vectors=efo, or efo,archive=poll.

  poll  GetRecords. Every application polling a stream shares each shard's
        5 calls/s and 2 MiB/s, so each added application slows the others.
  efo   enhanced fan-out: each application registers a stream consumer named
        after it (at start, if missing) and Kinesis pushes records over
        SubscribeToShard within ~70 ms, with 2 MiB/s per shard of its own.
        It pays off with more than one or two applications on a stream, or a
        latency target (vectors: put → visible under a second). AWS bills it
        per consumer-shard-hour (~$0.015) and per GB read (~$0.013); a stream
        consumer costs until deregistered: clickstream stream consumers lists
        them, clickstream stream deregister-consumer NAME removes one.
        Subscriptions are renewed every 5 minutes and after errors (counted in
        clickstream_consumer_subscribe_errors_total), never replaced by polling.
        On the local stack, Kinesis goes through the proxy that serves fan-out
        (make up does this by default).

Polling: every application reading a stream shares each shard's 5 GetRecords calls/s:
with N of them, give each a --poll-interval of about N×200ms, or give the
latency-critical one (vectors) more, e.g. vectors 340ms and two others 1s.
Throttled calls back off (from --poll-interval, doubling) and are counted in
clickstream_consumer_get_records_errors_total. A caught-up shard that returned nothing
waits --idle-interval before the next call: a latency-critical consumer should
set it to its --poll-interval.

Bad records (not JSON, invalid events, corrupt KPL aggregates) are written to
s3://BUCKET/PREFIX/errors/ with their reason and never stop a shard.

Copies of an event (the same id twice on a shard: a producer retried a
PutRecords call, or an app a collector request, whose answer was lost) are
applied once: every application remembers the ids of the last --dedup-window
(1m) of each shard, at most --dedup-max-ids, skips later copies and counts them
in clickstream_consumer_duplicate_events_total. A restarted shard re-reads the
window before its checkpoint to rebuild it, and a child shard starts with its
parents' last window (a retry across a reshard). Not caught: a copy arriving
later than the window, and events without an id.

Prometheus metrics (lag per shard, records/s, processor figures) and /healthz
are served on --metrics-addr. SIGINT/SIGTERM flush, checkpoint and release every shard.

` + consumers.Help,
		Flags: func(fs *flag.FlagSet) {
			resourceFlags(fs, &r)
			fs.StringVar(&owner, "owner", "", "unique name of this process in the lease table (default hostname-pid-random)")
			fs.StringVar(&metricsAddr, "metrics-addr", DefaultConsumeMetricsAddr, `listen address of /metrics and /healthz ("" to disable); with the default, a second process on the host takes the next free port up to :9473 and logs it`)
			fs.DurationVar(&leaseDuration, "lease-duration", consumers.DefaultLeaseDuration, "lease expiry without renewal: the fail-over time after a crash")
			fs.StringVar(&readMode, "read-mode", consumers.ReadPoll, `how shards are read: "poll" (GetRecords) or "efo" (enhanced fan-out), for every application or per application ("vectors=efo", "efo,archive=poll")`)
			fs.StringVar(&protocol, "get-records-protocol", protoJSON, `how GetRecords answers are read (--read-mode poll): "json" (the Go SDK's wire format, decoded ~4x cheaper than the SDK does), "cbor" (what the AWS Java SDK uses: record data as raw bytes, not base64, yet no cheaper to decode than json; works with kinesis-local, not with kinesalite, which cuts CBOR answers above ~16 KiB, nor behind the shard-limit proxy, which meters only JSON reads), or "sdk" (the SDK's own decoder)`)
			fs.DurationVar(&poll, "poll-interval", 200*time.Millisecond, "minimum time between GetRecords calls on a shard")
			fs.DurationVar(&idle, "idle-interval", consumers.DefaultIdleInterval, "wait after an empty GetRecords on a caught-up shard (latency-critical consumers: set it to --poll-interval)")
			fs.StringVar(&cpus, "cpus", procsAuto, `cores the process runs on (Go's GOMAXPROCS): "auto" starts with one and doubles them while the process keeps them over 70% busy, up to the machine's or its container's limit, and gives one back after 30s when one fewer would be at most 35% busy (a consumer waits on AWS most of the time, and one core spends 6-15% less CPU per event than two); or a number. A GOMAXPROCS in the environment stands with "auto"`)
			fs.Int64Var(&memLimit, "memory-limit", 0, "soft memory limit of the Go runtime in bytes (0: when archive runs and GOMEMLIMIT is unset, 48 MiB above what the archive buffers, at most --archive-memory-budget + 160 MiB, and at least a quarter of the live heap above it, raised while collections take over 10% of the CPU; negative: none)")
			fs.Int64Var(&maxBytesPerCall, "max-bytes-per-call", consumers.DefaultMaxBytesPerCall, "bytes of record data a GetRecords call asks for (from the mean record size; bounds memory per shard)")
			fs.DurationVar(&shutdown, "shutdown-timeout", 30*time.Second, "bound on the graceful stop")
			fs.DurationVar(&dedupWindow, "dedup-window", consumers.DefaultDedupWindow, "skip a copy of an event id arriving within this long of it on the same shard (negative: off)")
			fs.IntVar(&dedupMaxIDs, "dedup-max-ids", consumers.DefaultDedupMaxIDs, "event ids remembered per shard for --dedup-window, 22-38 bytes of heap each (negative: off)")
			apps.Flags(fs, &settings)
			fs.StringVar(&host, "host", hostRuntime, `how processors run: "runtime" (long-running consumers) or "lambda" (the Lambda handlers under a local event source mapping)`)
			fs.IntVar(&lambdaBatch, "lambda-batch-size", 0, "--host lambda: Kinesis records per invocation (0: infra's defaults, archive 10000, vectors 1000, metrics 5000)")
			fs.DurationVar(&lambdaWindow, "lambda-batching-window", -1, "--host lambda: how long a batch waits to fill (negative: archive --archive-max-age, vectors 0, metrics 10s)")
			logFlags(fs, &logFormat, &logLevel)
			pprofFlag(fs, &pprofAddr)
		},
		Run: func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return cli.UsageErr("name at least one processor: %s", strings.Join(apps.Names(), ", "))
			}
			if host != hostRuntime && host != hostLambda {
				return cli.UsageErr("--host must be %s or %s, not %q", hostRuntime, hostLambda, host)
			}
			modes, err := parseReadModes(readMode, args)
			if err != nil {
				return cli.UsageErr("--read-mode: %v", err)
			}
			if protocol != protoJSON && protocol != protoCBOR && protocol != protoSDK {
				return cli.UsageErr("--get-records-protocol must be %s, %s or %s, not %q", protoJSON, protoCBOR, protoSDK, protocol)
			}
			nCPUs, err := parseCPUs(cpus)
			if err != nil {
				return cli.UsageErr("%v", err)
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
			c, err := awsx.Load(ctx)
			if err != nil {
				return err
			}
			if owner == "" {
				owner = consumers.DefaultOwner()
			}
			reg := newRegistry()
			settings.Bucket, settings.VectorsTable, settings.MetricsTable = r.Bucket, r.VectorsTable, r.MetricsTable
			settings.Logger, settings.Registerer = log, reg
			if settings.Metrics.Definitions, err = apps.LoadDefinitions(settings.DefinitionsFile); err != nil {
				return cli.UsageErr("--definitions: %v", err)
			}
			var reader consumers.KinesisAPI = c.Kinesis
			switch protocol {
			case protoJSON:
				reader = kinesiswire.Wrap(c.Kinesis, kinesiswire.JSON)
			case protoCBOR:
				reader = kinesiswire.Wrap(c.Kinesis, kinesiswire.CBOR)
			}
			runners, err := buildRunners(c, args, runnerSpec{
				reader: reader, res: r, owner: owner, host: host, settings: settings, lambdaBatch: lambdaBatch, lambdaWindow: lambdaWindow, readModes: modes,
				template: consumers.Config{
					LeaseDuration: leaseDuration, PollInterval: poll, ShutdownTimeout: shutdown, MaxBytesPerCall: maxBytesPerCall,
					IdleInterval: idle, DedupWindow: dedupWindow, DedupMaxIDs: dedupMaxIDs, Registerer: reg,
				},
			}, log)
			if err != nil {
				return err
			}
			switch lim, follow := memoryLimit(memLimit, os.Getenv("GOMEMLIMIT") != "", slices.Contains(args, archive.Name), cmp.Or(settings.Archive.MemoryBudget, archive.DefaultMemoryBudget)); {
			case follow:
				go newMemoryGovernor(archive.BufferedBytes, lim).run(ctx, memoryInterval)
				log.Info("soft memory limit follows the archive's buffers", "reserve_bytes", memoryReserve, "max_bytes", lim)
			case lim > 0:
				debug.SetMemoryLimit(lim)
				log.Info("soft memory limit", "bytes", lim)
			}
			defer startCores(ctx, nCPUs, log)()
			if metricsAddr != "" {
				ln, err := listenMetrics(metricsAddr, metricsAddr == DefaultConsumeMetricsAddr)
				if err != nil {
					return err
				}
				if got := ln.Addr().String(); got != metricsAddr {
					log.Info("metrics address in use (another consume on this host?); serving on the next free port", "wanted", metricsAddr, "metrics_addr", got)
					metricsAddr = got
				}
				stopHTTP := serveMetrics(ctx, ln, reg, log)
				defer stopHTTP()
			}
			log.Info("consuming", "host", host, "stream", r.Stream, "processors", strings.Join(args, ","), "owner", owner, "metrics_addr", metricsAddr)
			err = consumers.RunAll(ctx, runners...)
			if errors.Is(err, context.Canceled) {
				err = nil
			}
			return err
		},
	}
}

// How GetRecords answers are read (--get-records-protocol).
const (
	protoJSON = "json" // JSON, decoded by internal/kinesiswire
	protoCBOR = "cbor"
	protoSDK  = "sdk" // JSON, decoded by the SDK
)

// runnerSpec is what buildRunners needs from consume's flags.
type runnerSpec struct {
	reader       consumers.KinesisAPI // the runners' Kinesis client: c.Kinesis, or it with GetRecords read by internal/kinesiswire
	res          setup.Resources
	owner, host  string
	settings     apps.Settings
	lambdaBatch  int
	lambdaWindow time.Duration
	readModes    map[string]string // by application; missing: poll
	// template holds the runtime's knobs; Stream, Processor, clients,
	// Owner, App and Logger are filled in per application.
	template consumers.Config
}

// buildRunners builds one Runner per application named in args, hosting
// its processor directly (--host runtime) or inside its Lambda handler
// behind a local event source mapping (--host lambda).
func buildRunners(c *awsx.Clients, args []string, spec runnerSpec, log *slog.Logger) ([]*consumers.Runner, error) {
	dlq := consumers.NewS3DeadLetter(c.S3, spec.res.Bucket, spec.settings.Prefix)
	seen := map[string]bool{}
	var runners []*consumers.Runner
	for _, name := range args {
		if seen[name] {
			return nil, cli.UsageErr("processor %q named twice", name)
		}
		seen[name] = true
		app, err := apps.Lookup(name)
		if err != nil {
			return nil, cli.UsageErr("%v", err)
		}
		settings := spec.settings
		if settings.Vectors.Coalesce < 0 {
			settings.Vectors.Coalesce = 0
			if spec.readModes[name] == consumers.ReadEFO && spec.host == hostRuntime {
				settings.Vectors.Coalesce = vectors.DefaultEFOCoalesce
			}
		}
		var p consumers.Processor
		if spec.host == hostLambda {
			p, err = lambdaMapping(app, c, functions.Config{
				Stream: spec.res.Stream, LeasesTable: spec.res.LeasesTable, StateOwner: spec.owner, Settings: settings,
			}, spec.lambdaBatch, spec.lambdaWindow)
		} else {
			p, err = app.New(c, settings)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		cfg := spec.template
		cfg.Stream, cfg.Processor, cfg.Kinesis = spec.res.Stream, p, spec.reader
		if cfg.Kinesis == nil {
			cfg.Kinesis = c.Kinesis
		}
		cfg.Leases, cfg.DeadLetter, cfg.Owner = leases.NewDynamoStore(c.DynamoDB, spec.res.LeasesTable), dlq, spec.owner
		cfg.Logger = runnerLog(spec.host, log, log.With("app", name))
		cfg.ReadMode = spec.readModes[name]
		runner, err := consumers.NewRunner(cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		runners = append(runners, runner)
	}
	return runners, nil
}

// parseReadModes reads --read-mode: a mode for every application ("efo"),
// per application ("vectors=efo"), or both ("efo,archive=poll"), for the
// applications in names.
func parseReadModes(s string, names []string) (map[string]string, error) {
	all := consumers.ReadPoll
	per := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		name, mode, named := strings.Cut(part, "=")
		if !named {
			name, mode = "", part
		}
		if mode != consumers.ReadPoll && mode != consumers.ReadEFO {
			return nil, fmt.Errorf("%q: the mode is %q or %q", part, consumers.ReadPoll, consumers.ReadEFO)
		}
		switch {
		case !named:
			all = mode
		case !slices.Contains(names, name):
			return nil, fmt.Errorf("%q: %s is not one of the applications run (%s)", part, name, strings.Join(names, ", "))
		default:
			per[name] = mode
		}
	}
	out := map[string]string{}
	for _, n := range names {
		out[n] = cmp.Or(per[n], all)
	}
	return out, nil
}

// listenMetrics listens on addr; when it is taken and fallback is set (the
// default address), on the next free port of the metricsPortsTried from it.
// The error names the flag to change.
func listenMetrics(addr string, fallback bool) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil || !fallback || !errors.Is(err, syscall.EADDRINUSE) {
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w (set --metrics-addr to a free address, or \"\" to serve no metrics)", addr, err)
		}
		return ln, nil
	}
	host, port, perr := net.SplitHostPort(addr)
	first, aerr := strconv.Atoi(port)
	if perr != nil || aerr != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	for p := first + 1; p < first+metricsPortsTried; p++ {
		if ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p))); err == nil {
			return ln, nil
		}
	}
	return nil, fmt.Errorf("listen for metrics: ports %d-%d on %s are all in use: give this process its own --metrics-addr (or \"\" to serve no metrics)",
		first, first+metricsPortsTried-1, host)
}

// serveMetrics serves /metrics (reg) and /healthz on ln until stopped.
func serveMetrics(ctx context.Context, ln net.Listener, reg *prometheus.Registry, log *slog.Logger) (stop func()) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	return serveOn(ctx, ln, mux, log)
}

// memoryLimit is the soft memory limit consume sets (0: none), and whether
// it follows the archive's buffers up to that (memoryGovernor). The
// archive's buffers are most of its heap, and with GOGC=100 the RSS can
// reach twice the heap between collections; a limit a reserve above them
// makes the collector work harder instead. Without the archive, or with
// GOMEMLIMIT set, the runtime's own setting stands.
func memoryLimit(flag int64, envSet, archiveRuns bool, budget int64) (limit int64, follow bool) {
	switch {
	case flag < 0:
		return 0, false
	case flag > 0:
		return flag, false
	case envSet || !archiveRuns:
		return 0, false // GOMEMLIMIT is applied by the runtime itself
	}
	return budget + 160<<20, true
}

// memoryInterval is how often the memory governor looks at the buffers:
// at 20,000 events/s they grow ~0.3 MB in that time.
const memoryInterval = 100 * time.Millisecond

// Hosts of `consume --host`.
const (
	hostRuntime = "runtime"
	hostLambda  = "lambda"
)

// lambdaMapping builds app's Lambda function handler exactly as its main
// does and puts it behind a local event source mapping with infra's default
// batch size and window (or the flags' values).
func lambdaMapping(app apps.App, c *awsx.Clients, cfg functions.Config, batch int, window time.Duration) (consumers.Processor, error) {
	if batch <= 0 {
		batch = app.LambdaBatchSize
	}
	if window < 0 {
		window = app.LambdaBatchingWindow(cfg.Settings)
	}
	h, err := functions.NewConsumer(app.Name, c, cfg)
	if err != nil {
		return nil, err
	}
	return esm.New(app.Name, h.Handle, esm.Config{Stream: cfg.Stream, Region: c.Config.Region,
		BatchSize: batch, BatchingWindow: window, Logger: cfg.Logger.With("host", hostLambda)})
}

// runnerLog is the runner's logger: the runner adds its app (esm-NAME for
// --host lambda) itself, so only the runtime host's name is added here.
func runnerLog(host string, log, plog *slog.Logger) *slog.Logger {
	if host == hostLambda {
		return log
	}
	return plog
}

// serveBackground listens on addr (failing now if it cannot) and serves h
// until the returned stop function is called or ctx ends.
func serveBackground(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return serveOn(ctx, ln, h, log), nil
}

// serveOn serves h on ln until the returned stop function is called or ctx ends.
func serveOn(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) (stop func()) {
	addr := ln.Addr().String()
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
	}
}
