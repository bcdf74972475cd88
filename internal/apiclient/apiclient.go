// Package apiclient is the HTTP plumbing the read API's Go clients share
// (consumers/vectors/client, consumers/metrics/client): a GET with the API
// key, the body read with a bound, and the API's error message.
package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxBody bounds an answer.
const maxBody = 16 << 20

// StatusError is a non-2xx answer.
type StatusError struct {
	StatusCode int
	Message    string // the API's "error" field, or the body's start
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.StatusCode, e.Message)
}

// Get fetches u with "Authorization: Bearer key" (when key is set) and
// decodes a 2xx JSON answer into out. Other answers are a *StatusError
// carrying the API's message.
func Get(ctx context.Context, hc *http.Client, u, key string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := string(body)
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		} else if len(msg) > 200 {
			msg = msg[:200]
		}
		return &StatusError{StatusCode: resp.StatusCode, Message: msg}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// Conn is one read-API server as a client sees it: base URL, HTTP client
// and API key. It is safe for concurrent use once configured.
type Conn struct {
	base string
	hc   *http.Client
	key  string
}

// NewConn returns a connection to the API at baseURL; a nil httpClient
// means http.DefaultClient.
func NewConn(baseURL string, httpClient *http.Client) *Conn {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &Conn{base: strings.TrimRight(baseURL, "/"), hc: httpClient}
}

// SetKey sets the API key sent as "Authorization: Bearer KEY".
func (c *Conn) SetKey(key string) { c.key = key }

// Get is Get on path (with its query) of the connection's server.
func (c *Conn) Get(ctx context.Context, path string, out any) error {
	return Get(ctx, c.hc, c.base+path, c.key, out)
}
