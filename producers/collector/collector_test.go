package collector_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/producers"
	"github.com/clickstream-go/clickstream/producers/collector"
)

const testKey = "k-test-0123456789"

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// fakeSink records what the collector hands over; err makes it refuse.
type fakeSink struct {
	mu      sync.Mutex
	batches [][]producers.Record
	err     error
	block   chan struct{} // when set, TryPutBatch waits for it to close
	entered chan struct{} // when set, signalled on entry
}

func (f *fakeSink) TryPutBatch(rs []producers.Record) error {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.batches = append(f.batches, rs)
	return nil
}

func (f *fakeSink) records() []producers.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []producers.Record
	for _, b := range f.batches {
		out = append(out, b...)
	}
	return out
}

func (f *fakeSink) setErr(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }

// clock is a settable fake time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }
func newClock() *clock                   { return &clock{now: t0} }
func baseConfig(c *clock) collector.Config {
	return collector.Config{APIKeys: []string{testKey}, Now: c.Now}
}

func newServer(t *testing.T, cfg collector.Config, sink collector.Sink) (*collector.Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := collector.New(cfg, sink, nil, reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, reg
}

type reqOpt func(*http.Request)

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

func post(t *testing.T, h http.Handler, contentType, body string, opts ...reqOpt) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	r.Header.Set("Authorization", "Bearer "+testKey)
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func decodeResponse(t *testing.T, w *httptest.ResponseRecorder) collector.Response {
	t.Helper()
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d, want 202; body %s", w.Code, w.Body)
	}
	var resp collector.Response
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatalf("decode response %q: %v", w.Body, err)
	}
	return resp
}

func errorOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
		t.Fatalf("want {\"error\":…} body, got %q (%v)", w.Body, err)
	}
	return e.Error
}

func click(user string, n int) string {
	return fmt.Sprintf(`{"type":"click","ts":"2026-11-22T10:00:00.123Z","user_id":%q,"item_id":"a-%d","placement":"home_feed","position":%d,"features":{"cat:sports":1}}`, user, n, n)
}

func access(n int) string {
	return fmt.Sprintf(`{"type":"access","ts":1763805600123,"host":"api-1","method":"GET","uri":"/api/items/%d","route":"/api/items/:id","status":200,"cache":"HIT","request_time_ms":1.5,"bytes":512}`, n)
}

func TestCollector_AcceptsJSONArrayAndReencodesEachEventCanonically(t *testing.T) {
	c := newClock()
	sink := &fakeSink{}
	s, _ := newServer(t, baseConfig(c), sink)
	body := "[" + click("u-1", 1) + "," + access(2) + "," + click("u-2", 3) + "]"
	resp := decodeResponse(t, post(t, s.Handler(), "application/json", body))
	if resp.Accepted != 3 || len(resp.Rejected) != 0 {
		t.Fatalf("got %+v, want 3 accepted, none rejected", resp)
	}
	recs := sink.records()
	if len(recs) != 3 {
		t.Fatalf("sink got %d records, want 3", len(recs))
	}
	for i, want := range []string{"u-1", "", "u-2"} {
		e, err := event.Decode(recs[i].Data)
		if err != nil {
			t.Fatalf("record %d does not decode: %v\n%s", i, err, recs[i].Data)
		}
		if e.UserID != want {
			t.Errorf("record %d: user_id %q, want %q", i, e.UserID, want)
		}
		if recs[i].PartitionKey != e.PartitionKey() {
			t.Errorf("record %d: partition key %q, want the event's %q", i, recs[i].PartitionKey, e.PartitionKey())
		}
		if e.ID == "" {
			t.Errorf("record %d: no id assigned", i)
		}
		if !e.ReceivedAt.Equal(t0) {
			t.Errorf("record %d: received_at %v, want the server clock %v", i, e.ReceivedAt, t0)
		}
		if got := e.AppendJSON(nil); !bytes.Equal(got, recs[i].Data) {
			t.Errorf("record %d is not canonical:\n got %s\nwant %s", i, recs[i].Data, got)
		}
	}
	if recs[0].PartitionKey != "u-1" {
		t.Errorf("click partition key %q, want user id u-1", recs[0].PartitionKey)
	}
}

func TestCollector_PartialAcceptanceReportsEachInvalidEventByIndexWithReason(t *testing.T) {
	sink := &fakeSink{}
	s, _ := newServer(t, baseConfig(newClock()), sink)
	events := []string{
		click("u-1", 0),
		`{"type":"click","ts":"2026-11-22T10:00:00Z","item_id":"a-1"}`, // 1: no user_id
		click("u-2", 2),
		`{"type":"impression","ts":"2026-11-22T10:00:00Z","user_id":"u-3","position":"third"}`, // 3: wrong type
		`42`, // 4: not an object
		`{"type":"click","ts":"yesterday","user_id":"u-4"}`, // 5: bad ts
		access(6),
	}
	resp := decodeResponse(t, post(t, s.Handler(), "application/json", "["+strings.Join(events, ",")+"]"))
	if resp.Accepted != 3 {
		t.Errorf("accepted %d, want 3", resp.Accepted)
	}
	want := map[int]string{1: "user_id", 3: "position", 4: "object", 5: "ts"}
	if len(resp.Rejected) != len(want) {
		t.Fatalf("rejected %+v, want indices 1, 3, 4, 5", resp.Rejected)
	}
	for _, r := range resp.Rejected {
		sub, ok := want[r.Index]
		if !ok {
			t.Errorf("index %d rejected (%s), but it is valid", r.Index, r.Error)
			continue
		}
		if !strings.Contains(r.Error, sub) {
			t.Errorf("index %d: error %q does not mention %q", r.Index, r.Error, sub)
		}
	}
	if len(sink.records()) != 3 {
		t.Errorf("sink got %d records, want the 3 valid ones", len(sink.records()))
	}
}

func TestCollector_AllInvalidIs202WithNothingAcceptedAndNoSinkCall(t *testing.T) {
	sink := &fakeSink{}
	s, _ := newServer(t, baseConfig(newClock()), sink)
	resp := decodeResponse(t, post(t, s.Handler(), "application/json", `[{"type":"click","ts":"2026-11-22T10:00:00Z"}]`))
	if resp.Accepted != 0 || len(resp.Rejected) != 1 || resp.Rejected[0].Index != 0 {
		t.Fatalf("got %+v", resp)
	}
	if len(sink.batches) != 0 {
		t.Errorf("sink called with an empty batch")
	}
}

func TestCollector_NDJSONSkipsBlankLinesAndCountsIndicesOverEvents(t *testing.T) {
	sink := &fakeSink{}
	s, _ := newServer(t, baseConfig(newClock()), sink)
	body := "\n" + click("u-1", 0) + "\r\n\n   \n" + `{"type":"click","ts":` + "\n" + click("u-2", 2) + "\n\n"
	resp := decodeResponse(t, post(t, s.Handler(), "application/x-ndjson", body))
	if resp.Accepted != 2 {
		t.Errorf("accepted %d, want 2", resp.Accepted)
	}
	// Events: 0 = u-1, 1 = truncated line, 2 = u-2 (blank lines don't count).
	if len(resp.Rejected) != 1 || resp.Rejected[0].Index != 1 {
		t.Fatalf("rejected %+v, want only index 1 (the truncated line)", resp.Rejected)
	}
	recs := sink.records()
	if len(recs) != 2 || recs[0].PartitionKey != "u-1" || recs[1].PartitionKey != "u-2" {
		t.Errorf("sink got %+v, want u-1 then u-2 in order", recs)
	}
}

func TestCollector_NDJSONWithoutTrailingNewlineAndCharsetParam(t *testing.T) {
	s, _ := newServer(t, baseConfig(newClock()), &fakeSink{})
	resp := decodeResponse(t, post(t, s.Handler(), "application/x-ndjson; charset=utf-8", click("u-1", 0)+"\n"+click("u-2", 1)))
	if resp.Accepted != 2 {
		t.Errorf("accepted %d, want 2", resp.Accepted)
	}
}

func TestCollector_SingleObjectBody(t *testing.T) {
	sink := &fakeSink{}
	s, _ := newServer(t, baseConfig(newClock()), sink)
	resp := decodeResponse(t, post(t, s.Handler(), "application/json; charset=utf-8", "  "+click("u-9", 1)+"\n"))
	if resp.Accepted != 1 || len(sink.records()) != 1 {
		t.Fatalf("got %+v, want one accepted", resp)
	}
}

func TestCollector_KeepsClientIDAndAssignsUniqueIDsWhenAbsent(t *testing.T) {
	sink := &fakeSink{}
	s, _ := newServer(t, baseConfig(newClock()), sink)
	withID := `{"id":"01JD3ZZZZZZZZZZZZZZZZZZZZZ","type":"click","ts":"2026-11-22T10:00:00Z","user_id":"u-1"}`
	decodeResponse(t, post(t, s.Handler(), "application/json", "["+withID+","+click("u-1", 1)+","+click("u-1", 2)+"]"))
	recs := sink.records()
	ids := map[string]bool{}
	for _, r := range recs {
		e, err := event.Decode(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		ids[e.ID] = true
	}
	if !ids["01JD3ZZZZZZZZZZZZZZZZZZZZZ"] {
		t.Errorf("client id not kept: %v", ids)
	}
	if len(ids) != 3 {
		t.Errorf("ids %v: want 3 distinct", ids)
	}
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCollector_GzipBody(t *testing.T) {
	sink := &fakeSink{}
	s, _ := newServer(t, baseConfig(newClock()), sink)
	body := gz(t, []byte(click("u-1", 0)+"\n"+click("u-2", 1)+"\n"))
	resp := decodeResponse(t, post(t, s.Handler(), "application/x-ndjson", string(body), withHeader("Content-Encoding", "gzip")))
	if resp.Accepted != 2 {
		t.Errorf("accepted %d, want 2", resp.Accepted)
	}
}

func TestCollector_GzipBombIs413AfterAtMostTheLimit(t *testing.T) {
	cfg := baseConfig(newClock())
	cfg.MaxBodyBytes = 16 << 10
	sink := &fakeSink{}
	s, _ := newServer(t, cfg, sink)
	bomb := gz(t, bytes.Repeat([]byte(" "), 4<<20)) // 4 MiB of spaces, about 4 KiB compressed
	if len(bomb) > int(cfg.MaxBodyBytes) {
		t.Fatalf("bomb is %d bytes compressed; the test needs it under the wire limit", len(bomb))
	}
	w := post(t, s.Handler(), "application/json", string(bomb), withHeader("Content-Encoding", "gzip"))
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413; body %s", w.Code, w.Body)
	}
	if len(sink.records()) != 0 {
		t.Errorf("sink got records from a refused request")
	}
}

func TestCollector_InvalidGzipIs400(t *testing.T) {
	s, _ := newServer(t, baseConfig(newClock()), &fakeSink{})
	w := post(t, s.Handler(), "application/json", "not gzip at all", withHeader("Content-Encoding", "gzip"))
	if w.Code != http.StatusBadRequest || !strings.Contains(errorOf(t, w), "gzip") {
		t.Fatalf("status %d body %s, want 400 mentioning gzip", w.Code, w.Body)
	}
}

func TestCollector_BodyOverLimitIs413(t *testing.T) {
	cfg := baseConfig(newClock())
	cfg.MaxBodyBytes = 1000
	s, _ := newServer(t, cfg, &fakeSink{})
	body := "[" + strings.Repeat(click("u-1", 1)+",", 10) + click("u-1", 1) + "]"
	w := post(t, s.Handler(), "application/json", body)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413; body %s", w.Code, w.Body)
	}
	errorOf(t, w)
}

func TestCollector_TooManyEventsIs413(t *testing.T) {
	cfg := baseConfig(newClock())
	cfg.MaxEvents = 3
	sink := &fakeSink{}
	s, _ := newServer(t, cfg, sink)
	for _, tc := range []struct{ ct, sep, open, close string }{
		{"application/json", ",", "[", "]"},
		{"application/x-ndjson", "\n", "", ""},
	} {
		ok := tc.open + strings.Join([]string{click("u", 1), click("u", 2), click("u", 3)}, tc.sep) + tc.close
		if w := post(t, s.Handler(), tc.ct, ok); w.Code != http.StatusAccepted {
			t.Errorf("%s: 3 events: status %d, want 202", tc.ct, w.Code)
		}
		tooMany := tc.open + strings.Join([]string{click("u", 1), click("u", 2), click("u", 3), click("u", 4)}, tc.sep) + tc.close
		w := post(t, s.Handler(), tc.ct, tooMany)
		if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(errorOf(t, w), "3 events") {
			t.Errorf("%s: 4 events: status %d body %s, want 413 naming the limit", tc.ct, w.Code, w.Body)
		}
	}
	if n := len(sink.records()); n != 6 {
		t.Errorf("sink got %d records, want 6 (nothing of the refused requests)", n)
	}
}

func TestCollector_UnparseableBodyIs400(t *testing.T) {
	s, _ := newServer(t, baseConfig(newClock()), &fakeSink{})
	for name, body := range map[string]string{
		"empty":            "",
		"whitespace":       " \n\t ",
		"text":             "hello world",
		"string":           `"click"`,
		"number":           `42`,
		"truncated array":  "[" + click("u-1", 1) + ",",
		"broken element":   `[{"type":"click",]`,
		"two objects":      click("u-1", 1) + "\n" + click("u-2", 2),
		"trailing garbage": "[" + click("u-1", 1) + "] x",
		"broken object":    `{"type":`,
	} {
		t.Run(name, func(t *testing.T) {
			w := post(t, s.Handler(), "application/json", body)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", w.Code, w.Body)
			}
			errorOf(t, w)
		})
	}
	w := post(t, s.Handler(), "application/x-ndjson", "\n\n")
	if w.Code != http.StatusBadRequest {
		t.Errorf("blank NDJSON: status %d, want 400", w.Code)
	}
}

func TestCollector_UnsupportedMediaIs415(t *testing.T) {
	s, _ := newServer(t, baseConfig(newClock()), &fakeSink{})
	for _, ct := range []string{"text/html", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json;;;"} {
		if w := post(t, s.Handler(), ct, click("u", 1)); w.Code != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Type %q: status %d, want 415", ct, w.Code)
		}
	}
	w := post(t, s.Handler(), "application/json", click("u", 1), withHeader("Content-Encoding", "br"))
	if w.Code != http.StatusUnsupportedMediaType {
		t.Errorf("Content-Encoding br: status %d, want 415", w.Code)
	}
}

func TestCollector_MissingContentTypeIsReadAsJSON(t *testing.T) {
	s, _ := newServer(t, baseConfig(newClock()), &fakeSink{})
	if w := post(t, s.Handler(), "", "["+click("u", 1)+"]"); w.Code != http.StatusAccepted {
		t.Errorf("status %d, want 202; body %s", w.Code, w.Body)
	}
}

func TestCollector_RequiresAValidBearerKey(t *testing.T) {
	sink := &fakeSink{}
	cfg := baseConfig(newClock())
	cfg.APIKeys = []string{testKey, "second-key"}
	s, _ := newServer(t, cfg, sink)
	for name, auth := range map[string]string{
		"none":           "",
		"wrong":          "Bearer nope",
		"prefix of key":  "Bearer " + testKey[:5],
		"key plus more":  "Bearer " + testKey + "x",
		"basic scheme":   "Basic " + testKey,
		"bearer no key":  "Bearer ",
		"key not bearer": testKey,
	} {
		t.Run(name, func(t *testing.T) {
			w := post(t, s.Handler(), "application/json", click("u", 1), withHeader("Authorization", auth))
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", w.Code)
			}
			if w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
	for _, auth := range []string{"Bearer " + testKey, "bearer second-key", "Bearer  " + testKey + " "} {
		if w := post(t, s.Handler(), "application/json", click("u", 1), withHeader("Authorization", auth)); w.Code != http.StatusAccepted {
			t.Errorf("Authorization %q: status %d, want 202", auth, w.Code)
		}
	}
	if len(sink.records()) != 3 {
		t.Errorf("sink got %d records, want 3", len(sink.records()))
	}
}

func TestCollector_InsecureNoAuthAcceptsRequestsWithoutKey(t *testing.T) {
	s, _ := newServer(t, collector.Config{InsecureNoAuth: true}, &fakeSink{})
	if w := post(t, s.Handler(), "application/json", click("u", 1), withHeader("Authorization", "")); w.Code != http.StatusAccepted {
		t.Fatalf("status %d, want 202", w.Code)
	}
}

func TestNew_RejectsConfigWithoutKeysOrWithImpossibleBurst(t *testing.T) {
	if _, err := collector.New(collector.Config{}, &fakeSink{}, nil, nil); err == nil || !strings.Contains(err.Error(), "API keys") {
		t.Errorf("no keys: err %v, want one about API keys", err)
	}
	if _, err := collector.New(collector.Config{APIKeys: []string{"k"}, MaxEvents: 100, Burst: 10}, &fakeSink{}, nil, nil); err == nil {
		t.Errorf("burst below max events: no error")
	}
	if _, err := collector.New(collector.Config{APIKeys: []string{""}}, &fakeSink{}, nil, nil); err == nil {
		t.Errorf("empty key: no error")
	}
	if _, err := collector.New(collector.Config{APIKeys: []string{"k"}}, nil, nil, nil); err == nil {
		t.Errorf("nil sink: no error")
	}
	// A nil registerer means a private registry: two servers side by side are fine.
	for range 2 {
		if _, err := collector.New(collector.Config{APIKeys: []string{"k"}}, &fakeSink{}, nil, nil); err != nil {
			t.Fatalf("New with nil registerer: %v", err)
		}
	}
}

func TestCollector_OtherMethodsAre405(t *testing.T) {
	s, _ := newServer(t, baseConfig(newClock()), &fakeSink{})
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		r := httptest.NewRequest(m, "/v1/events", nil)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != http.StatusMethodNotAllowed || !strings.Contains(w.Header().Get("Allow"), "POST") {
			t.Errorf("%s: status %d Allow %q, want 405 with Allow: POST", m, w.Code, w.Header().Get("Allow"))
		}
	}
}

func TestCollector_RateLimitPerKeyIs429WithRetryAfterUntilTokensRefill(t *testing.T) {
	c := newClock()
	cfg := baseConfig(c)
	cfg.APIKeys = []string{testKey, "other-key"}
	cfg.RatePerKey, cfg.Burst, cfg.MaxEvents = 2, 4, 4
	sink := &fakeSink{}
	s, _ := newServer(t, cfg, sink)
	four := "[" + strings.Join([]string{click("u", 1), click("u", 2), click("u", 3), click("u", 4)}, ",") + "]"
	if w := post(t, s.Handler(), "application/json", four); w.Code != http.StatusAccepted {
		t.Fatalf("burst: status %d, want 202", w.Code)
	}
	w := post(t, s.Handler(), "application/json", "["+click("u", 5)+"]")
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("over the limit: status %d, want 429", w.Code)
	}
	if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q, want whole seconds ≥ 1", w.Header().Get("Retry-After"))
	}
	// Another key has its own bucket.
	if w := post(t, s.Handler(), "application/json", four, withHeader("Authorization", "Bearer other-key")); w.Code != http.StatusAccepted {
		t.Errorf("other key: status %d, want 202", w.Code)
	}
	// Two events need one second at 2/s; the request is counted in events, not requests.
	c.Advance(time.Second)
	two := "[" + click("u", 6) + "," + click("u", 7) + "]"
	if w := post(t, s.Handler(), "application/json", two); w.Code != http.StatusAccepted {
		t.Errorf("after 1s: status %d, want 202", w.Code)
	}
	w = post(t, s.Handler(), "application/json", four)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("4 events with no tokens: status %d, want 429", w.Code)
	}
	if ra, _ := strconv.Atoi(w.Header().Get("Retry-After")); ra != 2 {
		t.Errorf("Retry-After %q, want 2 (4 events at 2/s)", w.Header().Get("Retry-After"))
	}
	if n := len(sink.records()); n != 10 {
		t.Errorf("sink got %d records, want 10 (nothing of the refused requests)", n)
	}
}

func TestCollector_BufferFullIs503WithRetryAfterAndAcceptsNothing(t *testing.T) {
	c := newClock()
	cfg := baseConfig(c)
	cfg.RatePerKey, cfg.Burst, cfg.MaxEvents = 1, 2, 2 // tight, to see tokens given back
	cfg.RetryAfter = 1500 * time.Millisecond
	sink := &fakeSink{err: fmt.Errorf("put: %w", producers.ErrBufferFull)}
	s, _ := newServer(t, cfg, sink)
	two := "[" + click("u", 1) + "," + click("u", 2) + "]"
	w := post(t, s.Handler(), "application/json", two)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", w.Code)
	}
	if got := w.Header().Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After %q, want 2 (1.5s rounded up)", got)
	}
	errorOf(t, w)
	// The refused request did not spend the key's tokens: the retry passes
	// at once when the buffer has room again.
	sink.setErr(nil)
	if w := post(t, s.Handler(), "application/json", two); w.Code != http.StatusAccepted {
		t.Fatalf("retry: status %d, want 202", w.Code)
	}
	if n := len(sink.records()); n != 2 {
		t.Errorf("sink holds %d records, want 2 (exactly the retry)", n)
	}
}

func TestCollector_ClosedProducerIs503AndOtherSinkErrorsAre500(t *testing.T) {
	sink := &fakeSink{err: producers.ErrClosed}
	s, _ := newServer(t, baseConfig(newClock()), sink)
	if w := post(t, s.Handler(), "application/json", click("u", 1)); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("closed: status %d, want 503 with Retry-After", w.Code)
	}
	sink.setErr(errors.New("boom"))
	w := post(t, s.Handler(), "application/json", click("u", 1))
	if w.Code != http.StatusInternalServerError {
		t.Errorf("other error: status %d, want 500", w.Code)
	}
	if strings.Contains(w.Body.String(), "boom") {
		t.Errorf("500 leaks the internal error: %s", w.Body)
	}
}

func TestCollector_TooManyRequestsInFlightIs503(t *testing.T) {
	cfg := baseConfig(newClock())
	cfg.MaxInFlight = 1
	sink := &fakeSink{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	s, _ := newServer(t, cfg, sink)
	done := make(chan int)
	go func() { done <- post(t, s.Handler(), "application/json", click("u", 1)).Code }()
	<-sink.entered
	w := post(t, s.Handler(), "application/json", click("u", 2))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("second request: status %d, want 503 with Retry-After", w.Code)
	}
	close(sink.block)
	if code := <-done; code != http.StatusAccepted {
		t.Errorf("first request: status %d, want 202", code)
	}
	sink.entered = nil
	if w := post(t, s.Handler(), "application/json", click("u", 3)); w.Code != http.StatusAccepted {
		t.Errorf("after the first finished: status %d, want 202", w.Code)
	}
}

func TestCollector_EventTooLargeIsRejectedAlone(t *testing.T) {
	cfg := baseConfig(newClock())
	cfg.MaxBodyBytes = 4 << 20
	sink := &fakeSink{}
	s, _ := newServer(t, cfg, sink)
	big := fmt.Sprintf(`{"type":"click","ts":"2026-11-22T10:00:00Z","user_id":"u-1","attrs":{"blob":%q}}`, strings.Repeat("x", 1<<20))
	resp := decodeResponse(t, post(t, s.Handler(), "application/x-ndjson", click("u-1", 1)+"\n"+big+"\n"))
	if resp.Accepted != 1 || len(resp.Rejected) != 1 || resp.Rejected[0].Index != 1 || !strings.Contains(resp.Rejected[0].Error, "too large") {
		t.Fatalf("got %+v, want event 1 rejected as too large", resp)
	}
}

func TestCollector_CORS(t *testing.T) {
	const app = "https://app.example.com"
	preflight := func(h http.Handler, origin string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodOptions, "/v1/events", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		r.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	t.Run("default allows no origin", func(t *testing.T) {
		s, _ := newServer(t, baseConfig(newClock()), &fakeSink{})
		if w := preflight(s.Handler(), app); w.Code != http.StatusForbidden || w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight: status %d ACAO %q, want 403 without CORS headers", w.Code, w.Header().Get("Access-Control-Allow-Origin"))
		}
		w := post(t, s.Handler(), "application/json", click("u", 1), withHeader("Origin", app))
		if w.Code != http.StatusAccepted || w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("POST: status %d ACAO %q, want 202 without CORS headers", w.Code, w.Header().Get("Access-Control-Allow-Origin"))
		}
	})
	t.Run("listed origin", func(t *testing.T) {
		cfg := baseConfig(newClock())
		cfg.AllowedOrigins = []string{app}
		s, _ := newServer(t, cfg, &fakeSink{})
		w := preflight(s.Handler(), app)
		h := w.Header()
		if w.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != app {
			t.Fatalf("preflight: status %d ACAO %q", w.Code, h.Get("Access-Control-Allow-Origin"))
		}
		for _, want := range []string{"Authorization", "Content-Type", "Content-Encoding"} {
			if !strings.Contains(h.Get("Access-Control-Allow-Headers"), want) {
				t.Errorf("Allow-Headers %q lacks %s", h.Get("Access-Control-Allow-Headers"), want)
			}
		}
		if h.Get("Access-Control-Allow-Methods") != "POST" || h.Get("Access-Control-Max-Age") != "600" || h.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight headers %v", h)
		}
		if w := preflight(s.Handler(), "https://evil.example.com"); w.Code != http.StatusForbidden {
			t.Errorf("other origin preflight: status %d, want 403", w.Code)
		}
		w = post(t, s.Handler(), "application/json", click("u", 1), withHeader("Origin", app))
		if w.Header().Get("Access-Control-Allow-Origin") != app || !strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), "Retry-After") {
			t.Errorf("POST headers %v", w.Header())
		}
		if !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Origin") {
			t.Errorf("no Vary: Origin")
		}
		// Errors carry CORS headers too, so browser code can read them.
		w = post(t, s.Handler(), "application/json", click("u", 1), withHeader("Origin", app), withHeader("Authorization", ""))
		if w.Code != http.StatusUnauthorized || w.Header().Get("Access-Control-Allow-Origin") != app {
			t.Errorf("401: status %d ACAO %q", w.Code, w.Header().Get("Access-Control-Allow-Origin"))
		}
	})
	t.Run("any origin", func(t *testing.T) {
		cfg := baseConfig(newClock())
		cfg.AllowedOrigins = []string{"*"}
		s, _ := newServer(t, cfg, &fakeSink{})
		if w := preflight(s.Handler(), "https://anything.example"); w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("preflight: status %d ACAO %q, want 204 *", w.Code, w.Header().Get("Access-Control-Allow-Origin"))
		}
	})
}

func TestCollector_HealthzAndMetrics(t *testing.T) {
	sink := &fakeSink{}
	s, _ := newServer(t, baseConfig(newClock()), sink)
	post(t, s.Handler(), "application/json", "["+click("u", 1)+`,{"type":"click"}]`)
	post(t, s.Handler(), "application/json", click("u", 1), withHeader("Authorization", ""))

	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	if w := get("/healthz"); w.Code != http.StatusOK {
		t.Errorf("/healthz: status %d", w.Code)
	}
	w := get("/metrics")
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics: status %d", w.Code)
	}
	for _, want := range []string{
		`clickstream_collector_requests_total{code="202"} 1`,
		`clickstream_collector_requests_total{code="401"} 1`,
		`clickstream_collector_events_total{result="accepted"} 1`,
		`clickstream_collector_events_total{result="rejected"} 1`,
		`clickstream_collector_request_body_bytes_count 1`,
		`clickstream_collector_request_duration_seconds_count 2`,
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestServer_ServeStopsGracefullyWhenContextIsDone(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sink := &fakeSink{}
	s, _ := newServer(t, baseConfig(newClock()), sink)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	client := &http.Client{Transport: &http.Transport{}}
	req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/v1/events", strings.NewReader(click("u", 1)))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	client.CloseIdleConnections()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestServer_RunFailsClearlyWhenAddressIsTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := baseConfig(newClock())
	cfg.Addr = ln.Addr().String()
	s, _ := newServer(t, cfg, &fakeSink{})
	err = s.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("Run: %v, want a listen error naming the address", err)
	}
}

func TestCollector_EventFromAClockFarAheadIsRejectedByIndex(t *testing.T) {
	s, _ := newServer(t, baseConfig(newClock()), &fakeSink{})
	ahead := t0.Add(23 * time.Hour).Format(time.RFC3339)
	body := `{"type":"click","ts":"2099-12-04T19:00:00Z","user_id":"u-1"}` + "\n" +
		`{"type":"click","ts":"` + ahead + `","user_id":"u-2"}` + "\n" + click("u-3", 1) + "\n"
	resp := decodeResponse(t, post(t, s.Handler(), "application/x-ndjson", body))
	if resp.Accepted != 2 || len(resp.Rejected) != 1 || resp.Rejected[0].Index != 0 ||
		!strings.Contains(resp.Rejected[0].Error, "ts: 2099-12-04T19:00:00Z is") || !strings.Contains(resp.Rejected[0].Error, "more than the 24h0m0s allowed") {
		t.Fatalf("got %+v, want event 0 rejected for its clock and the others accepted", resp)
	}
	cfg := baseConfig(newClock())
	cfg.MaxFuture = -1
	s, _ = newServer(t, cfg, &fakeSink{})
	if resp := decodeResponse(t, post(t, s.Handler(), "application/x-ndjson", body)); resp.Accepted != 3 {
		t.Fatalf("MaxFuture -1: %+v, want all accepted", resp)
	}
}

// A beacon (navigator.sendBeacon) sends text/plain without headers: the key
// comes in the query string, the body is NDJSON or a JSON array.
func TestCollector_AcceptsWhatABeaconCanSend(t *testing.T) {
	sink := &fakeSink{}
	s, _ := newServer(t, baseConfig(newClock()), sink)
	for _, body := range []string{click("u-1", 1) + "\n" + click("u-2", 2) + "\n", "[" + click("u-1", 1) + "," + click("u-2", 2) + "]"} {
		r := httptest.NewRequest(http.MethodPost, "/v1/events?key="+testKey, strings.NewReader(body))
		r.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if resp := decodeResponse(t, w); resp.Accepted != 2 {
			t.Fatalf("beacon body %q: %d %+v", body, w.Code, resp)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/v1/events?key=wrong-key-0123456789", strings.NewReader(click("u-1", 1)))
	r.Header.Set("Content-Type", "text/plain")
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "?key=KEY") {
		t.Fatalf("wrong key in the query: %d %s", w.Code, w.Body)
	}
}

func TestCollector_ServesTheWebSDK(t *testing.T) {
	s, _ := newServer(t, baseConfig(newClock()), &fakeSink{})
	for path, want := range map[string]string{"/v1/sdk.js": "observeImpressions", "/v1/sdk.d.ts": "declare namespace clickstream", "/v1/sdk/example.html": "clickstream.init"} {
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != 200 || !strings.Contains(w.Body.String(), want) || w.Header().Get("Cache-Control") == "" {
			t.Errorf("GET %s: %d %q", path, w.Code, w.Header())
		}
	}
}
