package dashboard_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/consumers/metrics/dashboard"
	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/apikey"
	"github.com/clickstream-go/clickstream/internal/testenv"
)

func TestHandler_ServesEmbeddedFiles(t *testing.T) {
	h := dashboard.Handler()
	for path, want := range map[string]string{
		"/":          "<title>Clickstream",
		"/app.js":    "function draw(",
		"/style.css": ".legend",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, rec.Code, want)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", rec.Code)
	}
}

// feed aggregates events on one shard of st and publishes everything.
func feed(t *testing.T, p *metrics.Processor, shard string, evs []event.Event) {
	t.Helper()
	ctx := context.Background()
	sp, err := p.OpenShard(ctx, consumers.Shard{ID: shard})
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]consumers.Record, len(evs))
	for i, e := range evs {
		recs[i] = consumers.Record{Position: consumers.Position{SequenceNumber: fmt.Sprint(1000 + i)}, ShardID: shard, Event: e, ArrivalTime: e.TS}
	}
	if _, err := sp.Process(ctx, consumers.Batch{ShardID: shard, Records: recs, Now: time.Now(), MillisBehindLatest: int64(rand.IntN(3000)), ShardEnd: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func traffic(start time.Time, minutes int, routes []string) []event.Event {
	rng := rand.New(rand.NewPCG(1, 2))
	var evs []event.Event
	for m := 0; m < minutes; m++ {
		w := start.Add(time.Duration(m) * time.Minute)
		for i := 0; i < 60; i++ {
			ts := w.Add(time.Duration(i) * time.Second)
			ms := 5 + rng.ExpFloat64()*20
			cache := "HIT"
			if rng.Float64() > 0.7+0.2*float64(m%5)/5 {
				cache = "MISS"
			}
			evs = append(evs, event.Event{V: 1, Type: event.TypeAccess, TS: ts, Route: routes[i%len(routes)], Status: 200, Cache: cache, RequestTimeMS: &ms})
			typ := event.TypeImpression
			if i%9 == 0 {
				typ = event.TypeClick
			}
			evs = append(evs, event.Event{V: 1, Type: typ, TS: ts, UserID: fmt.Sprintf("u%d", i%17), Placement: []string{"home_feed", "search"}[i%2]})
		}
	}
	return evs
}

// TestDashboard_RendersChartsWithDataInHeadlessChromium loads the page in a
// real browser against the real read API on an in-memory store: every chart
// draws lines from data, a refresh picks up a new route, nothing is logged
// to the console, and a screenshot is kept.
func TestDashboard_RendersChartsWithDataInHeadlessChromium(t *testing.T) {
	store := metrics.NewMemoryStore()
	p, err := metrics.NewProcessor(store, metrics.Config{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Truncate(time.Minute).Add(-30 * time.Minute)
	feed(t, p, "shardId-000000000000", traffic(start, 25, []string{"/api/items/:id", "/api/feed"}))
	feed(t, p, "shardId-000000000001", traffic(start, 25, []string{"/api/users/:id"}))

	// The read API wants a key, as `clickstream api` does; the page gets it
	// once from its #key= fragment.
	const key = "dashboard-test-key-0123456789"
	mux := http.NewServeMux()
	mux.Handle("/v1/", apikey.Require(apikey.New([]string{key}), metrics.NewHandler(metrics.NewReader(store, metrics.ReaderConfig{}), metrics.APIConfig{})))
	mux.Handle("/", dashboard.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := testenv.Browser(t, chromedp.WindowSize(1280, 1100))

	var mu sync.Mutex
	var problems []string
	err = chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *cdpruntime.EventConsoleAPICalled:
			if ev.Type == cdpruntime.ConsoleAPICalledTypeError || ev.Type == cdpruntime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				problems = append(problems, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
			}
		case *cdpruntime.EventExceptionThrown:
			problems = append(problems, fmt.Sprintf("exception: %s %s:%d", ev.ExceptionDetails.Text, ev.ExceptionDetails.URL, ev.ExceptionDetails.LineNumber))
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
				problems = append(problems, fmt.Sprintf("log %s: %s %s", ev.Entry.Level, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("start browser: %v", err)
	}

	type chart struct {
		Chart    string `json:"chart"`
		Series   int    `json:"series,string"`
		Points   int    `json:"points,string"`
		Paths    int    `json:"paths"`
		Legend   string `json:"legend"`
		Rendered string `json:"rendered"`
	}
	const collect = `[...document.querySelectorAll('figure[data-chart]')].map(f => ({
		chart: f.dataset.chart, series: f.dataset.series || "0", points: f.dataset.points || "0",
		paths: f.querySelectorAll('path.line').length, legend: f.querySelector('.legend').textContent,
		rendered: f.dataset.rendered || ""}))`
	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/?refresh=1&minutes=60#key="+key),
		chromedp.WaitVisible(`#charts`),
	)
	if err != nil {
		t.Fatalf("load page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll('figure[data-rendered="true"]').length === 5`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("charts did not render: %v", err)
	}
	charts, err := chromedp.Run(ctx, chromedp.Evaluate[[]chart](collect))
	if err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(ctx, chromedp.Text(`#status`))
	if err != nil {
		t.Fatal(err)
	}
	screenshot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"requests": 3, "hit_rate": 3, "ctr": 2, "latency_p95": 3, "consumer_lag": 2}
	for _, c := range charts {
		if c.Series != want[c.Chart] || c.Paths != c.Series || c.Points < c.Series {
			t.Errorf("chart %s: %d series, %d lines, %d points; want %d series with points", c.Chart, c.Series, c.Paths, c.Points, want[c.Chart])
		}
		if c.Chart == "requests" && c.Points != 75 {
			t.Errorf("requests chart: %d points, want 75 (3 routes × 25 minutes)", c.Points)
		}
	}
	if len(charts) != 5 {
		t.Fatalf("charts = %+v", charts)
	}
	t.Logf("charts: %+v", charts)
	if !strings.Contains(status, "updated") {
		t.Errorf("status = %q", status)
	}

	// Live refresh: a new route appears without reloading the page.
	feed(t, p, "shardId-000000000002", traffic(start.Add(20*time.Minute), 5, []string{"/api/new"}))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('figure[data-chart="requests"] .legend').textContent.includes('/api/new')`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Errorf("the new route did not appear after a refresh: %v", err)
	}
	legend, _ := chromedp.Run(ctx, chromedp.Text(`figure[data-chart="requests"] .legend`))

	dir := os.Getenv("CLICKSTREAM_ARTIFACTS")
	if dir == "" {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(path, screenshot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes); requests legend: %s", path, len(screenshot), legend)

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("browser reported: %s", p)
	}
}
