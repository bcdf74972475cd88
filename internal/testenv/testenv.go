// Package testenv connects integration tests to the local AWS stack that
// `make up` starts (localstack/). Tests call Clients(t); it skips the test
// when CLICKSTREAM_INTEGRATION is unset (plain `go test ./...` without a
// stack) and fails it when the variable is set but the stack is not
// reachable, so `make test` can never skip integration tests silently.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/setup"
)

// EnvVar turns integration tests on; `make test` sets it after `make up`.
const EnvVar = "CLICKSTREAM_INTEGRATION"

// Enabled reports whether integration tests are on.
func Enabled() bool { return os.Getenv(EnvVar) != "" }

// Clients returns SDK clients for the local stack, or skips the test.
func Clients(t testing.TB) *awsx.Clients {
	t.Helper()
	if !Enabled() {
		t.Skipf("integration test: run `make test` (or `make up && source .local/env && %s=1 go test ./...`)", EnvVar)
	}
	for _, v := range []string{"AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"} {
		if os.Getenv(v) == "" {
			t.Fatalf("%s is set but %s is not: source .local/env after make up", EnvVar, v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := awsx.Load(ctx)
	if err != nil {
		t.Fatalf("load AWS config: %v", err)
	}
	return c
}

// KinesisEmulator names the running Kinesis emulator: "kinesis-local" or "kinesalite".
func KinesisEmulator() string {
	if v := os.Getenv("CLICKSTREAM_LOCAL_KINESIS"); v != "" {
		return v
	}
	return "kinesis-local"
}

// Name returns a unique resource name with the given prefix, safe for
// streams, tables and buckets (lower case, digits, dashes).
func Name(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return strings.ToLower(prefix) + "-" + hex.EncodeToString(b)
}

// Stream creates a fresh provisioned stream with the given shard count and
// deletes it when the test ends. Fresh streams keep kinesis-local fast.
func Stream(t testing.TB, c *awsx.Clients, shards int) string {
	t.Helper()
	name := Name("test-" + sanitize(t.Name()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := setup.EnsureStream(ctx, c.Kinesis, name, shards, false); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = c.Kinesis.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(name), EnforceConsumerDeletion: aws.Bool(true)})
	})
	return name
}

// Table creates a fresh table with the given key schema, deleted at the end.
func Table(t testing.TB, c *awsx.Clients, spec setup.TableSpec) string {
	t.Helper()
	spec.Name = Name("test-" + sanitize(t.Name()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := setup.EnsureTable(ctx, c.DynamoDB, spec); err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = c.DynamoDB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(spec.Name)})
	})
	return spec.Name
}

// Bucket creates a fresh bucket and empties and deletes it at the end.
func Bucket(t testing.TB, c *awsx.Clients) string {
	t.Helper()
	name := Name("test-" + sanitize(t.Name()))
	if len(name) > 63 {
		name = Name("test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := setup.EnsureBucket(ctx, c.S3, name, c.Config.Region); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p := s3.NewListObjectsV2Paginator(c.S3, &s3.ListObjectsV2Input{Bucket: aws.String(name)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				break
			}
			var ids []s3types.ObjectIdentifier
			for _, o := range page.Contents {
				ids = append(ids, s3types.ObjectIdentifier{Key: o.Key})
			}
			if len(ids) > 0 {
				_, _ = c.S3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(name), Delete: &s3types.Delete{Objects: ids}})
			}
		}
		_, _ = c.S3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)})
	})
	return name
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() >= 30 {
			break
		}
	}
	return strings.Trim(b.String(), "-")
}
