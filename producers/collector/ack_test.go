package collector_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/producers"
	"github.com/clickstream-go/clickstream/producers/collector"
)

// ackSink acknowledges batches when the test says so, like the producer
// does once PutRecords answered.
type ackSink struct {
	fakeSink
	mu    sync.Mutex
	dones []func(error)
	auto  error // with autoAck, the outcome reported at once
	autoA bool
	put   chan struct{} // signalled per batch (cap large)
}

func newAckSink() *ackSink { return &ackSink{put: make(chan struct{}, 100)} }

func (a *ackSink) TryPutBatchAck(rs []producers.Record, done func(error)) error {
	if err := a.fakeSink.TryPutBatch(rs); err != nil {
		return err
	}
	a.mu.Lock()
	auto, outcome := a.autoA, a.auto
	if !auto {
		a.dones = append(a.dones, done)
	}
	a.mu.Unlock()
	a.put <- struct{}{}
	if auto {
		go done(outcome)
	}
	return nil
}

func (a *ackSink) PutBatchAck(_ context.Context, rs []producers.Record, done func(error)) error {
	return a.TryPutBatchAck(rs, done)
}

// ack completes every batch put so far with err.
func (a *ackSink) ack(err error) {
	a.mu.Lock()
	dones := a.dones
	a.dones = nil
	a.mu.Unlock()
	for _, d := range dones {
		d(err)
	}
}

func TestCollector_AnswersOnlyOnceTheStreamAcknowledged(t *testing.T) {
	sink := newAckSink()
	s, _ := newServer(t, baseConfig(newClock()), sink)
	got := make(chan *httptest.ResponseRecorder, 1)
	go func() { got <- post(t, s.Handler(), "application/json", "["+click("u-1", 1)+","+click("u-2", 2)+"]") }()
	<-sink.put
	select {
	case w := <-got:
		t.Fatalf("answered %d before the stream acknowledged", w.Code)
	case <-time.After(50 * time.Millisecond):
	}
	sink.ack(nil)
	w := <-got
	if r := decodeResponse(t, w); r.Accepted != 2 {
		t.Fatalf("accepted %d, want 2", r.Accepted)
	}
}

func TestCollector_UnacknowledgedWithinAckTimeoutIs503SayingEventsMayBeWritten(t *testing.T) {
	sink := newAckSink()
	cfg := baseConfig(newClock())
	cfg.AckTimeout = 30 * time.Millisecond
	s, reg := newServer(t, cfg, sink)
	w := post(t, s.Handler(), "application/json", click("u-1", 1))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	if msg := errorOf(t, w); !strings.Contains(msg, "may have been written") || !strings.Contains(msg, "same event ids") {
		t.Fatalf("error %q does not tell the client its events may be on the stream", msg)
	}
	if n := counterValue(t, reg, "clickstream_collector_unconfirmed_requests_total", "timeout"); n != 1 {
		t.Fatalf("unconfirmed timeouts counted %v, want 1", n)
	}
	sink.ack(nil) // late acknowledgement: must not panic or block
}

func TestCollector_EventsFailingOnTheStreamAre503(t *testing.T) {
	sink := newAckSink()
	sink.autoA, sink.auto = true, &producers.BatchError{Errs: []error{producers.ErrRecordExpired}, Failed: 1}
	s, _ := newServer(t, baseConfig(newClock()), sink)
	w := post(t, s.Handler(), "application/json", click("u-1", 1))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", w.Code)
	}
}

func TestCollector_ClientGoneEndsTheWait(t *testing.T) {
	sink := newAckSink()
	s, _ := newServer(t, baseConfig(newClock()), sink)
	ctx, cancel := context.WithCancel(t.Context())
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/events", strings.NewReader(click("u-1", 1)))
	r.Header.Set("Authorization", "Bearer "+testKey)
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { s.Handler().ServeHTTP(w, r); close(done) }()
	<-sink.put
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handler still waiting after the client went away")
	}
	if w.Code == http.StatusAccepted {
		t.Fatal("202 without acknowledgement")
	}
}

func TestCollector_SpoolAnswersAfterFsyncAndShipsToTheSink(t *testing.T) {
	dir := t.TempDir()
	sink := newAckSink()
	cfg := baseConfig(newClock())
	cfg.SpoolDir = dir
	s, _ := newServer(t, cfg, sink)
	// The sink never acknowledges: 202 must not depend on the stream.
	w := post(t, s.Handler(), "application/json", "["+click("u-1", 1)+","+click("u-2", 2)+"]")
	if r := decodeResponse(t, w); r.Accepted != 2 {
		t.Fatalf("accepted %d", r.Accepted)
	}
	select {
	case <-sink.put:
	case <-time.After(5 * time.Second):
		t.Fatal("spooled events not shipped to the sink")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with unacknowledged events = %v, want DeadlineExceeded", err)
	}

	// Restarted on the same directory, the collector ships them again and,
	// acknowledged this time, commits them.
	sink2 := newAckSink()
	sink2.autoA = true
	s2, _ := newServer(t, cfg, sink2)
	select {
	case <-sink2.put:
	case <-time.After(5 * time.Second):
		t.Fatal("events left in the spool not shipped after restart")
	}
	if err := s2.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := sink2.records(); len(got) != 2 || !strings.Contains(string(got[0].Data), `"user_id":"u-1"`) {
		t.Fatalf("shipped after restart: %d records", len(got))
	}
	sink3 := newAckSink()
	s3, _ := newServer(t, cfg, sink3)
	defer s3.Close(t.Context())
	select {
	case <-sink3.put:
		t.Fatal("committed events shipped a third time")
	case <-time.After(100 * time.Millisecond):
	}
}

func TestCollector_SpoolFullIs503(t *testing.T) {
	sink := newAckSink()
	cfg := baseConfig(newClock())
	cfg.SpoolDir, cfg.SpoolMaxBytes = t.TempDir(), 2000
	s, _ := newServer(t, cfg, sink)
	defer func() {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		_ = s.Close(ctx) // the sink never acknowledged: Close gives up
	}()
	codes := map[int]int{}
	for i := range 20 {
		codes[post(t, s.Handler(), "application/json", click("u-1", i)).Code]++
	}
	if codes[http.StatusAccepted] == 0 || codes[http.StatusServiceUnavailable] == 0 {
		t.Fatalf("answers %v: want 202s until the 2000-byte spool is full, then 503s", codes)
	}
}

func TestNew_SpoolNeedsAnAcknowledgingSink(t *testing.T) {
	cfg := collector.Config{APIKeys: []string{"k"}, SpoolDir: t.TempDir()}
	if _, err := collector.New(cfg, &fakeSink{}, nil, nil); err == nil {
		t.Fatal("New accepted a spool with a sink that cannot acknowledge")
	}
}

// counterValue reads the counter named name whose one label has value label.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}
