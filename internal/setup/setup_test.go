package setup_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/internal/testenv"
)

func TestEnsure_CreatesThenFindsEverything(t *testing.T) {
	c := testenv.Clients(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := setup.Resources{
		Stream: testenv.Name("setup"), Shards: 2, Bucket: testenv.Name("setup"),
		VectorsTable: testenv.Name("setup-vectors"), MetricsTable: testenv.Name("setup-metrics"), LeasesTable: testenv.Name("setup-leases"),
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = c.Kinesis.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(r.Stream)})
		for _, tb := range []string{r.VectorsTable, r.MetricsTable, r.LeasesTable} {
			_, _ = c.DynamoDB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(tb)})
		}
		_, _ = c.S3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(r.Bucket)})
	})

	run := func() []setup.Status {
		var got []setup.Status
		if err := setup.Ensure(ctx, c, r, func(s setup.Status) { got = append(got, s) }); err != nil {
			t.Fatalf("Ensure: %v", err)
		}
		return got
	}
	first := run()
	if len(first) != 5 {
		t.Fatalf("got %d statuses, want 5: %v", len(first), first)
	}
	for _, s := range first {
		if !s.Created {
			t.Errorf("first run: %s not created", s)
		}
	}
	if !strings.Contains(first[0].Detail, "2 open shards") {
		t.Errorf("stream detail = %q, want 2 open shards", first[0].Detail)
	}
	for _, s := range run() {
		if s.Created {
			t.Errorf("second run created %s again", s)
		}
	}
	ttl, err := c.DynamoDB.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(r.MetricsTable)})
	if err != nil {
		t.Fatal(err)
	}
	if d := ttl.TimeToLiveDescription; d == nil || aws.ToString(d.AttributeName) != "expires_at" {
		t.Errorf("metrics table TTL = %+v, want expires_at", d)
	}
}

func TestEnsureStream_OnDemand(t *testing.T) {
	c := testenv.Clients(t)
	if testenv.KinesisEmulator() == "kinesalite" {
		t.Skip("kinesalite has no on-demand mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := testenv.Name("setup-od")
	t.Cleanup(func() {
		_, _ = c.Kinesis.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(name)})
	})
	st, err := setup.EnsureStream(ctx, c.Kinesis, name, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Created || !strings.Contains(st.Detail, "on-demand") {
		t.Errorf("status = %s, want created on-demand", st)
	}
}
