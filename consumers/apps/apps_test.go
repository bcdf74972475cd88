package apps

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/clickstream-go/clickstream/internal/awsx"
)

func clients() *awsx.Clients {
	cfg := aws.Config{Region: "us-east-1"}
	return &awsx.Clients{Config: cfg, Kinesis: kinesis.NewFromConfig(cfg), DynamoDB: dynamodb.NewFromConfig(cfg), S3: s3.NewFromConfig(cfg)}
}

func TestApps_EachBuildsAProcessorNamedAfterIt(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var s Settings
	Flags(fs, &s) // the flags' defaults are valid settings
	s.Bucket, s.VectorsTable, s.MetricsTable = "b", "v", "m"
	if got := strings.Join(Names(), ","); got != "archive,vectors,metrics" {
		t.Fatalf("Names() = %s", got)
	}
	for _, a := range All() {
		p, err := a.New(clients(), s)
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		if p.Name() != a.Name {
			t.Errorf("%s builds a processor named %q: its lease namespace would differ", a.Name, p.Name())
		}
		if a.LambdaBatchSize <= 0 || a.Does == "" {
			t.Errorf("%s: Lambda batch size %d, help %q", a.Name, a.LambdaBatchSize, a.Does)
		}
	}
}

func TestApps_LambdaDefaultsFollowInfra(t *testing.T) {
	// infra/lambda.tf: batching windows archive = its max age, vectors 0, metrics 10s.
	s := Settings{}
	s.Archive.MaxAge = 42 * time.Second
	for name, want := range map[string]time.Duration{"archive": 42 * time.Second, "vectors": 0, "metrics": 10 * time.Second} {
		a, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.LambdaBatchingWindow(s); got != want {
			t.Errorf("%s: batching window %v, want %v", name, got, want)
		}
	}
	if a, _ := Lookup("archive"); !a.LambdaState {
		t.Error("the archive needs per-shard state in Lambda (its pending flush)")
	}
}

func TestApps_LookupOfAnUnknownNameListsTheKnownOnes(t *testing.T) {
	_, err := Lookup("archiv")
	if err == nil || !strings.Contains(err.Error(), "archive, vectors, metrics") {
		t.Fatalf("Lookup(archiv) = %v", err)
	}
	if _, err := LoadDefinitions("/nonexistent.yaml"); err == nil {
		t.Fatal("a missing definitions file loaded")
	}
}
