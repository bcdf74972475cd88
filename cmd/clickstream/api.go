package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/clickstream-go/clickstream/consumers/apps"
	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/consumers/readapi"
	"github.com/clickstream-go/clickstream/internal/apikey"
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
		keys                cli.StringList
		keysFile, keySecret string
		insecureNoAuth      bool
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

/v1/ needs an API key, as the collector does: Authorization: Bearer KEY, the keys
given with --api-key (repeatable; env CLICKSTREAM_API_KEY), --api-keys-file (one per
line) or --api-keys-secret (a Secrets Manager secret holding a JSON array of keys,
as infra/ creates), each at least 16 characters, compared in constant time. A
request without a valid key gets 401 and a message saying what to send. Serving
without keys needs --insecure-no-auth (local use). The dashboard page itself is
public (it holds no data); open it once as /#key=KEY and it keeps the key in the
browser. /healthz and /metrics (Prometheus) need no key.

It also evaluates the alert rules of the metrics definitions every
--alert-interval and posts Slack-compatible webhooks once when an alert fires and
once when it resolves (run one api process with alerts per deployment, or pass
--no-alerts to the others).`,
		Flags: func(fs *flag.FlagSet) {
			resourceFlags(fs, &r)
			fs.StringVar(&addr, "addr", DefaultAPIAddr, "listen address")
			fs.Var(&keys, "api-key", "accepted API key for /v1/ (repeatable or comma-separated)")
			fs.StringVar(&keysFile, "api-keys-file", "", "file of accepted API keys, one per line (# comments)")
			fs.StringVar(&keySecret, "api-keys-secret", "", "Secrets Manager secret (ARN or name) holding a JSON array of accepted API keys")
			fs.BoolVar(&insecureNoAuth, "insecure-no-auth", false, "serve /v1/ without API keys (local use only)")
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
			src := apikey.Sources{Keys: keys, File: keysFile, SecretID: keySecret}
			if keySecret != "" {
				src.SM = secretsmanager.NewFromConfig(c.Config)
			}
			apiKeys, err := apikey.Load(ctx, src)
			if err != nil {
				return err
			}
			if len(apiKeys) == 0 && !insecureNoAuth {
				return cli.UsageErr("no API keys: give --api-key, --api-keys-file or --api-keys-secret (or --insecure-no-auth to serve /v1/ to anyone, locally)")
			}
			if len(apiKeys) > 0 && insecureNoAuth {
				return cli.UsageErr("--insecure-no-auth with API keys: choose one")
			}
			reg := newRegistry()
			srv, err := readapi.New(readapi.Config{
				DynamoDB: c.DynamoDB, VectorsTable: r.VectorsTable, MetricsTable: r.MetricsTable, Definitions: defs,
				ConsistentRead: consistent, OutOfOrderness: outOfOrderness, Keys: apiKeys, Open: insecureNoAuth,
				Logger: log, Registerer: reg,
			})
			if err != nil {
				return err
			}
			mux := http.NewServeMux()
			mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
			mux.Handle("/", srv)

			stop, err := serveBackground(ctx, addr, mux, log)
			if err != nil {
				return err
			}
			defer stop()
			log.Info("api listening", "addr", addr, "dashboard", "http://"+addr+"/", "api_keys", len(apiKeys), "insecure_no_auth", insecureNoAuth)
			if noAlerts {
				<-ctx.Done()
				return nil
			}
			al, err := metrics.NewAlerter(srv.Metrics, metrics.AlertConfig{WebhookURL: webhook, Interval: alertInterval, Logger: log, Registerer: reg})
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
