// Package client is the Go client of the minute-metrics read API
// (`GET /v1/metrics`, `GET /v1/metrics/{metric}`, served by `clickstream
// api`), beside consumers/vectors/client: for services and jobs that read
// the cache hit rates, click-through rates and latency percentiles the
// metrics consumer computes. It depends on nothing but net/http.
package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/clickstream-go/clickstream/internal/apiclient"
)

// Result is one metric over a time range (the body of GET /v1/metrics/{metric}).
type Result struct {
	Metric string `json:"metric"`
	Rows   []Row  `json:"rows"`
}

// Row is one one-minute window of one group, merged over shards.
type Row struct {
	WindowStart time.Time          `json:"window_start"`
	Dims        map[string]string  `json:"dims"`
	Values      map[string]float64 `json:"values"`
	// Open: part of the window is not published yet (Query.Open only).
	Open bool `json:"open,omitempty"`
}

// Catalog lists the metrics and each shard's progress (GET /v1/metrics).
type Catalog struct {
	Metrics []struct {
		Name        string   `json:"name"`
		GroupBy     []string `json:"group_by"`
		Values      []string `json:"values"`
		LateDropped int64    `json:"late_dropped"`
	} `json:"metrics"`
	Shards []struct {
		Shard              string    `json:"shard"`
		Watermark          time.Time `json:"watermark"`
		MillisBehindLatest int64     `json:"millis_behind_latest"`
		Updated            time.Time `json:"updated"`
		Finished           bool      `json:"finished"`
	} `json:"shards"`
}

// Query selects windows: From inclusive and To exclusive on window starts
// (zero: the server's defaults, the last hour), Dims filters by dimension
// value, Open includes windows not yet published.
type Query struct {
	From, To time.Time
	Dims     map[string]string
	Open     bool
}

// ErrUnknownMetric: the API has no such metric (HTTP 404).
var ErrUnknownMetric = errors.New("unknown metric")

// StatusError is a non-2xx answer (401: a missing or wrong API key).
type StatusError = apiclient.StatusError

// Client reads metrics from one API server. It is safe for concurrent use.
type Client struct {
	conn *apiclient.Conn
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey sends key as "Authorization: Bearer KEY".
func WithAPIKey(key string) Option { return func(c *Client) { c.conn.SetKey(key) } }

// New returns a client for the API at baseURL (e.g. "http://127.0.0.1:8081");
// a nil httpClient means http.DefaultClient.
func New(baseURL string, httpClient *http.Client, opts ...Option) *Client {
	c := &Client{conn: apiclient.NewConn(baseURL, httpClient)}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Catalog returns the metrics, their dimensions and values, and the shards'
// watermarks.
func (c *Client) Catalog(ctx context.Context) (*Catalog, error) {
	var cat Catalog
	if err := c.conn.Get(ctx, "/v1/metrics", &cat); err != nil {
		return nil, fmt.Errorf("metrics API: %w", err)
	}
	return &cat, nil
}

// Query returns metric's windows selected by q.
func (c *Client) Query(ctx context.Context, metric string, q Query) (*Result, error) {
	v := url.Values{}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339))
	}
	if q.Open {
		v.Set("open", "true")
	}
	for k, val := range q.Dims {
		v.Set(k, val)
	}
	u := "/v1/metrics/" + url.PathEscape(metric)
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	var res Result
	err := c.conn.Get(ctx, u, &res)
	var se *apiclient.StatusError
	switch {
	case errors.As(err, &se) && se.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%w: %s: %s", ErrUnknownMetric, metric, se.Message)
	case err != nil:
		return nil, fmt.Errorf("metrics API: %w", err)
	}
	return &res, nil
}
