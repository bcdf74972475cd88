package awsx

import (
	"context"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// Requests counts the AWS API calls the process makes, by service and
// operation (one per logical call; the SDK's retries of a call are not
// counted again). It is what AWS bills for — DynamoDB writes, S3 PUTs,
// Kinesis PutRecords — so operators and `clickstream-lab bench` read cost per
// event from it. Register it on the process registry to expose it as
// clickstream_aws_requests_total.
var Requests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "clickstream_aws_requests_total",
	Help: "AWS API calls by service and operation (SDK retries not counted again).",
}, []string{"service", "operation"})

// countRequests adds the Requests counter to every client built from a config.
func countRequests(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ClickstreamCountRequests",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (out middleware.InitializeOutput, md middleware.Metadata, err error) {
			Requests.WithLabelValues(awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)).Inc()
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}
