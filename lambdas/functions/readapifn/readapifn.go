// Package readapifn builds the read-API function of lambdas/readapi: the
// read API of consumers/readapi (user vectors, minute metrics, dashboard)
// behind an API Gateway HTTP API. Apart from package functions so the
// consumer functions do not link Secrets Manager and the HTTP side.
package readapifn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/clickstream-go/clickstream/consumers/readapi"
	"github.com/clickstream-go/clickstream/internal/apikey"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/lambdas/functions"
	"github.com/clickstream-go/clickstream/lambdas/httpadapter"
)

// Auth modes of the function (functions.EnvReadAPIAuth).
const (
	// AuthKeys: the function checks bearer keys from the secret
	// (functions.EnvAPIKeysSecret, a JSON array) or functions.EnvAPIKeys.
	AuthKeys = "keys"
	// AuthIAM: API Gateway checks SigV4 signatures (route authorization
	// AWS_IAM) before the function runs; the function checks no key.
	AuthIAM = "iam"
)

// ErrNoAPIKeys: keys mode without any key.
var ErrNoAPIKeys = errors.New("read API: no API keys: set " + functions.EnvAPIKeysSecret + " (or " + functions.EnvReadAPIAuth + "=iam behind IAM authorization)")

// New reads the keys (one GetSecretValue in keys mode with a secret: the
// only I/O of a cold start) and builds the handler. sm may be nil without a
// secret.
func New(ctx context.Context, c *awsx.Clients, sm apikey.SecretsAPI, cfg functions.Config, auth string) (*httpadapter.Handler, error) {
	d := setup.Defaults()
	if cfg.VectorsTable == "" {
		cfg.VectorsTable = d.VectorsTable
	}
	if cfg.MetricsTable == "" {
		cfg.MetricsTable = d.MetricsTable
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	rc := readapi.Config{DynamoDB: c.DynamoDB, VectorsTable: cfg.VectorsTable, MetricsTable: cfg.MetricsTable,
		Definitions: cfg.Metrics.Definitions, OutOfOrderness: cfg.Metrics.OutOfOrderness, Logger: cfg.Logger}
	switch auth {
	case "", AuthKeys:
		keys, err := apikey.Load(ctx, apikey.Sources{Keys: cfg.APIKeys, SecretID: cfg.APIKeysSecretARN, SM: sm})
		if err != nil {
			return nil, err
		}
		if len(keys) == 0 && !cfg.InsecureNoAuth {
			return nil, ErrNoAPIKeys
		}
		rc.Keys, rc.Open = keys, cfg.InsecureNoAuth
	case AuthIAM:
		rc.Open = true
	default:
		return nil, fmt.Errorf("read API: %s must be %s or %s, not %q", functions.EnvReadAPIAuth, AuthKeys, AuthIAM, auth)
	}
	srv, err := readapi.New(rc)
	if err != nil {
		return nil, err
	}
	return httpadapter.New(srv), nil
}
