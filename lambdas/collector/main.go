// Command collector is the HTTP collector (POST /v1/events) as an AWS Lambda
// function behind an API Gateway HTTP API or a function URL (payload format
// 2.0): the http.Handler of producers/collector on a KPL-aggregating producer.
// The API keys come from the Secrets Manager secret named by
// CLICKSTREAM_API_KEYS_SECRET_ARN (a JSON array of strings), read once per
// cold start. Build it with `make lambdas` (dist/lambda-collector.zip).
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/lambdas/functions"
	"github.com/clickstream-go/clickstream/lambdas/functions/collectorfn"
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
	var sm collectorfn.SecretsAPI
	if cfg.APIKeysSecretARN != "" {
		sm = secretsmanager.NewFromConfig(c.Config)
	}
	h, err := collectorfn.New(ctx, c, sm, cfg)
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	log.Info("ready", "function", "collector", "version", version, "stream", cfg.Stream)
	lambda.Start(h.Handle)
}
