package functions

import (
	"context"
	"fmt"

	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/lambdas/httpadapter"
	"github.com/clickstream-go/clickstream/producers"
	"github.com/clickstream-go/clickstream/producers/collector"
)

// Collector is the collector function: the HTTP collector of
// producers/collector behind API Gateway (payload format 2.0).
type Collector struct {
	*httpadapter.Handler
	producer *producers.Producer
	server   *collector.Server
}

// NewCollector reads the API keys (one GetSecretValue when a secret is
// configured: the only I/O of a cold start) and builds the collector on a
// KPL-aggregating producer. A 202 means the stream acknowledged the events
// (the collector's default), so nothing is buffered while Lambda freezes
// the instance between invocations.
func NewCollector(ctx context.Context, c *awsx.Clients, sm SecretsAPI, cfg Config) (*Collector, error) {
	cfg.withDefaults()
	keys, err := LoadAPIKeys(ctx, sm, cfg)
	if err != nil {
		return nil, err
	}
	p, err := producers.New(c.Kinesis, cfg.Stream, producers.WithLogger(cfg.Logger), producers.WithAggregation(true))
	if err != nil {
		return nil, fmt.Errorf("start producer: %w", err)
	}
	srv, err := collector.New(collector.Config{
		APIKeys: keys, InsecureNoAuth: cfg.InsecureNoAuth, AllowedOrigins: cfg.AllowedOrigins,
	}, p, cfg.Logger, nil)
	if err != nil {
		p.Close(ctx)
		return nil, err
	}
	return &Collector{Handler: httpadapter.New(srv.Handler()), producer: p, server: srv}, nil
}

// Close drains the collector and flushes the producer (tests, local runs;
// Lambda just stops the instance, with nothing left buffered).
func (c *Collector) Close(ctx context.Context) error {
	err := c.server.Close(ctx)
	if perr := c.producer.Close(ctx); err == nil {
		err = perr
	}
	return err
}
