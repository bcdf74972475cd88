package loadgen

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/clickstream-go/clickstream/internal/retry"
	"github.com/clickstream-go/clickstream/producers"
)

// Defaults of CollectorSink.
const (
	DefaultMaxRetries    = 5
	DefaultMaxRetryAfter = 30 * time.Second
	DefaultHTTPTimeout   = 30 * time.Second
)

// CollectorSink posts batches as NDJSON to the HTTP collector
// (POST /v1/events). It retries 429 and 503 after their Retry-After for
// as long as ctx lasts — nothing of such a request was accepted, so the
// retry cannot duplicate — and retries transport errors and other 5xx
// answers up to MaxRetries times with exponential backoff (a lost 202
// answer can then duplicate events; they keep their ids, so consumers can
// tell). Other 4xx answers are ErrPermanent.
type CollectorSink struct {
	// URL is the collector's base URL ("http://127.0.0.1:8080") or the full
	// events URL; a URL without a path gets /v1/events.
	URL string
	// APIKey is sent as Authorization: Bearer APIKey. Default none.
	APIKey string
	// Client is the HTTP client. Default one with a 30 s timeout.
	Client *http.Client
	// Gzip compresses request bodies. Default false.
	Gzip bool
	// MaxRetries bounds retries of transport errors and 5xx other than 503.
	// Default 5.
	MaxRetries int
	// MaxRetryAfter caps the wait a Retry-After header may ask for. Default 30 s.
	MaxRetryAfter time.Duration
}

var _ Sink = (*CollectorSink)(nil)

func (s *CollectorSink) endpoint() (string, error) {
	u, err := url.Parse(s.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("%w: collector URL %q must be http(s)://host[:port][/path]", ErrPermanent, s.URL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/events"
	}
	return u.String(), nil
}

// Send posts batch as one NDJSON request.
func (s *CollectorSink) Send(ctx context.Context, batch []Record) (Result, error) {
	var res Result
	endpoint, err := s.endpoint()
	if err != nil {
		return res, err
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	maxRetries := s.MaxRetries
	if maxRetries <= 0 {
		maxRetries = DefaultMaxRetries
	}
	maxWait := s.MaxRetryAfter
	if maxWait <= 0 {
		maxWait = DefaultMaxRetryAfter
	}
	body, err := s.encode(batch)
	if err != nil {
		return res, err
	}
	failures := 0
	for {
		status, hdr, respBody, err := s.post(ctx, client, endpoint, body)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			failures++
			if failures > maxRetries {
				return res, fmt.Errorf("post events: %w", err)
			}
			wait = retry.Delay(failures, 100*time.Millisecond, 5*time.Second)
		case status == http.StatusAccepted:
			var r struct {
				Accepted int         `json:"accepted"`
				Rejected []Rejection `json:"rejected"`
			}
			if err := json.Unmarshal(respBody, &r); err != nil {
				return res, fmt.Errorf("decode collector answer: %w", err)
			}
			res.Accepted, res.Rejected = r.Accepted, r.Rejected
			return res, nil
		case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
			wait = min(retryAfter(hdr, time.Second), maxWait)
		case status >= 500:
			failures++
			if failures > maxRetries {
				return res, fmt.Errorf("post events: collector answered %d: %s", status, errText(respBody))
			}
			wait = retry.Delay(failures, 100*time.Millisecond, 5*time.Second)
		default:
			return res, fmt.Errorf("%w: collector answered %d: %s", ErrPermanent, status, errText(respBody))
		}
		res.Retries++
		if err := retry.Sleep(ctx, wait); err != nil {
			return res, err
		}
	}
}

func (s *CollectorSink) encode(batch []Record) ([]byte, error) {
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if s.Gzip {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	for _, r := range batch {
		if bytes.ContainsAny(r.Data, "\n\r") {
			return nil, fmt.Errorf("%w: record data contains a newline, which NDJSON cannot frame", ErrPermanent)
		}
		_, _ = w.Write(r.Data)
		_, _ = w.Write([]byte{'\n'})
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
	}
	return buf.Bytes(), nil
}

func (s *CollectorSink) post(ctx context.Context, client *http.Client, endpoint string, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if s.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if s.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+s.APIKey)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read collector answer: %w", err)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// retryAfter parses Retry-After (seconds or an HTTP date), else def.
func retryAfter(h http.Header, def time.Duration) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return def
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return def
}

func errText(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.TrimSpace(string(b))
}

// Putter is the part of *producers.Producer that ProducerSink uses.
type Putter interface {
	PutBatchAck(ctx context.Context, rs []producers.Record, done func(error)) error
	Flush(ctx context.Context) error
}

var _ Putter = (*producers.Producer)(nil)

// DefaultAckGrace is how long ProducerSink still waits for Kinesis'
// answer about records already handed to the producer once ctx is done.
const DefaultAckGrace = 30 * time.Second

// ProducerSink sends records straight to Kinesis with the producer
// library (`--via kinesis`): no validation, so malformed records reach the
// stream as bad records for the consumers' dead-letter paths. Send returns
// when Kinesis acknowledged or finally failed every record of the batch, so
// Result.Accepted counts records on the stream, not records buffered;
// PutBatchAck blocks while the producer's buffer is full, which paces Run.
type ProducerSink struct {
	P Putter
	// AckGrace bounds the wait for acknowledgements after ctx is done
	// (an interrupted run still learns what its last batches did).
	// Default DefaultAckGrace.
	AckGrace time.Duration
}

var _ Sink = ProducerSink{}

// Send puts the batch and waits for Kinesis' answer. A record the producer
// refuses up front (too large, invalid) is a rejection; a record that
// finally failed (rejected by Kinesis, expired, abandoned) is in
// Result.Failed with its reason.
func (s ProducerSink) Send(ctx context.Context, batch []Record) (Result, error) {
	var res Result
	recs := make([]producers.Record, 0, len(batch))
	idx := make([]int, 0, len(batch)) // batch index of recs[i]
	for i, r := range batch {
		pr := producers.Record{PartitionKey: r.PartitionKey, Data: r.Data}
		if err := producers.Validate(pr); err != nil {
			res.Rejected = append(res.Rejected, Rejection{Index: i, Error: err.Error()})
			continue
		}
		recs, idx = append(recs, pr), append(idx, i)
	}
	if len(recs) == 0 {
		return res, nil
	}
	done := make(chan error, 1)
	if err := s.P.PutBatchAck(ctx, recs, func(err error) { done <- err }); err != nil {
		if errors.Is(err, producers.ErrClosed) {
			return res, fmt.Errorf("%w: put records: %w", ErrPermanent, err)
		}
		return res, fmt.Errorf("put records: %w", err)
	}
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		grace := s.AckGrace
		if grace <= 0 {
			grace = DefaultAckGrace
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case err = <-done:
		case <-t.C:
			return res, fmt.Errorf("no answer from Kinesis within %s of the stop for %d records (they may still be written)", grace, len(recs))
		}
	}
	var be *producers.BatchError
	switch {
	case err == nil:
		res.Accepted = len(recs)
	case errors.As(err, &be):
		for i, e := range be.Errs {
			if e == nil {
				res.Accepted++
			} else {
				res.Failed = append(res.Failed, Rejection{Index: idx[i], Error: e.Error()})
			}
		}
	default:
		return res, fmt.Errorf("put records: %w", err)
	}
	return res, nil
}

// Flush waits until every record put so far is delivered or failed; it
// reports failures no acknowledgement reported.
func (s ProducerSink) Flush(ctx context.Context) error { return s.P.Flush(ctx) }
