package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/consumers/metrics/client"
	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/apikey"
)

// TestClient_ReadsTheRealHandlerWithItsKey runs the client against the read
// API's handler behind the key check `clickstream api` uses.
func TestClient_ReadsTheRealHandlerWithItsKey(t *testing.T) {
	store := metrics.NewMemoryStore()
	p, err := metrics.NewProcessor(store, metrics.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sp, err := p.OpenShard(ctx, consumers.Shard{ID: "shardId-000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	var recs []consumers.Record
	for i := range 120 { // two minutes of /a (all hits) and /b (all misses)
		ts := start.Add(time.Duration(i) * time.Second)
		route, cache := "/a", "HIT"
		if i%2 == 1 {
			route, cache = "/b", "MISS"
		}
		ms := 10.0
		recs = append(recs, consumers.Record{Position: consumers.Position{SequenceNumber: fmt.Sprint(1000 + i)}, ShardID: "shardId-000000000000",
			ArrivalTime: ts, Event: event.Event{V: 1, Type: event.TypeAccess, TS: ts, Route: route, Status: 200, Cache: cache, RequestTimeMS: &ms}})
	}
	if _, err := sp.Process(ctx, consumers.Batch{ShardID: "shardId-000000000000", Records: recs, Now: time.Now(), ShardEnd: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	const key = "metrics-client-key-0123456789"
	srv := httptest.NewServer(apikey.Require(apikey.New([]string{key}),
		metrics.NewHandler(metrics.NewReader(store, metrics.ReaderConfig{}), metrics.APIConfig{})))
	defer srv.Close()

	c := client.New(srv.URL, srv.Client(), client.WithAPIKey(key))
	res, err := c.Query(ctx, "access", client.Query{From: start, To: start.Add(2 * time.Minute), Dims: map[string]string{"route": "/b"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 2 || res.Rows[0].Dims["route"] != "/b" || res.Rows[0].Values["requests"] != 30 || res.Rows[0].Values["miss_rate"] != 1 {
		t.Fatalf("rows %+v", res.Rows)
	}
	cat, err := c.Catalog(ctx)
	if err != nil || len(cat.Metrics) == 0 || len(cat.Shards) != 1 {
		t.Fatalf("catalog %+v, %v", cat, err)
	}
	if _, err := c.Query(ctx, "nope", client.Query{}); !errors.Is(err, client.ErrUnknownMetric) {
		t.Fatalf("unknown metric: %v", err)
	}
	_, err = client.New(srv.URL, srv.Client()).Catalog(ctx) // no key
	var se *client.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized || se.Message != "missing API key: send the header Authorization: Bearer KEY" {
		t.Fatalf("without a key: %v", err)
	}
}
