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
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/prometheus/client_golang/prometheus"

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
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	h, err := functions.NewConsumer(function, c, cfg)
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	em := functions.MetricsEmitter(reg, function, os.Getenv("AWS_LAMBDA_FUNCTION_NAME"))
	log.Info("ready", "function", function, "version", version, "stream", cfg.Stream)
	lambda.Start(func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		resp, err := h.Handle(ctx, ev)
		// One EMF line per invocation: CloudWatch turns it into metrics.
		if eerr := em.Emit(os.Stdout, time.Now()); eerr != nil {
			log.Warn("metrics not reported", "err", eerr)
		}
		return resp, err
	})
}
