package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

// twoShards aggregates evs split over two shards into st, fully flushed.
func twoShards(t *testing.T, st Store, evs []event.Event) {
	t.Helper()
	p := newTestProcessor(t, st, Config{})
	for s, id := range []string{"shardId-000000000000", "shardId-000000000001"} {
		var mine []event.Event
		for i, e := range evs {
			if i%2 == s {
				mine = append(mine, e)
			}
		}
		sp, err := p.OpenShard(context.Background(), consumers.Shard{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		recs := records(1, mine...)
		for i := range recs {
			recs[i].ShardID = id
		}
		if _, err := sp.Process(context.Background(), consumers.Batch{ShardID: id, Records: recs, Now: t0.Add(time.Hour), ShardEnd: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := sp.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func apiFixture(t *testing.T) (http.Handler, []event.Event) {
	evs := []event.Event{
		access(t0.Add(1*time.Second), "/api/items/:id", "HIT", 200, 10),
		access(t0.Add(2*time.Second), "/api/items/:id", "HIT", 200, 12),
		access(t0.Add(3*time.Second), "/api/items/:id", "MISS", 200, 80),
		access(t0.Add(4*time.Second), "/api/items/:id", "EXPIRED", 500, 95),
		access(t0.Add(5*time.Second), "/api/feed", "HIT", 200, 5),
		access(t0.Add(6*time.Second), "/api/feed", "-", 404, 1),
		access(t0.Add(61*time.Second), "/api/items/:id", "HIT", 304, 11),
		impression(t0.Add(7*time.Second), "u1", "home_feed"),
		impression(t0.Add(8*time.Second), "u2", "home_feed"),
		impression(t0.Add(9*time.Second), "u2", "home_feed"),
		impression(t0.Add(9*time.Second), "u3", "home_feed"),
		click(t0.Add(10*time.Second), "u2", "home_feed"),
		impression(t0.Add(11*time.Second), "u1", "search"),
	}
	st := NewMemoryStore()
	twoShards(t, st, evs)
	r := NewReader(st, ReaderConfig{Clock: func() time.Time { return t0.Add(10 * time.Minute) }})
	return NewHandler(r, APIConfig{}), evs
}

func get(t *testing.T, h http.Handler, url string) (int, map[string]any, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("GET %s: body %q is not JSON: %v", url, rec.Body.String(), err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	return rec.Code, body, rec.Body.String()
}

func TestAPI_ReturnsMergedWindowsInTheDesignedShape(t *testing.T) {
	h, evs := apiFixture(t)
	code, _, raw := get(t, h, "/v1/metrics/access?from=2026-11-22T10:00:00Z&to=2026-11-22T10:02:00Z&route=/api/items/:id")
	if code != 200 {
		t.Fatalf("status %d: %s", code, raw)
	}
	var res Result
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		t.Fatal(err)
	}
	if res.Metric != "access" || len(res.Rows) != 2 {
		t.Fatalf("result = %s", raw)
	}
	r0 := res.Rows[0]
	if !r0.WindowStart.Equal(t0) || r0.Dims["route"] != "/api/items/:id" || len(r0.Dims) != 1 {
		t.Errorf("row 0 = %+v", r0)
	}
	want := map[string]float64{"requests": 4, "cache_hit": 2, "cache_miss": 1, "cache_expired": 1, "cache_other": 0,
		"hit_rate": 0.5, "miss_rate": 0.25, "expired_rate": 0.25, "status_2xx": 3, "status_5xx": 1, "status_3xx": 0, "status_4xx": 0}
	for k, v := range want {
		if r0.Values[k] != v {
			t.Errorf("%s = %v, want %v", k, r0.Values[k], v)
		}
	}
	if p := r0.Values["latency_p50_ms"]; p < 12*0.99 || p > 12*1.01 {
		t.Errorf("p50 = %v, want 12 ±1%%", p)
	}
	// Exact shape: {"metric","rows":[{"window_start","dims","values"}]}.
	var shape struct {
		Rows []map[string]json.RawMessage `json:"rows"`
	}
	_ = json.Unmarshal([]byte(raw), &shape)
	for k := range shape.Rows[0] {
		if k != "window_start" && k != "dims" && k != "values" {
			t.Errorf("unexpected row key %q", k)
		}
	}
	if !strings.Contains(raw, `"window_start":"2026-11-22T10:00:00Z"`) {
		t.Errorf("window_start not RFC 3339 UTC: %s", raw)
	}

	// Without a dimension filter: every group, ordered by window then group.
	_, _, raw = get(t, h, "/v1/metrics/access?from=2026-11-22T10:00:00Z&to=2026-11-22T10:05:00Z")
	res = Result{}
	_ = json.Unmarshal([]byte(raw), &res)
	var got []string
	for _, r := range res.Rows {
		got = append(got, r.WindowStart.Format("15:04")+" "+r.Dims["route"])
	}
	if strings.Join(got, ",") != "10:00 /api/feed,10:00 /api/items/:id,10:01 /api/items/:id" {
		t.Errorf("rows = %v", got)
	}

	_, _, raw = get(t, h, "/v1/metrics/engagement?from=2026-11-22T10:00:00Z&to=2026-11-22T10:01:00Z")
	res = Result{}
	_ = json.Unmarshal([]byte(raw), &res)
	checkAgainstOracle(t, onlyWindow(oracle(evs), "engagement", t0), &res)
}

// onlyWindow keeps the oracle rows of one metric and window.
func onlyWindow(o map[string]*oracleRow, metric string, win time.Time) map[string]*oracleRow {
	out := map[string]*oracleRow{}
	for k, v := range o {
		if strings.HasPrefix(k, metric+"|") && strings.HasSuffix(k, "|"+win.Format(windowFormat)) {
			out[k] = v
		}
	}
	return out
}

func TestAPI_RangeBoundsAreOnWindowStarts(t *testing.T) {
	h, _ := apiFixture(t)
	for _, tc := range []struct {
		q    string
		want int
	}{
		{"from=2026-11-22T10:00:00Z&to=2026-11-22T10:01:00Z", 1},        // to exclusive
		{"from=2026-11-22T10:01:00Z&to=2026-11-22T10:02:00Z", 1},        // from inclusive
		{"from=2026-11-22T10:00:30Z&to=2026-11-22T10:02:00Z", 1},        // from inside a minute rounds up
		{"from=2026-11-22T10:00:00Z&to=2026-11-22T10:01:30Z", 2},        // to inside a minute rounds up
		{"from=2026-11-22T11:00:00%2B01:00&to=2026-11-22T10:01:00Z", 1}, // offsets
		{"from=2026-11-22T10:01:00Z&to=2026-11-22T10:01:00Z", 0},
	} {
		_, body, raw := get(t, h, "/v1/metrics/access?route=/api/items/:id&"+tc.q)
		if rows, _ := body["rows"].([]any); len(rows) != tc.want {
			t.Errorf("%s: %d rows, want %d: %s", tc.q, len(rows), tc.want, raw)
		}
	}
}

func TestAPI_ErrorsAreClear(t *testing.T) {
	h, _ := apiFixture(t)
	for _, tc := range []struct {
		url, want string
		code      int
	}{
		{"/v1/metrics/nope", "unknown metric", 404},
		{"/v1/metrics/access?from=yesterday", "from: \"yesterday\" is not an RFC 3339 time", 400},
		{"/v1/metrics/access?colour=red", `"colour" is not a dimension of metric access`, 400},
		{"/v1/metrics/access?from=2026-11-22T10:00:00Z&to=2026-11-21T10:00:00Z", "to (2026-11-21T10:00:00Z) is before from", 400},
		{"/v1/metrics/access?from=2026-11-01T10:00:00Z&to=2026-11-22T10:00:00Z", "exceeds the maximum", 400},
		{"/v1/metrics/access?route=a&route=b", "given 2 times", 400},
	} {
		code, body, raw := get(t, h, tc.url)
		if code != tc.code || !strings.Contains(body["error"].(string), tc.want) {
			t.Errorf("%s: %d %s; want %d with %q", tc.url, code, raw, tc.code, tc.want)
		}
	}
}

func TestAPI_CatalogListsMetricsDroppedCountsAndShards(t *testing.T) {
	h, _ := apiFixture(t)
	code, _, raw := get(t, h, "/v1/metrics")
	if code != 200 {
		t.Fatal(raw)
	}
	var c Catalog
	_ = json.Unmarshal([]byte(raw), &c)
	if len(c.Metrics) != 3 || c.Metrics[0].Name != "access" || c.Metrics[2].Name != LagMetric || len(c.Shards) != 2 {
		t.Errorf("catalog = %s", raw)
	}
	if !c.Shards[0].Finished || c.Shards[0].Watermark.IsZero() {
		t.Errorf("shard = %+v", c.Shards[0])
	}
}

func TestReader_HidesOpenPartialsUntilPublishedOrStale(t *testing.T) {
	st := NewMemoryStore()
	p := newTestProcessor(t, st, Config{})
	sp := open(t, p, consumers.Position{})
	process(t, sp, t0, records(1, access(t0.Add(time.Second), "/a", "HIT", 200, 1))...)
	if _, err := sp.Flush(context.Background()); err != nil { // Lambda-style: written open
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		now  time.Time
		open bool
		rows int
	}{
		{"open partial hidden", t0.Add(90 * time.Second), false, 0},
		{"open partial with open=true", t0.Add(90 * time.Second), true, 1},
		{"stale open partial included", t0.Add(3*time.Minute + time.Second), false, 1},
	} {
		r := NewReader(st, ReaderConfig{Clock: func() time.Time { return tc.now }})
		res, err := r.Query(context.Background(), Query{Metric: "access", From: t0, To: t0.Add(time.Minute), IncludeOpen: tc.open})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rows) != tc.rows {
			t.Errorf("%s: %d rows, want %d", tc.name, len(res.Rows), tc.rows)
		}
		if tc.open && len(res.Rows) == 1 && !res.Rows[0].Open {
			t.Errorf("%s: row not marked open", tc.name)
		}
	}
}

func TestWriteTable_PrintsAlignedColumns(t *testing.T) {
	st := NewMemoryStore()
	twoShards(t, st, []event.Event{
		access(t0, "/api/items/:id", "HIT", 200, 10), access(t0, "/api/items/:id", "MISS", 200, 10),
		access(t0, "/api/feed", "-", 200, 10),
	})
	r := NewReader(st, ReaderConfig{Clock: func() time.Time { return t0.Add(time.Hour) }})
	var buf bytes.Buffer
	err := RunQuery(context.Background(), &buf, r, Query{Metric: "access", From: t0, To: t0.Add(time.Minute)}, TableOptions{Values: []string{"requests", "hit_rate", "latency_p95_ms"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "       window_start           route  requests  hit_rate  latency_p95_ms\n" +
		"  2026-11-22T10:00Z       /api/feed         1         -           10.07\n" +
		"  2026-11-22T10:00Z  /api/items/:id         2     0.500           10.07\n"
	if buf.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", buf.String(), want)
	}
	err = RunQuery(context.Background(), &buf, r, Query{Metric: "access", From: t0, To: t0.Add(time.Minute)}, TableOptions{Values: []string{"hits"}})
	if err == nil || !strings.Contains(err.Error(), `no value "hits"`) {
		t.Errorf("unknown value: err = %v", err)
	}
}

func TestParseTime_AcceptsRFC3339NowAndRelative(t *testing.T) {
	now := t0
	for in, want := range map[string]time.Time{
		"now": t0, "-15m": t0.Add(-15 * time.Minute), "2026-11-22T09:00:00Z": t0.Add(-time.Hour), "1h": t0.Add(time.Hour),
	} {
		got, err := ParseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseTime("yesterday", now); err == nil {
		t.Error("no error for junk")
	}
}
