// Package apps is the one place that knows the applications on the stream —
// archive, vectors and metrics: their names, how each builds its processor
// from AWS clients and settings, their command-line flags and their Lambda
// event source mapping defaults. `clickstream consume` (both hosts), the
// Lambda functions and the lab's bench and chaos runs take them from here, so
// adding an application means its own package and one entry in All.
package apps

import (
	"cmp"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/archive"
	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/consumers/vectors"
	"github.com/clickstream-go/clickstream/internal/awsx"
)

// Settings are what the applications are built from: where their outputs go
// and each one's own configuration. Zero fields take the applications'
// defaults.
type Settings struct {
	Bucket       string // archive objects and every application's dead letters
	Prefix       string // key prefix in Bucket; "" = the bucket's root
	VectorsTable string
	MetricsTable string

	Archive archive.Config // Bucket, Prefix, Logger and Registerer are set from the fields here
	Vectors vectors.Config // Table, Logger and Registerer likewise
	Metrics metrics.Config // Logger and Registerer likewise
	// DefinitionsFile is a metrics definitions file (YAML) used when
	// Metrics.Definitions is nil; "" = the built-in metrics.
	DefinitionsFile string

	Logger     *slog.Logger          // default: discard
	Registerer prometheus.Registerer // default nil: no metrics
}

// App is one application.
type App struct {
	// Name is the application's name: its lease namespace, its Lambda
	// function's suffix, its name on the command line.
	Name string
	// Does is one line for --help.
	Does string
	// LambdaBatchSize is the event source mapping's batch size in
	// infra/lambda.tf (Kinesis records per invocation).
	LambdaBatchSize int
	// LambdaState: the Lambda host must give the processor per-shard state
	// next to the checkpoint (the archive's pending flush); the others keep
	// their exactly-once positions in their own tables.
	LambdaState bool

	lambdaWindow func(Settings) time.Duration
	build        func(*awsx.Clients, Settings, *slog.Logger) (consumers.Processor, error)
}

// New builds the application's processor on c's clients. It does no I/O.
func (a App) New(c *awsx.Clients, s Settings) (consumers.Processor, error) {
	log := cmp.Or(s.Logger, slog.New(slog.DiscardHandler)).With(slog.String("app", a.Name))
	p, err := a.build(c, s, log)
	if err != nil {
		return nil, fmt.Errorf("new %s processor: %w", a.Name, err)
	}
	return p, nil
}

// LambdaBatchingWindow is the event source mapping's batching window in
// infra/lambda.tf for these settings.
func (a App) LambdaBatchingWindow(s Settings) time.Duration { return a.lambdaWindow(s) }

// All returns the applications, in the order they are listed and
// reported. A function rather than a variable so that a binary importing
// this package for Settings alone (the collector's Lambda function) does not
// link every processor.
func All() []App { return all() }

func all() []App {
	return []App{
		{
			Name: archive.Name, Does: "every valid event as Parquet in S3 (s3://BUCKET/PREFIX/events/...)",
			LambdaBatchSize: 10000, LambdaState: true,
			lambdaWindow: func(s Settings) time.Duration { return cmp.Or(s.Archive.MaxAge, archive.DefaultMaxAge) },
			build: func(c *awsx.Clients, s Settings, log *slog.Logger) (consumers.Processor, error) {
				cfg := s.Archive
				cfg.Bucket, cfg.Prefix, cfg.Logger, cfg.Registerer = s.Bucket, s.Prefix, log, s.Registerer
				return archive.New(c.S3, cfg)
			},
		},
		{
			Name: vectors.Name, Does: "per-user decayed click vectors in DynamoDB (--vectors-table)",
			LambdaBatchSize: 1000,
			lambdaWindow:    func(Settings) time.Duration { return 0 }, // a click is in the vector within a second
			build: func(c *awsx.Clients, s Settings, log *slog.Logger) (consumers.Processor, error) {
				cfg := s.Vectors
				cfg.Table, cfg.Logger, cfg.Registerer = s.VectorsTable, log, s.Registerer
				return vectors.New(c.DynamoDB, cfg)
			},
		},
		{
			Name: metrics.Name, Does: "minute-window metrics in DynamoDB (--metrics-table)",
			LambdaBatchSize: 5000,
			lambdaWindow:    func(Settings) time.Duration { return 10 * time.Second },
			build: func(c *awsx.Clients, s Settings, log *slog.Logger) (consumers.Processor, error) {
				cfg := s.Metrics
				if cfg.Definitions == nil {
					d, err := LoadDefinitions(s.DefinitionsFile)
					if err != nil {
						return nil, err
					}
					cfg.Definitions = d
				}
				cfg.Logger, cfg.Registerer = log, s.Registerer
				return metrics.NewProcessor(metrics.NewDynamoStore(c.DynamoDB, s.MetricsTable), cfg)
			},
		},
	}
}

// Names lists the applications' names, in the order of All.
func Names() []string {
	all := All()
	out := make([]string, len(all))
	for i, a := range all {
		out[i] = a.Name
	}
	return out
}

// Lookup returns the application called name; the error lists the names.
func Lookup(name string) (App, error) {
	for _, a := range All() {
		if a.Name == name {
			return a, nil
		}
	}
	return App{}, fmt.Errorf("unknown application %q (choose from %s)", name, strings.Join(Names(), ", "))
}

// LoadDefinitions reads a metrics definitions file, or returns the
// built-in definitions for "".
func LoadDefinitions(path string) (*metrics.Definitions, error) {
	if path == "" {
		return metrics.DefaultDefinitions(), nil
	}
	d, err := metrics.LoadDefinitions(path)
	if err != nil {
		return nil, fmt.Errorf("metrics definitions: %w", err)
	}
	return d, nil
}

// Flags registers the applications' own flags on fs, prefixed by the
// application where a name alone would be ambiguous, with their defaults.
func Flags(fs *flag.FlagSet, s *Settings) {
	fs.StringVar(&s.Prefix, "prefix", "", "key prefix in the bucket for the archive and dead letters")
	fs.DurationVar(&s.Archive.MaxAge, "archive-max-age", archive.DefaultMaxAge, "archive: longest a record waits before its file is written")
	fs.StringVar(&s.Archive.Compression, "archive-compression", archive.CompressionZstd, "archive: Parquet codec zstd, snappy, gzip or none")
	fs.Int64Var(&s.Archive.MemoryBudget, "archive-memory-budget", archive.DefaultMemoryBudget, "archive: bytes of buffered rows (packed and compressed, ~70 B an event) before the largest shard flushes")
	fs.DurationVar(&s.Vectors.HalfLife, "half-life", vectors.DefaultHalfLife, "vectors: half-life of the decay in event time (fixed for a table's life)")
	fs.IntVar(&s.Vectors.MaxFeatures, "max-features", vectors.DefaultMaxFeatures, "vectors: features kept per user (the weakest are pruned)")
	fs.IntVar(&s.Vectors.Concurrency, "vectors-concurrency", vectors.DefaultConcurrency, "vectors: DynamoDB writes in flight")
	fs.DurationVar(&s.Vectors.Coalesce, "vectors-coalesce", -1, "vectors: hold a shard's deliveries this long and write each user once for all of them (negative: 250ms with --read-mode efo, whose deliveries are small and frequent, else 0)")
	fs.StringVar(&s.DefinitionsFile, "definitions", "", "metrics: definitions file (YAML; default the built-in access and engagement metrics)")
	fs.DurationVar(&s.Metrics.AllowedLateness, "allowed-lateness", time.Hour, "metrics: how long late events still correct a window")
	fs.DurationVar(&s.Metrics.OutOfOrderness, "out-of-orderness", 5*time.Second, "metrics: watermark delay behind the largest event time")
	fs.DurationVar(&s.Metrics.Retention, "retention", 30*24*time.Hour, "metrics: TTL of stored windows")
}
