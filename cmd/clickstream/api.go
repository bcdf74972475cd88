package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/clickstream-go/clickstream/consumers/apps"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/consumers/metrics/dashboard"
	"github.com/clickstream-go/clickstream/consumers/vectors"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/cli"
	"github.com/clickstream-go/clickstream/internal/setup"
)

// DefaultAPIAddr is where `clickstream api` listens (docs/DESIGN.md §5).
const DefaultAPIAddr = "127.0.0.1:8081"

func apiCommand(stderr io.Writer) *cli.Command {
	var (
		r                   setup.Resources
		addr                string
		definitions         string
		webhook             string
		alertInterval       time.Duration
		noAlerts            bool
		consistent          bool
		outOfOrderness      time.Duration
		logFormat, logLevel string
		pprofAddr           string
	)
	return &cli.Command{
		Name:  "api",
		Short: "read API (vectors, metrics), dashboard and alerts",
		Long: `Serves what the consumers computed, for recommendation services, dashboards and
people:

  GET /v1/users/{user_id}/vector?k=20&at=RFC3339   a user's top features, decayed to
                                                   now (or at); 404 for an unknown user
  GET /v1/metrics                                  the metrics, their values, dimensions
                                                   and each shard's watermark
  GET /v1/metrics/{metric}?from=&to=&DIM=VALUE     one-minute windows merged over shards
  GET /                                            the live dashboard (embedded, no CDN)
  GET /healthz, GET /metrics                       liveness, Prometheus metrics

It also evaluates the alert rules of the metrics definitions every
--alert-interval and posts Slack-compatible webhooks once when an alert fires and
once when it resolves (run one api process with alerts per deployment, or pass
--no-alerts to the others).`,
		Flags: func(fs *flag.FlagSet) {
			resourceFlags(fs, &r)
			fs.StringVar(&addr, "addr", DefaultAPIAddr, "listen address")
			fs.StringVar(&definitions, "definitions", "", "metrics definitions file (YAML; default the built-ins); must match the consumer's")
			fs.StringVar(&webhook, "webhook-url", "", "alert webhook for rules that name none (default: the definitions' webhook; none: alerts are only logged)")
			fs.DurationVar(&alertInterval, "alert-interval", 30*time.Second, "how often alert rules are evaluated")
			fs.BoolVar(&noAlerts, "no-alerts", false, "do not evaluate alert rules")
			fs.BoolVar(&consistent, "consistent-read", false, "strongly consistent vector reads (twice the read capacity)")
			fs.DurationVar(&outOfOrderness, "out-of-orderness", 5*time.Second, "the metrics consumer's --out-of-orderness")
			logFlags(fs, &logFormat, &logLevel)
			pprofFlag(fs, &pprofAddr)
		},
		Run: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return cli.UsageErr("api takes no arguments")
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
			defs, err := apps.LoadDefinitions(definitions)
			if err != nil {
				return err
			}
			c, err := awsx.Load(ctx)
			if err != nil {
				return err
			}
			reg := newRegistry()
			vr := vectors.NewReader(c.DynamoDB, vectors.ReaderConfig{Table: r.VectorsTable, ConsistentRead: consistent})
			vh, err := vectors.NewHandler(vr, vectors.HandlerConfig{Logger: log, Registerer: reg})
			if err != nil {
				return err
			}
			mr := metrics.NewReader(metrics.NewDynamoStore(c.DynamoDB, r.MetricsTable), metrics.ReaderConfig{Definitions: defs})
			mh := metrics.NewHandler(mr, metrics.APIConfig{OutOfOrderness: outOfOrderness, Logger: log})

			mux := http.NewServeMux()
			mux.Handle("/v1/users/", vh)
			mux.Handle("/v1/metrics", mh)
			mux.Handle("/v1/metrics/", mh)
			mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
			mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
			mux.Handle("/", dashboard.Handler())

			stop, err := serveBackground(ctx, addr, mux, log)
			if err != nil {
				return err
			}
			defer stop()
			log.Info("api listening", "addr", addr, "dashboard", "http://"+addr+"/")
			if noAlerts {
				<-ctx.Done()
				return nil
			}
			al, err := metrics.NewAlerter(mr, metrics.AlertConfig{WebhookURL: webhook, Interval: alertInterval, Logger: log, Registerer: reg})
			if err != nil {
				return err
			}
			if err := al.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("alerts: %w", err)
			}
			return nil
		},
	}
}
