// Command readapi is the read API (GET /v1/users/{id}/vector, GET
// /v1/metrics..., the dashboard) as an AWS Lambda function behind an API
// Gateway HTTP API (payload format 2.0): the handler of consumers/readapi,
// the one `clickstream api` serves. With CLICKSTREAM_READ_API_AUTH=keys (the
// default) it checks bearer keys from the Secrets Manager secret named by
// CLICKSTREAM_API_KEYS_SECRET_ARN, read once per cold start; with iam, API
// Gateway checks SigV4 signatures first. Build it with `make lambdas`
// (dist/lambda-readapi.zip).
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clickstream-go/clickstream/internal/apikey"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/lambdas/functions"
	"github.com/clickstream-go/clickstream/lambdas/functions/readapifn"
)

// version is stamped by make lambdas (-X main.version=...).
var version = "dev"

func main() {
	cfg, level, err := functions.ConfigFromEnv(os.LookupEnv)
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err != nil {
		log.Error("bad configuration", "err", err)
		os.Exit(1)
	}
	cfg.Logger = log
	ctx := context.Background()
	c, err := awsx.Load(ctx)
	if err != nil {
		log.Error("load AWS config", "err", err)
		os.Exit(1)
	}
	var sm apikey.SecretsAPI
	if cfg.APIKeysSecretARN != "" {
		sm = secretsmanager.NewFromConfig(c.Config)
	}
	auth := os.Getenv(functions.EnvReadAPIAuth)
	h, err := readapifn.New(ctx, c, sm, cfg, auth)
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	log.Info("ready", "function", "readapi", "version", version, "auth", auth)
	lambda.Start(h.Handle)
}
