// Package functions builds the Lambda handlers of lambdas/*/main.go from a
// plain configuration: the three consumers (archive, vectors, metrics), each
// the same processor as `clickstream consume` wrapped in the Kinesis adapter
// (the HTTP collector behind API Gateway is in collectorfn, which shares
// Config). The mains, the local
// event-source-mapping host (`clickstream consume --host lambda`) and the
// tests all build handlers here, so what runs locally is what runs in Lambda.
//
// The environment contract (infra/lambda.tf) is parsed by ConfigFromEnv,
// which the mains call with os.LookupEnv.
package functions

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/apps"
	"github.com/clickstream-go/clickstream/consumers/archive"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/consumers/vectors"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/emf"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/lambdas/kinesisadapter"
)

// The consumer functions, named like their processors (and lease namespaces).
const (
	Archive = archive.Name
	Vectors = vectors.Name
	Metrics = metrics.Name
)

// Environment variables (infra/lambda.tf); the CLI's flags with the
// CLICKSTREAM_ prefix.
const (
	EnvStream          = "CLICKSTREAM_STREAM"
	EnvBucket          = "CLICKSTREAM_BUCKET"
	EnvPrefix          = "CLICKSTREAM_PREFIX"
	EnvVectorsTable    = "CLICKSTREAM_VECTORS_TABLE"
	EnvMetricsTable    = "CLICKSTREAM_METRICS_TABLE"
	EnvLeasesTable     = "CLICKSTREAM_LEASES_TABLE"
	EnvLogLevel        = "CLICKSTREAM_LOG_LEVEL"
	EnvAllowedOrigins  = "CLICKSTREAM_ALLOWED_ORIGINS"
	EnvAPIKeysSecret   = "CLICKSTREAM_API_KEYS_SECRET_ARN"
	EnvAPIKeys         = "CLICKSTREAM_API_KEYS"          // local runs only: comma-separated keys instead of the secret
	EnvInsecureNoAuth  = "CLICKSTREAM_INSECURE_NO_AUTH"  // local runs only: "true" accepts requests without a key
	EnvReadAPIAuth     = "CLICKSTREAM_READ_API_AUTH"     // read API: "keys" (default) or "iam" (API Gateway checks SigV4)
	EnvStateLeaseOwner = "CLICKSTREAM_STATE_LEASE_OWNER" // default hostname-pid-random
)

// Config configures the handlers. Zero fields take the defaults of
// `clickstream consume`.
type Config struct {
	// Settings are the applications' outputs (bucket, prefix, tables) and
	// their own settings, as `clickstream consume` takes them; Logger is
	// the handlers' logger (default: discard).
	apps.Settings

	Stream string // default "clickstream-events"
	// LeasesTable keeps per-shard state (archive) under the function's
	// application name. Default "clickstream-leases".
	LeasesTable string
	// StateOwner names this instance in the lease table. Default
	// consumers.DefaultOwner().
	StateOwner string
	// NoState turns the archive's state store off (then a process killed
	// mid-flush may leave duplicate rows; see archive's package doc).
	NoState bool

	// Collector settings: the API keys come from the Secrets Manager secret
	// APIKeysSecretARN (a JSON array of strings), or APIKeys.
	APIKeysSecretARN string
	APIKeys          []string
	AllowedOrigins   []string
	InsecureNoAuth   bool
}

func (c *Config) withDefaults() {
	d := setup.Defaults()
	c.Stream = cmpOr(c.Stream, d.Stream)
	c.Bucket = cmpOr(c.Bucket, d.Bucket)
	c.VectorsTable = cmpOr(c.VectorsTable, d.VectorsTable)
	c.MetricsTable = cmpOr(c.MetricsTable, d.MetricsTable)
	c.LeasesTable = cmpOr(c.LeasesTable, d.LeasesTable)
	if c.StateOwner == "" {
		c.StateOwner = consumers.DefaultOwner()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ConfigFromEnv reads the environment contract through lookup (os.LookupEnv
// in main) and returns the configuration and the log level.
func ConfigFromEnv(lookup func(string) (string, bool)) (Config, slog.Level, error) {
	get := func(k string) string { v, _ := lookup(k); return strings.TrimSpace(v) }
	c := Config{
		Settings: apps.Settings{Bucket: get(EnvBucket), Prefix: get(EnvPrefix),
			VectorsTable: get(EnvVectorsTable), MetricsTable: get(EnvMetricsTable)},
		Stream: get(EnvStream), LeasesTable: get(EnvLeasesTable),
		StateOwner: get(EnvStateLeaseOwner), APIKeysSecretARN: get(EnvAPIKeysSecret),
		APIKeys: splitList(get(EnvAPIKeys)), AllowedOrigins: splitList(get(EnvAllowedOrigins)),
	}
	var lv slog.Level
	if s := get(EnvLogLevel); s != "" {
		if err := lv.UnmarshalText([]byte(s)); err != nil {
			return c, lv, fmt.Errorf("%s: %w", EnvLogLevel, err)
		}
	}
	switch s := get(EnvInsecureNoAuth); s {
	case "", "false", "0":
	case "true", "1":
		c.InsecureNoAuth = true
	default:
		return c, lv, fmt.Errorf("%s: want true or false, not %q", EnvInsecureNoAuth, s)
	}
	return c, lv, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// KinesisHandler is the signature of a consumer function's handler.
type KinesisHandler = func(context.Context, events.KinesisEvent) (events.KinesisEventResponse, error)

// NewConsumer builds the handler of the consumer function name (Archive,
// Vectors or Metrics) on c's clients. It does no I/O: a cold start costs
// only the construction. Bad records go to s3://Bucket/Prefix/errors/ as in
// the long-running runtime.
func NewConsumer(name string, c *awsx.Clients, cfg Config) (*kinesisadapter.Handler, error) {
	cfg.withDefaults()
	app, err := apps.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("consumer function: %w", err)
	}
	p, err := app.New(c, cfg.Settings)
	if err != nil {
		return nil, err
	}
	opts := []kinesisadapter.Option{kinesisadapter.WithLogger(cfg.Logger.With(slog.String("app", name)))}
	if cfg.Registerer != nil {
		opts = append(opts, kinesisadapter.WithRegisterer(cfg.Registerer))
	}
	if app.LambdaState && !cfg.NoState {
		// The archive buffers a batch and flushes it at the end of the
		// invocation; its pending-flush state makes a retry after a crash
		// mid-flush rewrite the same objects (exactly once). Vectors and
		// metrics keep their positions in their own tables.
		opts = append(opts, kinesisadapter.WithStateStore(
			kinesisadapter.LeaseState(leases.NewDynamoStore(c.DynamoDB, cfg.LeasesTable), name, cfg.Stream, cfg.StateOwner)))
	}
	return kinesisadapter.New(p, consumers.NewS3DeadLetter(c.S3, cfg.Bucket, cfg.Prefix), opts...)
}

// MetricsNamespace is the CloudWatch namespace of the functions' EMF metrics.
const MetricsNamespace = "Clickstream"

// MetricsEmitter reports reg's metrics as CloudWatch EMF lines, with the
// dimension Function (functionName, else "clickstream-"+app) and the
// low-cardinality labels kept apart (type, kind, result, reason).
func MetricsEmitter(reg prometheus.Gatherer, app, functionName string) *emf.Emitter {
	if functionName == "" {
		functionName = "clickstream-" + app
	}
	return emf.New(reg, MetricsNamespace, map[string]string{"Function": functionName}, "type", "kind", "result", "reason")
}
