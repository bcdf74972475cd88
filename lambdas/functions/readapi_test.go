package functions_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/vectors"
	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/lambdas/functions"
	"github.com/clickstream-go/clickstream/lambdas/functions/readapifn"
)

// TestReadAPI_LambdaServesVectorsWithKeysAndEqualsTheDirectReader drives the
// read-API function's handler with API Gateway events, on DynamoDB Local.
func TestReadAPI_LambdaServesVectorsWithKeysAndEqualsTheDirectReader(t *testing.T) {
	c := testenv.Clients(t)
	vt := testenv.Table(t, c, setup.VectorsTable)
	mt := testenv.Table(t, c, setup.MetricsTable)
	ctx := context.Background()
	p, err := vectors.New(c.DynamoDB, vectors.Config{Table: vt})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := p.OpenShard(ctx, consumers.Shard{ID: "shardId-000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	b := consumers.Batch{ShardID: "shardId-000000000000", Now: ts, Records: []consumers.Record{{
		Position: consumers.Position{SequenceNumber: "49600000000000000000000000000000000000000000000000000001"}, ShardID: "shardId-000000000000",
		ArrivalTime: ts, Event: event.Event{V: 1, ID: "e1", Type: event.TypeClick, TS: ts, UserID: "u-1", Features: map[string]float64{"cat:news": 2}},
	}}}
	if _, err := sp.Process(ctx, b); err != nil {
		t.Fatal(err)
	}

	const key = "read-api-key-0123456789"
	cfg := functions.Config{APIKeys: []string{key}}
	cfg.VectorsTable, cfg.MetricsTable = vt, mt
	h, err := readapifn.New(ctx, c, nil, cfg, readapifn.AuthKeys)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, query, key string) events.APIGatewayV2HTTPResponse {
		req := apiRequest(http.MethodGet, path, key, "")
		req.RawQueryString = query
		resp, err := h.Handle(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	at := ts.Add(24 * time.Hour).Format(time.RFC3339)
	if resp := get("/v1/users/u-1/vector", "k=5&at="+at, ""); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Body, "Authorization: Bearer KEY") {
		t.Fatalf("without a key: %d %s", resp.StatusCode, resp.Body)
	}
	resp := get("/v1/users/u-1/vector", "k=5&at="+at, key)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with the key: %d %s", resp.StatusCode, resp.Body)
	}
	var viaLambda vectors.Vector
	if err := json.Unmarshal([]byte(resp.Body), &viaLambda); err != nil {
		t.Fatal(err)
	}
	direct, err := vectors.NewReader(c.DynamoDB, vectors.ReaderConfig{Table: vt}).Get(ctx, "u-1", ts.Add(24*time.Hour), 5)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(viaLambda)
	d, _ := json.Marshal(direct)
	if string(a) != string(d) || len(viaLambda.Features) != 1 {
		t.Fatalf("Lambda %s\ndirect %s", a, d)
	}
	if resp := get("/v1/metrics", "", key); resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics catalog: %d %s", resp.StatusCode, resp.Body)
	}
	if resp := get("/", "", ""); resp.StatusCode != http.StatusOK || !strings.Contains(resp.Body, "<title>Clickstream") {
		t.Fatalf("dashboard: %d", resp.StatusCode)
	}
	// IAM mode: API Gateway checked the signature; the function checks no key.
	hi, err := readapifn.New(ctx, c, nil, cfg, readapifn.AuthIAM)
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := hi.Handle(ctx, apiRequest(http.MethodGet, "/v1/metrics", "", "")); resp.StatusCode != http.StatusOK {
		t.Fatalf("iam mode: %d %s", resp.StatusCode, resp.Body)
	}
	if _, err := readapifn.New(ctx, c, nil, functions.Config{}, readapifn.AuthKeys); err == nil || !strings.Contains(err.Error(), "no API keys") {
		t.Fatalf("keys mode without keys: %v", err)
	}
}
