package awsx

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRequestsCountsEachCallOnce(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Write([]byte(`{"TableNames":[]}`))
	}))
	defer srv.Close()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
		BaseEndpoint: aws.String(srv.URL)}
	c := FromConfig(cfg)
	before := testutil.ToFloat64(Requests.WithLabelValues("DynamoDB", "ListTables"))
	for i := 0; i < 3; i++ {
		if _, err := c.DynamoDB.ListTables(context.Background(), &dynamodb.ListTablesInput{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(Requests.WithLabelValues("DynamoDB", "ListTables")) - before; got != 3 {
		t.Errorf("counted %v ListTables calls, want 3", got)
	}
	if len(cfg.APIOptions) != 0 {
		t.Error("FromConfig modified the caller's config")
	}
}
