// Package client is the Go client of the user-vector read API
// (`GET /v1/users/{user_id}/vector`, served by `clickstream api`).
// Recommendation services use it to fetch a user's decayed click and
// impression weights per feature; it depends on nothing but net/http. The
// API wants a key: New(url, nil, WithAPIKey(key)).
package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/clickstream-go/clickstream/internal/apiclient"
)

// Vector is a user's vector, decayed to AsOf (docs/DESIGN.md §4.2 read shape).
type Vector struct {
	UserID        string    `json:"user_id"`
	AsOf          time.Time `json:"as_of"`
	HalfLifeHours float64   `json:"half_life_hours"`
	// Events is the number of click and impression events applied.
	Events   int64     `json:"events"`
	Features []Feature `json:"features"` // clicks descending (then impressions descending, then name)
}

// Feature is one feature's decayed click and impression weights.
type Feature struct {
	Name        string  `json:"name"`
	Clicks      float64 `json:"clicks"`
	Impressions float64 `json:"impressions"`
}

// ErrNotFound: the API has no vector for the user (HTTP 404).
var ErrNotFound = errors.New("user not found")

// StatusError is a non-2xx answer other than 404 (401: a missing or wrong
// API key).
type StatusError = apiclient.StatusError

// Client reads vectors from one API server. It is safe for concurrent use.
type Client struct {
	conn *apiclient.Conn
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey sends key as "Authorization: Bearer KEY" (the API refuses
// requests without one unless it runs with --insecure-no-auth).
func WithAPIKey(key string) Option { return func(c *Client) { c.conn.SetKey(key) } }

// New returns a client for the API at baseURL (e.g. "http://127.0.0.1:8081").
// A nil httpClient means http.DefaultClient; set timeouts on the one you pass
// or on the ctx of each call.
func New(baseURL string, httpClient *http.Client, opts ...Option) *Client {
	c := &Client{conn: apiclient.NewConn(baseURL, httpClient)}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Vector returns the user's top k features decayed to now (k <= 0: the
// server's default, 20).
func (c *Client) Vector(ctx context.Context, user string, k int) (*Vector, error) {
	return c.VectorAt(ctx, user, k, time.Time{})
}

// VectorAt is Vector decayed to at instead of now (zero at: now).
func (c *Client) VectorAt(ctx context.Context, user string, k int, at time.Time) (*Vector, error) {
	if user == "" || user == "." || user == ".." {
		// "." and ".." are path segments HTTP servers clean away.
		return nil, fmt.Errorf("vector API: user id %q cannot be addressed in a URL path", user)
	}
	q := url.Values{}
	if k > 0 {
		q.Set("k", strconv.Itoa(k))
	}
	if !at.IsZero() {
		q.Set("at", at.UTC().Format(time.RFC3339Nano))
	}
	u := "/v1/users/" + url.PathEscape(user) + "/vector"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var v Vector
	err := c.conn.Get(ctx, u, &v)
	var se *apiclient.StatusError
	switch {
	case errors.As(err, &se) && se.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%w: %s", ErrNotFound, user)
	case err != nil:
		return nil, fmt.Errorf("vector API: %w", err)
	}
	return &v, nil
}
