// Package readapi is the read API of what the consumers computed, as one
// http.Handler: user vectors (GET /v1/users/{id}/vector), minute metrics
// (GET /v1/metrics, GET /v1/metrics/{metric}), the dashboard (GET /) and
// /healthz. `clickstream api` serves it on a port; the read-API Lambda
// function (lambdas/readapi) serves the same handler behind API Gateway.
package readapi

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/consumers/metrics/dashboard"
	"github.com/clickstream-go/clickstream/consumers/vectors"
	"github.com/clickstream-go/clickstream/internal/apikey"
)

// DynamoDBAPI is what the read side calls: the vectors' and the metrics'
// reads.
type DynamoDBAPI interface {
	vectors.DynamoDBAPI
	metrics.DynamoAPI
}

// Config configures the read API.
type Config struct {
	DynamoDB     DynamoDBAPI
	VectorsTable string
	MetricsTable string
	// Definitions are the metrics definitions (nil: the built-ins); they
	// must match the metrics consumer's.
	Definitions *metrics.Definitions
	// ConsistentRead makes vector reads strongly consistent.
	ConsistentRead bool
	// OutOfOrderness is the metrics consumer's (watermarks in GET /v1/metrics).
	OutOfOrderness time.Duration

	// Keys are the accepted API keys for /v1/ (Authorization: Bearer KEY).
	// Without keys, Open must be set: the API then serves anyone (locally,
	// or behind API Gateway's IAM authorization).
	Keys []string
	Open bool

	Logger     *slog.Logger          // default: discard
	Registerer prometheus.Registerer // default nil: no metrics
}

// Server is the read API.
type Server struct {
	http.Handler
	// Metrics is the metrics reader (the alerter of `clickstream api` uses it).
	Metrics *metrics.Reader
}

// ErrNoKeys: neither keys nor Open.
var ErrNoKeys = errors.New("read API: no API keys (and not open): refusing to serve /v1/ to anyone")

// New builds the read API.
func New(cfg Config) (*Server, error) {
	if len(cfg.Keys) == 0 && !cfg.Open {
		return nil, ErrNoKeys
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	vr := vectors.NewReader(cfg.DynamoDB, vectors.ReaderConfig{Table: cfg.VectorsTable, ConsistentRead: cfg.ConsistentRead})
	vh, err := vectors.NewHandler(vr, vectors.HandlerConfig{Logger: cfg.Logger, Registerer: cfg.Registerer})
	if err != nil {
		return nil, err
	}
	mr := metrics.NewReader(metrics.NewDynamoStore(cfg.DynamoDB, cfg.MetricsTable), metrics.ReaderConfig{Definitions: cfg.Definitions})
	mh := metrics.NewHandler(mr, metrics.APIConfig{OutOfOrderness: cfg.OutOfOrderness, Logger: cfg.Logger})

	protect := func(h http.Handler) http.Handler { return h }
	if len(cfg.Keys) > 0 {
		kr := apikey.New(cfg.Keys)
		protect = func(h http.Handler) http.Handler { return apikey.Require(kr, h) }
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", protect(http.NotFoundHandler()))
	mux.Handle("/v1/users/", protect(vh))
	mux.Handle("/v1/metrics", protect(mh))
	mux.Handle("/v1/metrics/", protect(mh))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("/", dashboard.Handler())
	return &Server{Handler: mux, Metrics: mr}, nil
}
