// Command consumer is a consumer application (archive, vectors or metrics)
// as an AWS Lambda function (provided.al2023, handler bootstrap): the same
// processor as `clickstream consume NAME`, driven by a Kinesis event source
// mapping with ReportBatchItemFailures. `make lambdas` builds it once per
// application, stamping the name (-X main.function=NAME) into
// dist/lambda-NAME.zip; see lambdas/README.md for the environment it reads.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/lambdas/functions"
)

// version and function are stamped by make lambdas (-X main.version=...
// -X main.function=NAME).
var (
	version  = "dev"
	function = ""
)

func main() {
	cfg, level, err := functions.ConfigFromEnv(os.LookupEnv)
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err != nil {
		log.Error("bad configuration", "err", err)
		os.Exit(1)
	}
	cfg.Logger = log
	c, err := awsx.Load(context.Background())
	if err != nil {
		log.Error("load AWS config", "err", err)
		os.Exit(1)
	}
	h, err := functions.NewConsumer(function, c, cfg)
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	log.Info("ready", "function", function, "version", version, "stream", cfg.Stream)
	lambda.Start(h.Handle)
}
