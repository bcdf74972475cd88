// Package awsx builds the AWS SDK clients every Clickstream component uses.
// Configuration comes only from aws-sdk-go-v2's default chain, so setting
// AWS_ENDPOINT_URL_KINESIS / _DYNAMODB / _S3 (what `source .local/env` does)
// points everything at the local stack and nothing else changes.
package awsx

import (
	"context"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Clients holds one client per service. They are safe for concurrent use.
type Clients struct {
	Config   aws.Config
	Kinesis  *kinesis.Client
	DynamoDB *dynamodb.Client
	S3       *s3.Client
}

// Load reads the default config chain and builds the clients.
func Load(ctx context.Context, optFns ...func(*config.LoadOptions) error) (*Clients, error) {
	cfg, err := config.LoadDefaultConfig(ctx, optFns...)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	return FromConfig(cfg), nil
}

// FromConfig builds the clients from an already loaded config. Every call
// they make is counted in Requests.
func FromConfig(cfg aws.Config) *Clients {
	cfg = cfg.Copy()
	cfg.APIOptions = append(cfg.APIOptions, countRequests)
	return &Clients{
		Config:   cfg,
		Kinesis:  kinesis.NewFromConfig(cfg),
		DynamoDB: NewDynamoDB(cfg),
		S3:       NewS3(cfg),
	}
}

// NewDynamoDB returns a DynamoDB client with a connection pool sized for the
// consumers' parallel writes (net/http keeps only 2 idle connections per host
// by default, so 32 concurrent writers would open and close connections
// constantly). On a custom endpoint (DynamoDB Local) it also skips the CRC32
// response check: DynamoDB Local sends no X-Amz-Crc32 header on error
// responses and the SDK then logs a spurious warning on every expected
// failure (aws/aws-sdk-go-v2#3545). Against AWS the check stays on.
func NewDynamoDB(cfg aws.Config) *dynamodb.Client {
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if bc, ok := o.HTTPClient.(*awshttp.BuildableClient); ok {
			o.HTTPClient = bc.WithTransportOptions(func(t *http.Transport) {
				t.MaxIdleConnsPerHost = 64
			})
		}
		if o.BaseEndpoint != nil {
			o.DisableValidateResponseChecksum = true
		}
	})
}

// NewS3 returns an S3 client that uses path-style addressing whenever a
// custom endpoint is configured: S3-compatible servers (MinIO, LocalStack)
// on 127.0.0.1 have no per-bucket DNS names. Against AWS nothing changes.
func NewS3(cfg aws.Config) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if o.BaseEndpoint != nil {
			o.UsePathStyle = true
		}
	})
}
