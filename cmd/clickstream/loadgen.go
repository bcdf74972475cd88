package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/cli"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/producers"
	"github.com/clickstream-go/clickstream/producers/loadgen"
)

func loadgenCommand(stdout, stderr io.Writer) *cli.Command {
	var (
		cfg       loadgen.Config
		via       string
		url       string
		apiKey    string
		gzip      bool
		stream    string
		aggregate bool
		quiet     bool
	)
	return &cli.Command{
		Name:  "loadgen",
		Short: "generate synthetic traffic (clicks, impressions, access logs)",
		Long: `Generates realistic synthetic traffic and sends it through the HTTP collector
(--via collector, the default) or straight to Kinesis with the producer library
(--via kinesis). Users browse in sessions and see Zipf-popular items, click at a
per-placement CTR, and API routes log nginx cache statuses whose hit rate drifts
slowly and dips now and then — so vectors, metrics and alerts have something to
show. The sequence is deterministic for a given --seed.

Stops after --duration or --events (whichever comes first; neither: until
interrupted), prints a progress line every second on stderr and a summary on
stdout. sent= counts the events the receiver acknowledged: the collector's
202, or Kinesis' PutRecords answer with --via kinesis — never events only
buffered. Events that finally failed are listed with their reasons, and the
exit status is non-zero when any did. --bad-rate mixes in deliberately malformed events: the collector rejects
them (counted as rejected); via Kinesis they reach the consumers' dead-letter
path.

  clickstream loadgen --rate 500 --duration 1m
  clickstream loadgen --via kinesis --events 100000 --bad-rate 0.001`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&via, "via", "collector", "where to send: collector (HTTP) or kinesis (producer library)")
			fs.StringVar(&url, "url", "http://127.0.0.1:8080", "collector base URL (--via collector)")
			fs.StringVar(&apiKey, "api-key", "", "collector API key (--via collector)")
			fs.BoolVar(&gzip, "gzip", false, "gzip request bodies (--via collector)")
			fs.StringVar(&stream, "stream", setup.DefaultStream, "Kinesis stream (--via kinesis)")
			fs.BoolVar(&aggregate, "aggregate", true, "KPL-aggregate records (--via kinesis)")
			fs.Float64Var(&cfg.Rate, "rate", 0, "target events/s (0: as fast as the sink takes them)")
			fs.DurationVar(&cfg.Duration, "duration", 0, "stop after this long (0: no limit)")
			fs.Int64Var(&cfg.Events, "events", 0, "stop after this many events (0: no limit)")
			fs.Float64Var(&cfg.BadRate, "bad-rate", 0, "share of deliberately malformed events, 0..1")
			fs.IntVar(&cfg.BatchSize, "batch-size", loadgen.DefaultBatchSize, "events per request")
			fs.IntVar(&cfg.Concurrency, "concurrency", loadgen.DefaultConcurrency, "requests in flight")
			fs.Uint64Var(&cfg.Seed, "seed", 0, "random seed (same seed, same events)")
			fs.IntVar(&cfg.Users, "users", loadgen.DefaultUsers, "distinct users")
			fs.IntVar(&cfg.Items, "items", loadgen.DefaultItems, "distinct items")
			fs.IntVar(&cfg.Sessions, "sessions", loadgen.DefaultSessions, "concurrently active sessions")
			fs.Float64Var(&cfg.AccessShare, "access-share", loadgen.DefaultAccessShare, "share of access-log events (negative: none)")
			fs.Float64Var(&cfg.HitRate, "hit-rate", loadgen.DefaultHitRate, "mean nginx cache hit rate")
			fs.Float64Var(&cfg.LateShare, "late-share", 0, "share of events with a ts 30s..--late-max in the past")
			fs.DurationVar(&cfg.LateMax, "late-max", loadgen.DefaultLateMax, "largest lateness of a late event")
			fs.BoolVar(&quiet, "quiet", false, "no progress lines")
		},
		Run: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return cli.UsageErr("loadgen takes no arguments")
			}
			if cfg.BadRate < 0 || cfg.BadRate > 1 {
				return cli.UsageErr("--bad-rate must be within 0..1, not %g", cfg.BadRate)
			}
			var progress io.Writer = stderr
			if quiet {
				progress = nil
			}
			var (
				sink    loadgen.Sink
				cleanup = func() error { return nil }
			)
			switch via {
			case "collector":
				sink = &loadgen.CollectorSink{URL: url, APIKey: apiKey, Gzip: gzip}
			case "kinesis":
				c, err := awsx.Load(ctx)
				if err != nil {
					return err
				}
				p, err := producers.New(c.Kinesis, stream, producers.WithAggregation(aggregate))
				if err != nil {
					return fmt.Errorf("start producer: %w", err)
				}
				sink = loadgen.ProducerSink{P: p}
				cleanup = func() error {
					cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					return p.Close(cctx)
				}
			default:
				return cli.UsageErr("--via must be collector or kinesis, not %q", via)
			}
			st, err := loadgen.Run(ctx, cfg, sink, progress)
			err = errors.Join(err, cleanup())
			fmt.Fprintln(stdout, st)
			if reasons := st.Reasons(); len(reasons) > 0 {
				fmt.Fprintf(stderr, "loadgen: %d events failed:\n", st.Failed)
				for _, r := range reasons {
					fmt.Fprintf(stderr, "  %s\n", r)
				}
			}
			if errors.Is(err, context.Canceled) {
				err = nil
			}
			if err == nil && st.Failed > 0 {
				err = fmt.Errorf("%d of %d events failed (sent=%d counts only what the receiver acknowledged)", st.Failed, st.Generated, st.Sent)
			}
			return err
		},
	}
}
