// Package collectorfn builds the collector function of lambdas/collector: the
// HTTP collector of producers/collector behind API Gateway, with its API keys
// from Secrets Manager. It is apart from package functions so the consumer
// functions do not link the producer, the collector and Secrets Manager.
package collectorfn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/clickstream-go/clickstream/internal/apikey"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/lambdas/functions"
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

// New reads the API keys (one GetSecretValue when a secret is
// configured: the only I/O of a cold start) and builds the collector on a
// KPL-aggregating producer. A 202 means the stream acknowledged the events
// (the collector's default), so nothing is buffered while Lambda freezes
// the instance between invocations.
func New(ctx context.Context, c *awsx.Clients, sm SecretsAPI, cfg functions.Config) (*Collector, error) {
	if cfg.Stream == "" {
		cfg.Stream = setup.DefaultStream
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
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

// SecretsAPI is the part of the Secrets Manager client the collector uses.
type SecretsAPI = apikey.SecretsAPI

// ErrNoAPIKeys: the collector has neither keys nor InsecureNoAuth.
var ErrNoAPIKeys = errors.New("no API keys: set " + functions.EnvAPIKeysSecret + " (or, locally, " + functions.EnvAPIKeys + " or " + functions.EnvInsecureNoAuth + ")")

// LoadAPIKeys returns the collector's keys: cfg.APIKeys plus the keys in the
// secret cfg.APIKeysSecretARN (a JSON array of strings, as infra/README.md
// documents), each at least apikey.MinLength characters. sm may be nil when
// there is no secret.
func LoadAPIKeys(ctx context.Context, sm SecretsAPI, cfg functions.Config) ([]string, error) {
	keys, err := apikey.Load(ctx, apikey.Sources{Keys: cfg.APIKeys, SecretID: cfg.APIKeysSecretARN, SM: sm})
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 && !cfg.InsecureNoAuth {
		return nil, ErrNoAPIKeys
	}
	return keys, nil
}
