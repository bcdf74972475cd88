package collector

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/clickstream-go/clickstream/event"
)

// Defaults of Config. A zero field in Config means "use the default".
const (
	DefaultAddr            = "127.0.0.1:8080"
	DefaultMaxBodyBytes    = 1 << 20 // 1 MiB, compressed and decompressed
	DefaultMaxEvents       = 1000
	DefaultRatePerKey      = 10_000 // events/s
	DefaultBurst           = 20_000 // events
	DefaultMaxInFlight     = 64
	DefaultRetryAfter      = time.Second
	DefaultShutdownTimeout = 10 * time.Second
	DefaultCORSMaxAge      = 10 * time.Minute
	DefaultAckTimeout      = 10 * time.Second
	DefaultSpoolMaxBytes   = 1 << 30
	// MaxEventBytes is the largest canonical encoding of one event the
	// collector accepts: a Kinesis record holds at most 1 MiB of data plus
	// partition key (≤ 256 bytes); a larger event is rejected individually.
	MaxEventBytes = 1<<20 - 256
)

// Config configures a collector Server. The zero value of every field
// selects its default; the only field without a usable default is the
// authentication choice: set APIKeys, or InsecureNoAuth for local use.
type Config struct {
	// Addr is the TCP address Run listens on. Default "127.0.0.1:8080"
	// (loopback: expose it deliberately, e.g. ":8080" behind a load balancer).
	Addr string

	// APIKeys are the accepted bearer tokens (`Authorization: Bearer KEY`),
	// compared in constant time. Each key has its own rate limit. Default none.
	APIKeys []string
	// InsecureNoAuth accepts requests without a valid key (local use only;
	// Run logs a warning). Requests without a valid key then share one rate
	// limiter; requests that present a configured key still use that key's.
	// Default false: New fails when APIKeys is empty and this is false.
	InsecureNoAuth bool

	// MaxBodyBytes bounds a request body, both as sent and after gzip
	// decompression (a zip bomb gets 413 after at most this many bytes were
	// inflated). Default 1 MiB.
	MaxBodyBytes int64
	// MaxEvents bounds the events in one request (413 beyond). Default 1000.
	MaxEvents int
	// MaxFuture rejects (by index, like any invalid event) an event whose ts
	// is more than this after the collector received it: a device with a
	// wrong clock would open archive partitions and metric windows years
	// ahead. The consumers dead-letter such events too, against Kinesis's
	// arrival time. Default event.DefaultMaxFuture (24h); negative: no check.
	MaxFuture time.Duration

	// RatePerKey is the sustained events/s allowed per API key, counting
	// every event of a request, valid or not. Default 10,000; negative
	// disables rate limiting.
	RatePerKey float64
	// Burst is the number of events a key may send at once above the
	// sustained rate. Default 20,000; must be at least MaxEvents, or a full
	// request could never pass.
	Burst int

	// MaxInFlight bounds concurrent POST /v1/events requests; beyond it the
	// collector answers 503 with Retry-After rather than queueing, so memory
	// stays below about MaxInFlight × 3 × MaxBodyBytes. Default 64.
	MaxInFlight int
	// RetryAfter is the Retry-After sent with 503 (producer buffer or spool
	// full, acknowledgement timed out, too many requests in flight), rounded
	// up to whole seconds. Default 1s.
	RetryAfter time.Duration

	// AckTimeout bounds how long a request waits for its events to be
	// acknowledged by the stream (default mode) or fsync'd to the spool
	// (SpoolDir); then it gets 503 with Retry-After, although its events
	// may still be written. The client's disconnect ends the wait too.
	// Default 10s.
	AckTimeout time.Duration
	// SpoolDir, when set, turns on the spool: requests are answered 202
	// once their events are appended and fsync'd to a write-ahead log in
	// this directory, and a shipper puts them on the stream from there
	// (package spool). Events survive a crash of the collector and are
	// shipped when it restarts on the same directory. Default "": 202 only
	// once the stream acknowledged the events.
	SpoolDir string
	// SpoolMaxBytes bounds the spool on disk; beyond it requests get 503.
	// Default 1 GiB.
	SpoolMaxBytes int64
	// SpoolSegmentBytes is the spool's segment file size (see
	// spool.LogOptions). Default 16 MiB.
	SpoolSegmentBytes int64

	// AllowedOrigins lists the browser origins (e.g. "https://app.example.com")
	// allowed to POST events cross-origin; "*" allows any origin. Default
	// none: no CORS headers are sent, so browsers only post same-origin.
	// Credentials (cookies) are never allowed: auth is the bearer key.
	AllowedOrigins []string
	// CORSMaxAge is how long browsers may cache a preflight answer.
	// Default 10 minutes.
	CORSMaxAge time.Duration

	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the
	// http.Server timeouts Run uses. Defaults 5s, 30s, 30s and 120s.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// ShutdownTimeout bounds the graceful shutdown after Run's ctx is done:
	// in-flight requests get this long to finish. Default 10s.
	ShutdownTimeout time.Duration

	// Now is the clock for received_at and rate limiting. Default time.Now.
	Now func() time.Time
}

// withDefaults returns cfg with every zero field set to its default, or an
// error naming the first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if len(cfg.APIKeys) == 0 && !cfg.InsecureNoAuth {
		return cfg, errors.New("collector config: no API keys configured (set APIKeys, or InsecureNoAuth for local use)")
	}
	for i, k := range cfg.APIKeys {
		if k == "" {
			return cfg, fmt.Errorf("collector config: APIKeys[%d] is empty", i)
		}
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxBodyBytes < 0 {
		return cfg, fmt.Errorf("collector config: MaxBodyBytes %d is negative", cfg.MaxBodyBytes)
	}
	if cfg.MaxEvents == 0 {
		cfg.MaxEvents = DefaultMaxEvents
	}
	switch {
	case cfg.MaxFuture == 0:
		cfg.MaxFuture = event.DefaultMaxFuture
	case cfg.MaxFuture < 0:
		cfg.MaxFuture = 0
	}
	if cfg.MaxEvents < 0 {
		return cfg, fmt.Errorf("collector config: MaxEvents %d is negative", cfg.MaxEvents)
	}
	switch {
	case cfg.RatePerKey == 0:
		cfg.RatePerKey = DefaultRatePerKey
	case cfg.RatePerKey < 0:
		cfg.RatePerKey = math.Inf(1)
	}
	if cfg.Burst == 0 {
		cfg.Burst = max(DefaultBurst, cfg.MaxEvents)
	}
	if !math.IsInf(cfg.RatePerKey, 1) && cfg.Burst < cfg.MaxEvents {
		return cfg, fmt.Errorf("collector config: Burst %d is below MaxEvents %d: a full request could never pass the rate limit", cfg.Burst, cfg.MaxEvents)
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxInFlight < 0 {
		return cfg, fmt.Errorf("collector config: MaxInFlight %d is negative", cfg.MaxInFlight)
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.SpoolMaxBytes <= 0 {
		cfg.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	if cfg.CORSMaxAge <= 0 {
		cfg.CORSMaxAge = DefaultCORSMaxAge
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 5 * time.Second
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}
