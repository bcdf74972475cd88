// Package collector is the HTTP front door of the pipeline for apps that
// cannot hold AWS credentials: POST /v1/events takes batches of events
// (JSON array, NDJSON or one object, optionally gzipped), validates each
// event on its own, re-encodes the valid ones canonically and hands them to
// the producer library, which puts them on the Kinesis stream.
//
// Responses: 202 {"accepted":N,"rejected":[{"index":i,"error":"…"}]} —
// valid events are accepted even when others in the same request are not;
// 400 (body not framable as events), 401, 405, 413 (body or event count
// over the limit), 415, 429 and 503 with Retry-After.
//
// Nothing answered 202 is lost. What 202 means:
//
//   - By default, the events are on the stream: the collector waits until
//     Kinesis acknowledged every one of them (producers.TryPutBatchAck), so
//     a crash of the collector after the answer loses nothing. The cost is
//     latency: about one PutRecords round trip (waited-for records skip the
//     producer's linger, producers.WithAckLinger); under load, concurrent
//     requests share calls. If the stream has not taken them within
//     Config.AckTimeout, the answer is 503.
//   - With Config.SpoolDir, the events are fsync'd to a local write-ahead
//     spool (package spool; concurrent requests share an fsync). A shipper
//     puts them on the stream from there; after a crash or a SIGKILL the
//     collector ships what is left when it restarts on the same directory.
//     503 when the spool is full (Config.SpoolMaxBytes).
//   - With a Sink that cannot acknowledge (only TryPutBatch), the events are
//     in the sink's buffer: the collector's old, weaker promise.
//
// What a client may see, and must do. A 429, or a 503 given before the
// events were handed over (buffer or spool full, too many requests in
// flight, shutting down), accepted nothing. But a 503 after waiting (the
// acknowledgement timed out, some events failed on the stream, the spool
// write was not confirmed), a 500, or a dropped connection can come
// although some or all of the events are on the stream, or in the spool
// and shipped later. So clients retry every 5xx and network error with the
// same events carrying the same "id", and consumers that must not count an
// event twice drop repeated ids (or, for copies of one Kinesis record,
// repeated shard and sequence numbers). Events sent without an id get a new
// ULID on every attempt, so their retries cannot be told apart: clients
// that retry should set ids. The spool is at least once as well: after a
// crash, events the shipper had put on the stream but not yet committed
// (at most its commit interval's worth) are shipped again.
package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/producers"
	"github.com/clickstream-go/clickstream/producers/spool"
	"github.com/clickstream-go/clickstream/producers/web"
)

// Sink takes the records of one request, all or nothing, without blocking:
// it returns producers.ErrBufferFull when it cannot take them all now.
// *producers.Producer implements it.
type Sink interface {
	TryPutBatch(records []producers.Record) error
}

// AckSink is a Sink that can tell when records are on the stream: done is
// called once, from another goroutine, with nil when every record was
// acknowledged by Kinesis or an error when some failed (see
// producers.Producer.TryPutBatchAck). The collector waits for it before
// answering 202. *producers.Producer implements it; so must the sink of a
// spool (Config.SpoolDir).
type AckSink interface {
	Sink
	TryPutBatchAck(records []producers.Record, done func(error)) error
	PutBatchAck(ctx context.Context, records []producers.Record, done func(error)) error
}

var (
	_ Sink    = (*producers.Producer)(nil)
	_ AckSink = (*producers.Producer)(nil)
)

// Server is the HTTP collector. Build it with New; serve Handler yourself or
// call Run.
type Server struct {
	cfg      Config
	sink     Sink
	acker    AckSink      // sink, when it can acknowledge; nil otherwise
	spool    *spool.Spool // nil unless Config.SpoolDir
	log      *slog.Logger
	keys     *keyring
	m        *metrics
	gatherer prometheus.Gatherer // nil: /metrics is not served
	inFlight chan struct{}       // semaphore, capacity MaxInFlight
	origins  map[string]bool
	anyOrig  bool
	handler  http.Handler
	warnLog  rate.Sometimes // rate-limits warnings logged per request
}

// New builds a collector. sink receives the accepted events (normally a
// *producers.Producer); when it is an AckSink, 202 waits for the stream's
// acknowledgement. With Config.SpoolDir, New opens (and recovers) the
// spool and starts shipping it to sink: call Close. logger may be nil (logs are discarded). reg
// receives the collector's Prometheus metrics; when nil, a private registry
// is used. /metrics serves reg when it is also a prometheus.Gatherer (as
// *prometheus.Registry is) — pass the registry shared with the producer to
// expose both — and is not served otherwise.
func New(cfg Config, sink Sink, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, errors.New("collector: nil sink")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("register collector metrics: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		sink:     sink,
		log:      logger,
		keys:     newKeyring(cfg),
		m:        m,
		inFlight: make(chan struct{}, cfg.MaxInFlight),
		origins:  map[string]bool{},
		warnLog:  rate.Sometimes{Interval: 5 * time.Second},
	}
	if g, ok := reg.(prometheus.Gatherer); ok {
		s.gatherer = g
	}
	s.acker, _ = sink.(AckSink)
	if cfg.SpoolDir != "" {
		if s.acker == nil {
			return nil, errors.New("collector: SpoolDir needs a sink that acknowledges (AckSink), such as *producers.Producer")
		}
		sp, err := spool.New(spool.Config{
			Dir: cfg.SpoolDir, MaxBytes: cfg.SpoolMaxBytes, SegmentBytes: cfg.SpoolSegmentBytes, Logger: logger,
		}, s.acker)
		if err != nil {
			return nil, fmt.Errorf("collector: %w", err)
		}
		if err := registerSpoolMetrics(reg, sp); err != nil {
			_ = sp.Close(context.Background())
			return nil, fmt.Errorf("register spool metrics: %w", err)
		}
		s.spool = sp
	}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			s.anyOrig = true
		}
		s.origins[strings.TrimRight(o, "/")] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/events", s.handleEvents)
	sdk := web.Handler()
	mux.Handle("GET "+web.SDKPath, sdk)
	mux.Handle("GET "+web.TypesPath, sdk)
	mux.Handle("GET "+web.ExamplePath, sdk)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	if s.gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}))
	}
	s.handler = mux
	return s, nil
}

// Handler returns the collector's routes: POST /v1/events (and its CORS
// preflight), GET /healthz and GET /metrics.
func (s *Server) Handler() http.Handler { return s.handler }

// Run listens on Config.Addr and serves until ctx is done, then shuts down
// gracefully (in-flight requests get Config.ShutdownTimeout). It does not
// close the sink: after Run returns, Close the server (the spool ships what
// it can), then close the producer, so that what was accepted reaches
// Kinesis.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened; it closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if s.cfg.InsecureNoAuth {
		s.log.Warn("collector accepts events without an API key (InsecureNoAuth): for local use only")
	}
	s.log.Info("collector listening", "addr", ln.Addr().String(), "api_keys", len(s.cfg.APIKeys), "allowed_origins", len(s.cfg.AllowedOrigins))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close()
	}
	<-errc // http.ErrServerClosed
	if err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	s.log.Info("collector stopped")
	return nil
}

// Close stops the spool, if there is one: it keeps shipping until the spool
// is empty or ctx is done; the rest stays on disk for the next start. Call
// it after Run returned and before closing the sink. Without a spool it
// does nothing.
func (s *Server) Close(ctx context.Context) error {
	if s.spool == nil {
		return nil
	}
	return s.spool.Close(ctx)
}

// Rejection reports one invalid event of a request.
type Rejection struct {
	Index int    `json:"index"` // position among the request's events (NDJSON: blank lines not counted)
	Error string `json:"error"`
}

// Response is the body of a 202 answer.
type Response struct {
	Accepted int         `json:"accepted"`
	Rejected []Rejection `json:"rejected"` // never null
}

type errorBody struct {
	Error string `json:"error"`
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := s.serveEvents(w, r)
	s.m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	s.m.latency.Observe(time.Since(start).Seconds())
}

// serveEvents handles /v1/events and returns the status it wrote.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) int {
	receivedAt := s.cfg.Now()
	if code, done := s.cors(w, r); done {
		return code
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		return s.fail(w, r, reqErr(http.StatusMethodNotAllowed, "method %s not allowed: POST events", r.Method))
	}
	// A beacon (navigator.sendBeacon, a page being closed) cannot set
	// headers: the key may come as ?key=KEY instead. Browser keys are public
	// anyway (they are in the page); the per-key rate limit is their guard.
	auth := r.Header.Get("Authorization")
	if k := r.URL.Query().Get("key"); auth == "" && k != "" {
		auth = "Bearer " + k
	}
	lim := s.keys.authenticate(auth)
	if lim == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="clickstream"`)
		return s.fail(w, r, reqErr(http.StatusUnauthorized, "missing or invalid API key: send Authorization: Bearer KEY (or ?key=KEY from a beacon)"))
	}
	format, err := parseContentType(r.Header.Get("Content-Type"))
	if err != nil {
		return s.fail(w, r, err)
	}
	gzipped, err := parseContentEncoding(r.Header.Get("Content-Encoding"))
	if err != nil {
		return s.fail(w, r, err)
	}
	select {
	case s.inFlight <- struct{}{}:
		defer func() { <-s.inFlight }()
	default:
		return s.unavailable(w, r, "too many requests in flight")
	}
	s.m.inFlight.Inc()
	defer s.m.inFlight.Dec()

	buf := getBuf()
	defer putBuf(buf)
	if err := readBody(buf, http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), gzipped, s.cfg.MaxBodyBytes); err != nil {
		return s.fail(w, r, err)
	}
	s.m.bodyBytes.Observe(float64(buf.Len()))
	raws, err := splitEvents(buf.Bytes(), format, s.cfg.MaxEvents)
	if err != nil {
		return s.fail(w, r, err)
	}
	// The limit counts events, so it is checked once they are counted; the
	// Retry-After then says when this request's events would pass.
	wait, undo := reserve(lim, receivedAt, len(raws))
	if wait > 0 {
		return s.tooManyEvents(w, r, wait)
	}

	resp := Response{Rejected: []Rejection{}}
	records := make([]producers.Record, 0, len(raws))
	for i, raw := range raws {
		rec, err := encodeEvent(raw, receivedAt, s.cfg.MaxFuture)
		if err != nil {
			resp.Rejected = append(resp.Rejected, Rejection{Index: i, Error: err.Error()})
			continue
		}
		records = append(records, rec)
	}
	if len(records) > 0 {
		if code, ok := s.deliver(w, r, records); !ok {
			undo()
			return code
		}
	}
	resp.Accepted = len(records)
	s.m.events.WithLabelValues("accepted").Add(float64(resp.Accepted))
	s.m.events.WithLabelValues("rejected").Add(float64(len(resp.Rejected)))
	if len(resp.Rejected) > 0 {
		s.log.Debug("rejected events", "remote", r.RemoteAddr, "accepted", resp.Accepted, "rejected", len(resp.Rejected), "first_error", resp.Rejected[0].Error)
	}
	writeJSON(w, http.StatusAccepted, resp)
	return http.StatusAccepted
}

// encodeEvent decodes and validates one event, assigns an id when absent,
// stamps received_at and returns its canonical encoding as a record.
func encodeEvent(raw []byte, receivedAt time.Time, maxFuture time.Duration) (producers.Record, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return producers.Record{}, errors.New("event must be a JSON object")
	}
	var e event.Event
	if err := event.Unmarshal(raw, &e); err != nil {
		return producers.Record{}, err
	}
	if e.ID == "" {
		e.ID = event.NewID()
	}
	e.ReceivedAt = receivedAt
	if err := e.Validate(); err != nil {
		return producers.Record{}, err
	}
	if err := e.CheckFuture(receivedAt, maxFuture); err != nil {
		return producers.Record{}, err
	}
	data := e.AppendJSON(make([]byte, 0, len(raw)+96))
	if len(data) > MaxEventBytes {
		return producers.Record{}, fmt.Errorf("event too large: %d bytes encoded, limit %d", len(data), MaxEventBytes)
	}
	pk := e.PartitionKey()
	if pk == "" || len(pk) > event.MaxUserIDBytes {
		// Validate bounds user_id and id; this keeps one odd event from
		// failing the whole all-or-nothing batch in the producer.
		return producers.Record{}, fmt.Errorf("partition key (user_id, else id) must be 1 to %d bytes", event.MaxUserIDBytes)
	}
	return producers.Record{PartitionKey: pk, Data: data}, nil
}

// deliver hands the records over and returns once they are as safe as a
// 202 promises (see the package doc); otherwise it writes the error answer
// and returns its status.
func (s *Server) deliver(w http.ResponseWriter, r *http.Request, records []producers.Record) (int, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.AckTimeout)
	defer cancel()
	switch {
	case s.spool != nil:
		err := s.spool.Append(ctx, records)
		switch {
		case err == nil:
			return 0, true
		case errors.Is(err, spool.ErrFull):
			return s.unavailable(w, r, "spool full"), false
		case errors.Is(err, spool.ErrClosed):
			return s.unavailable(w, r, "collector is shutting down"), false
		case ctx.Err() != nil:
			s.m.unacked.WithLabelValues("timeout").Inc()
			return s.unconfirmed(w, r, fmt.Sprintf("spool write not confirmed within %s", s.cfg.AckTimeout)), false
		}
		s.m.unacked.WithLabelValues("failed").Inc()
		s.log.Error("spool append", "remote", r.RemoteAddr, "events", len(records), "err", err)
		return s.unconfirmed(w, r, "spool write failed"), false
	case s.acker != nil:
		res := make(chan error, 1)
		if err := s.acker.TryPutBatchAck(records, func(err error) { res <- err }); err != nil {
			return s.sinkFailed(w, r, err, len(records)), false
		}
		select {
		case err := <-res:
			if err == nil {
				return 0, true
			}
			s.m.unacked.WithLabelValues("failed").Inc()
			s.warnLog.Do(func() {
				s.log.Warn("events failed on the stream", "remote", r.RemoteAddr, "events", len(records), "err", err)
			})
			return s.unconfirmed(w, r, "the stream did not take every event"), false
		case <-ctx.Done():
			// The records stay in the producer's buffer and may still be
			// written: the answer says so.
			s.m.unacked.WithLabelValues("timeout").Inc()
			return s.unconfirmed(w, r, fmt.Sprintf("events not acknowledged by the stream within %s", s.cfg.AckTimeout)), false
		}
	default:
		if err := s.sink.TryPutBatch(records); err != nil {
			return s.sinkFailed(w, r, err, len(records)), false
		}
		return 0, true
	}
}

// unconfirmed answers 503 with Retry-After for events handed over whose
// safety could not be confirmed: some or all may be on the stream (or in
// the spool) already.
func (s *Server) unconfirmed(w http.ResponseWriter, r *http.Request, why string) int {
	s.warnLog.Do(func() { s.log.Warn("events not confirmed (503)", "reason", why, "remote", r.RemoteAddr) })
	setRetryAfter(w, s.cfg.RetryAfter)
	return s.fail(w, r, reqErr(http.StatusServiceUnavailable, "%s: some events may have been written; retry with the same event ids", why))
}

func (s *Server) sinkFailed(w http.ResponseWriter, r *http.Request, err error, n int) int {
	switch {
	case errors.Is(err, producers.ErrBufferFull):
		return s.unavailable(w, r, "producer buffer full")
	case errors.Is(err, producers.ErrClosed):
		return s.unavailable(w, r, "collector is shutting down")
	case errors.Is(err, producers.ErrRecordTooLarge), errors.Is(err, producers.ErrBatchTooLarge):
		// Only reachable when the producer's limits are below the collector's
		// (MaxEventBytes, MaxEvents): the request can never pass as sent.
		return s.fail(w, r, reqErr(http.StatusRequestEntityTooLarge, "%v: send fewer or smaller events", err))
	}
	s.log.Error("put events", "remote", r.RemoteAddr, "events", n, "err", err)
	return s.fail(w, r, reqErr(http.StatusInternalServerError, "internal error: events not accepted, retry later"))
}

// unavailable answers 503 with Retry-After: nothing of the request was
// accepted, so the client can send it again unchanged.
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, why string) int {
	s.warnLog.Do(func() { s.log.Warn("refusing events (503)", "reason", why, "remote", r.RemoteAddr) })
	setRetryAfter(w, s.cfg.RetryAfter)
	return s.fail(w, r, reqErr(http.StatusServiceUnavailable, "%s: nothing accepted, retry later", why))
}

func (s *Server) tooManyEvents(w http.ResponseWriter, r *http.Request, wait time.Duration) int {
	setRetryAfter(w, wait)
	return s.fail(w, r, reqErr(http.StatusTooManyRequests, "rate limit of %g events/s for this key exceeded: nothing accepted, retry later", s.cfg.RatePerKey))
}

func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(d.Seconds())))))
}

// fail writes a whole-request error as {"error":"…"}.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) int {
	code := http.StatusBadRequest
	var re *requestError
	if errors.As(err, &re) {
		code = re.status
	}
	if code == http.StatusRequestEntityTooLarge {
		// The rest of an oversized body is not worth reading.
		w.Header().Set("Connection", "close")
	}
	s.log.Debug("request failed", "code", code, "remote", r.RemoteAddr, "err", err)
	writeJSON(w, code, errorBody{Error: err.Error()})
	return code
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen for the types written here
		b = []byte(`{"error":"internal error"}`)
		code = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// cors adds CORS headers for allowed origins and answers preflight and
// other OPTIONS requests itself (done = true).
func (s *Server) cors(w http.ResponseWriter, r *http.Request) (code int, done bool) {
	origin := r.Header.Get("Origin")
	preflight := r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != ""
	if origin != "" {
		h := w.Header()
		h.Add("Vary", "Origin")
		if preflight {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
		}
		switch {
		case s.anyOrig:
			h.Set("Access-Control-Allow-Origin", "*")
		case s.origins[origin]:
			h.Set("Access-Control-Allow-Origin", origin)
		case preflight:
			writeJSON(w, http.StatusForbidden, errorBody{Error: fmt.Sprintf("origin %q is not allowed", origin)})
			return http.StatusForbidden, true
		}
		if h.Get("Access-Control-Allow-Origin") != "" {
			h.Set("Access-Control-Expose-Headers", "Retry-After")
		}
	}
	if r.Method != http.MethodOptions {
		return 0, false
	}
	h := w.Header()
	h.Set("Allow", "POST, OPTIONS")
	if preflight {
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Content-Encoding")
		h.Set("Access-Control-Max-Age", strconv.Itoa(int(s.cfg.CORSMaxAge.Seconds())))
	}
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent, true
}
