package loadgen

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/producers"
	"github.com/clickstream-go/clickstream/producers/collector"
)

// memSink keeps every batch; it rejects records that do not decode, like
// the collector.
type memSink struct {
	mu      sync.Mutex
	records []Record
	batches int
	maxSize int
	flushed bool
	err     error
}

func (m *memSink) Send(ctx context.Context, batch []Record) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return Result{}, m.err
	}
	m.batches++
	m.maxSize = max(m.maxSize, len(batch))
	var res Result
	for i, r := range batch {
		if _, err := event.Decode(r.Data); err != nil {
			res.Rejected = append(res.Rejected, Rejection{Index: i, Error: err.Error()})
			continue
		}
		res.Accepted++
		m.records = append(m.records, r)
	}
	return res, nil
}

func (m *memSink) Flush(context.Context) error {
	m.mu.Lock()
	m.flushed = true
	m.mu.Unlock()
	return nil
}

// keepAlives ignores idle keep-alive connections of http.DefaultTransport
// that other tests of the package (the collector integration test) leave
// behind; they are the transport's pool, not goroutines Run leaked.
var keepAlives = []goleak.Option{
	goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
}

func TestRun_StopsAfterEventsAndCountsEveryOutcome(t *testing.T) {
	defer goleak.VerifyNone(t, keepAlives...)
	sink := &memSink{}
	var progress bytes.Buffer
	st, err := Run(context.Background(), Config{
		GeneratorConfig: GeneratorConfig{Seed: 1},
		Events:          5000, BadRate: 0.05, BatchSize: 100,
	}, sink, &progress)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Generated != 5000 {
		t.Errorf("generated %d, want 5000", st.Generated)
	}
	if st.Sent+st.Rejected != 5000 || st.Failed != 0 {
		t.Errorf("sent %d + rejected %d (failed %d), want 5000 in all", st.Sent, st.Rejected, st.Failed)
	}
	if st.Rejected != st.ByType[TypeMalformed] {
		t.Errorf("rejected %d, want exactly the %d malformed ones", st.Rejected, st.ByType[TypeMalformed])
	}
	if share := float64(st.ByType[TypeMalformed]) / 5000; math.Abs(share-0.05) > 0.015 {
		t.Errorf("malformed share %.3f, want 0.05", share)
	}
	var sum int64
	for _, n := range st.ByType {
		sum += n
	}
	if sum != 5000 || st.ByType[event.TypeClick] == 0 || st.ByType[event.TypeImpression] == 0 || st.ByType[event.TypeAccess] == 0 {
		t.Errorf("by type %v", st.ByType)
	}
	if sink.maxSize > 100 || !sink.flushed {
		t.Errorf("max batch %d (want ≤ 100), flushed %v", sink.maxSize, sink.flushed)
	}
	if !strings.Contains(progress.String(), "loadgen done: generated=5000") {
		t.Errorf("no final summary in %q", progress.String())
	}
}

func TestRun_SameSeedSendsSameEventsAndKeepsEachUsersOrder(t *testing.T) {
	run := func() []Record {
		sink := &memSink{}
		// A fixed clock makes the sequence reproducible end to end.
		clock := func() time.Time { return t0 }
		if _, err := Run(context.Background(), Config{
			GeneratorConfig: GeneratorConfig{Seed: 42, Clock: clock},
			Events:          3000, BatchSize: 64, Concurrency: 4,
		}, sink, nil); err != nil {
			t.Fatal(err)
		}
		return sink.records
	}
	a, b := run(), run()
	perKey := func(rs []Record) map[string][]string {
		m := map[string][]string{}
		for _, r := range rs {
			m[r.PartitionKey] = append(m[r.PartitionKey], string(r.Data))
		}
		return m
	}
	// Batches interleave differently across senders, but each key's
	// sequence is identical: senders are chosen by key.
	ka, kb := perKey(a), perKey(b)
	if len(a) != 3000 || len(ka) != len(kb) {
		t.Fatalf("runs differ: %d/%d records, %d/%d keys", len(a), len(b), len(ka), len(kb))
	}
	g := newGen(t, GeneratorConfig{Seed: 42})
	want := map[string][]string{}
	for range 3000 {
		e := g.NextAt(t0)
		want[e.PartitionKey()] = append(want[e.PartitionKey()], string(e.AppendJSON(nil)))
	}
	for k, seq := range want {
		if strings.Join(ka[k], "\n") != strings.Join(seq, "\n") || strings.Join(kb[k], "\n") != strings.Join(seq, "\n") {
			t.Fatalf("key %s: events out of order or different from the generator's", k)
		}
	}
}

func TestRun_PacesToTheConfiguredRate(t *testing.T) {
	sink := &memSink{}
	st, err := Run(context.Background(), Config{
		GeneratorConfig: GeneratorConfig{Seed: 1},
		Rate:            2000, Duration: 600 * time.Millisecond,
	}, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Token bucket: a burst of Rate/50 plus Rate × Duration.
	if st.Generated < 900 || st.Generated > 1300 {
		t.Errorf("generated %d in 600 ms at 2000/s, want about 1200", st.Generated)
	}
	if st.Sent != st.Generated {
		t.Errorf("sent %d of %d", st.Sent, st.Generated)
	}
}

func TestRun_PrintsProgressEveryInterval(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) })
	_, err := Run(context.Background(), Config{
		GeneratorConfig: GeneratorConfig{Seed: 1},
		Rate:            1000, Duration: 350 * time.Millisecond, ProgressEvery: 100 * time.Millisecond,
	}, &memSink{}, w)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	lines := strings.Count(buf.String(), "loadgen: elapsed=")
	if lines < 2 || !strings.Contains(buf.String(), "rate=") || !strings.Contains(buf.String(), "failed=0") {
		t.Errorf("%d progress lines in %q", lines, buf.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestRun_StopsOnAPermanentSinkErrorAndCountsTransientOnesAsFailed(t *testing.T) {
	defer goleak.VerifyNone(t, keepAlives...)
	perm := &memSink{err: fmt.Errorf("%w: 401", ErrPermanent)}
	st, err := Run(context.Background(), Config{GeneratorConfig: GeneratorConfig{Seed: 1}, BatchSize: 10}, perm, nil)
	if !errors.Is(err, ErrPermanent) {
		t.Fatalf("err %v, want ErrPermanent", err)
	}
	if st.Failed == 0 || st.Sent != 0 {
		t.Errorf("stats %s", st)
	}
	transient := &memSink{err: errors.New("connection reset")}
	st, err = Run(context.Background(), Config{GeneratorConfig: GeneratorConfig{Seed: 1}, Events: 100, BatchSize: 10}, transient, nil)
	if err != nil {
		t.Fatalf("transient errors ended the run: %v", err)
	}
	if st.Failed != 100 {
		t.Errorf("failed %d, want 100", st.Failed)
	}
}

func TestRun_ReturnsWhenContextIsCancelled(t *testing.T) {
	defer goleak.VerifyNone(t, keepAlives...)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	st, err := Run(ctx, Config{GeneratorConfig: GeneratorConfig{Seed: 1}, Rate: 5000}, &memSink{}, io.Discard)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v, want the context's", err)
	}
	if st.Generated == 0 {
		t.Errorf("nothing generated")
	}
}

func TestRun_RejectsInvalidConfig(t *testing.T) {
	for _, cfg := range []Config{{Rate: -1}, {BadRate: 1.5}, {Events: -1}, {GeneratorConfig: GeneratorConfig{ZipfS: 0.5}}} {
		if _, err := Run(context.Background(), cfg, &memSink{}, nil); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

// collectorStub answers like the collector: it counts events per request
// and answers from a script of status codes.
type collectorStub struct {
	mu      sync.Mutex
	script  []int // status per request; 202 when exhausted
	calls   int
	bodies  []string
	headers []http.Header
}

func (c *collectorStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	b, _ := io.ReadAll(body)
	c.bodies = append(c.bodies, string(b))
	c.headers = append(c.headers, r.Header.Clone())
	code := http.StatusAccepted
	if c.calls < len(c.script) {
		code = c.script[c.calls]
	}
	c.calls++
	switch code {
	case http.StatusAccepted:
		n := strings.Count(string(b), "\n")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"accepted":%d,"rejected":[{"index":0,"error":"user_id: required for type click"}]}`, n-1)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(code)
		fmt.Fprint(w, `{"error":"slow down"}`)
	default:
		w.WriteHeader(code)
		fmt.Fprint(w, `{"error":"missing or invalid API key"}`)
	}
}

func records(n int) []Record {
	var rs []Record
	for i := range n {
		rs = append(rs, Record{Type: event.TypeClick, PartitionKey: "u", Data: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	return rs
}

func TestCollectorSink_PostsNDJSONWithKeyAndReadsPartialAcceptance(t *testing.T) {
	stub := &collectorStub{}
	srv := httptest.NewServer(stub)
	defer srv.Close()
	for _, gz := range []bool{false, true} {
		s := &CollectorSink{URL: srv.URL, APIKey: "secret", Gzip: gz}
		res, err := s.Send(context.Background(), records(3))
		if err != nil {
			t.Fatal(err)
		}
		if res.Accepted != 2 || len(res.Rejected) != 1 || res.Rejected[0].Index != 0 || res.Retries != 0 {
			t.Errorf("gzip=%v: result %+v", gz, res)
		}
	}
	if stub.bodies[0] != "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n" || stub.bodies[1] != stub.bodies[0] {
		t.Errorf("bodies %q", stub.bodies)
	}
	h := stub.headers[1]
	if h.Get("Authorization") != "Bearer secret" || h.Get("Content-Type") != "application/x-ndjson" || h.Get("Content-Encoding") != "gzip" {
		t.Errorf("headers %v", h)
	}
}

func TestCollectorSink_RetriesBackPressureAndServerErrorsButNotClientErrors(t *testing.T) {
	stub := &collectorStub{script: []int{429, 503, 500, 502}}
	srv := httptest.NewServer(stub)
	defer srv.Close()
	s := &CollectorSink{URL: srv.URL + "/v1/events"}
	res, err := s.Send(context.Background(), records(2))
	if err != nil || res.Accepted != 1 || res.Retries != 4 {
		t.Fatalf("result %+v err %v, want accepted after 4 retries", res, err)
	}
	stub.script, stub.calls = []int{401}, 0
	if _, err := s.Send(context.Background(), records(2)); !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "API key") {
		t.Errorf("401: err %v, want ErrPermanent with the collector's reason", err)
	}
	stub.script, stub.calls = []int{500, 500, 500}, 0
	s.MaxRetries = 2
	if _, err := s.Send(context.Background(), records(2)); err == nil || errors.Is(err, ErrPermanent) || stub.calls != 3 {
		t.Errorf("500s: err %v after %d calls, want a transient error after 3", err, stub.calls)
	}
}

func TestCollectorSink_StopsRetryingWhenContextEnds(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "10")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := (&CollectorSink{URL: srv.URL}).Send(ctx, records(1))
	if !errors.Is(err, context.DeadlineExceeded) || calls.Load() != 1 {
		t.Errorf("err %v after %d calls", err, calls.Load())
	}
}

func TestCollectorSink_RejectsBadURLAsPermanent(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://x/"} {
		if _, err := (&CollectorSink{URL: u}).Send(context.Background(), records(1)); !errors.Is(err, ErrPermanent) {
			t.Errorf("URL %q: err %v", u, err)
		}
	}
}

// putter is a fake producer: it acknowledges records, fails the one at
// failAt with failErr, or refuses the batch with err.
type putter struct {
	got     []producers.Record
	err     error
	failAt  int
	failErr error
	flushed bool
}

func (p *putter) PutBatchAck(ctx context.Context, rs []producers.Record, done func(error)) error {
	if p.err != nil {
		return p.err
	}
	p.got = append(p.got, rs...)
	if p.failErr == nil {
		done(nil)
		return nil
	}
	errs := make([]error, len(rs))
	errs[p.failAt] = p.failErr
	done(&producers.BatchError{Errs: errs, Failed: 1})
	return nil
}
func (p *putter) Flush(context.Context) error { p.flushed = true; return nil }

func TestProducerSink_CountsOnlyAcknowledgedRecordsAndReportsWhatFailed(t *testing.T) {
	p := &putter{}
	s := ProducerSink{P: p}
	res, err := s.Send(context.Background(), records(3))
	if err != nil || res.Accepted != 3 || len(p.got) != 3 || p.got[2].PartitionKey != "u" {
		t.Fatalf("res %+v err %v got %d", res, err, len(p.got))
	}
	if err := s.Flush(context.Background()); err != nil || !p.flushed {
		t.Errorf("flush: %v %v", err, p.flushed)
	}
	expired := fmt.Errorf("%w after 3 attempts", producers.ErrRecordExpired)
	res, err = ProducerSink{P: &putter{failAt: 1, failErr: expired}}.Send(context.Background(), records(3))
	if err != nil || res.Accepted != 2 || len(res.Failed) != 1 || res.Failed[0].Index != 1 || !strings.Contains(res.Failed[0].Error, "expired") {
		t.Errorf("one record expired: res %+v err %v", res, err)
	}
	res, err = ProducerSink{P: &putter{err: producers.ErrClosed}}.Send(context.Background(), records(3))
	if !errors.Is(err, ErrPermanent) || res.Accepted != 0 {
		t.Errorf("closed producer: res %+v err %v", res, err)
	}
	big := records(2)
	big[1].Data = make([]byte, producers.MaxRecordBytes+1)
	p = &putter{}
	res, err = ProducerSink{P: p}.Send(context.Background(), big)
	if err != nil || res.Accepted != 1 || len(res.Rejected) != 1 || res.Rejected[0].Index != 1 || len(p.got) != 1 {
		t.Errorf("too large a record: res %+v err %v", res, err)
	}
}

func TestRun_CountsFailedRecordsByReason(t *testing.T) {
	expired := fmt.Errorf("%w after 3 attempts", producers.ErrRecordExpired)
	st, err := Run(context.Background(), Config{Events: 100, BatchSize: 10, Concurrency: 1},
		ProducerSink{P: &putter{failAt: 0, failErr: expired}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent != 90 || st.Failed != 10 || len(st.Reasons()) != 1 || !strings.HasPrefix(st.Reasons()[0], "10 × producers: record TTL expired after N attempts") {
		t.Fatalf("stats %s, reasons %q", st, st.Reasons())
	}
}

// flakySink refuses every third batch as full, like a busy producer.
type flakySink struct {
	mu    sync.Mutex
	calls int
	got   int
}

func (f *flakySink) TryPutBatch(rs []producers.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls%3 == 0 {
		return producers.ErrBufferFull
	}
	f.got += len(rs)
	return nil
}

func TestRun_ThroughTheRealCollectorHandlerRetriesBackPressureAndCountsRejections(t *testing.T) {
	sink := &flakySink{}
	srv, err := collector.New(collector.Config{APIKeys: []string{"k"}}, sink, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	st, err := Run(context.Background(), Config{
		GeneratorConfig: GeneratorConfig{Seed: 1}, Events: 2000, BadRate: 0.05, BatchSize: 100,
	}, &CollectorSink{URL: hs.URL, APIKey: "k", MaxRetryAfter: 10 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Retries == 0 || st.Failed != 0 {
		t.Errorf("stats %s: want retries after 503 and no failures", st)
	}
	if st.Rejected != st.ByType[TypeMalformed] || st.Sent != 2000-st.Rejected || int64(sink.got) != st.Sent {
		t.Errorf("stats %s, collector sink got %d: want every valid event once and the malformed ones rejected", st, sink.got)
	}
	_, err = Run(context.Background(), Config{Events: 10}, &CollectorSink{URL: hs.URL, APIKey: "wrong"}, nil)
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong key: err %v, want a permanent 401 error", err)
	}
}

// slowSink acknowledges each batch after a delay, like a producer waiting
// for PutRecords behind a throttling endpoint.
type slowSink struct {
	memSink
	delay time.Duration
}

func (s *slowSink) Send(ctx context.Context, batch []Record) (Result, error) {
	time.Sleep(s.delay)
	return s.memSink.Send(ctx, batch)
}

func TestRun_KeepsTheRateWhileEachAcknowledgementTakesLongerThanTheLinger(t *testing.T) {
	sink := &slowSink{delay: 300 * time.Millisecond}
	st, err := Run(context.Background(), Config{
		GeneratorConfig: GeneratorConfig{Seed: 1},
		Rate:            1000, Duration: 1500 * time.Millisecond, Concurrency: 1,
	}, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The events generated while a batch waits for its acknowledgement
	// join the next batch instead of stalling the generator.
	if st.Generated < 1300 {
		t.Errorf("generated %d in 1.5 s at 1000/s behind a 300 ms sink, want about 1500", st.Generated)
	}
	if st.Sent != st.Generated || sink.maxSize <= 100 {
		t.Errorf("sent %d of %d, largest batch %d", st.Sent, st.Generated, sink.maxSize)
	}
}
