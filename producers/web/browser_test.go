package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/producers"
	"github.com/clickstream-go/clickstream/producers/collector"
)

// page is served from its own origin (cross-origin to the collector, so
// the CORS preflight of fetch is exercised): a spacer, then group A (six
// items), a spacer, group B (six items), a spacer.
const page = `<!doctype html><html><head><meta charset="utf-8"><title>sdk test</title>
<style>.item{height:120px;margin:4px;border:1px solid #999} .spacer{height:3000px}</style></head><body>
<div class="spacer" id="top"></div>
<div id="a">%s</div>
<div class="spacer" id="mid"></div>
<div id="b">%s</div>
<div class="spacer" id="end"></div>
<script src="%s/v1/sdk.js"></script>
<script>
  window.__ids = []; window.__rejected = [];
  clickstream.init({url: %q, key: %q, app: "sdk-test", userId: "u-web", flushInterval: 300, batchSize: 20,
    onReject: (rs) => rs.forEach((r) => window.__rejected.push(r))});
  const track = clickstream.track;
  clickstream.track = (t, f) => { const id = track(t, f); window.__ids.push(id); return id; };
  const click = clickstream.click;
  clickstream.click = (i, o) => { const id = click(i, o); window.__ids.push(id); return id; };
  clickstream.observeImpressions(document.getElementById("a"), {placement: "grid_a"});
  clickstream.observeImpressions(document.getElementById("b"), {placement: "grid_b"});
  document.querySelectorAll(".item").forEach((el) => el.addEventListener("click", () =>
    clickstream.click(el.dataset.itemId, {placement: el.parentElement.id === "a" ? "grid_a" : "grid_b", position: Number(el.dataset.position)})));
</script></body></html>`

func items(prefix string) string {
	var b strings.Builder
	for i := range 6 {
		fmt.Fprintf(&b, `<div class="item" data-item-id="%s-%d" data-position="%d">%s %d</div>`, prefix, i, i, prefix, i)
	}
	return b.String()
}

// faults answers 503 to the next fail requests that carry an Authorization
// header (fetch), without reaching the collector.
type faults struct {
	next    http.Handler
	fail    atomic.Int64
	seen    atomic.Int64
	gzipped atomic.Int64
}

func (f *faults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Encoding") == "gzip" {
		f.gzipped.Add(1)
	}
	if r.Method == http.MethodPost && r.Header.Get("Authorization") != "" && f.fail.Add(-1) >= 0 {
		f.seen.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":"injected"}`, http.StatusServiceUnavailable)
		return
	}
	f.next.ServeHTTP(w, r)
}

// TestSDK_InChromium drives the SDK in headless Chromium against the real
// collector on the local stack's Kinesis: viewable impressions, clicks, 503s,
// offline, a rejected event and a page closed with events queued; then
// every event the page made is read back from the stream.
func TestSDK_InChromium(t *testing.T) {
	ctx := testenv.Browser(t)
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 1)
	const key = "web-sdk-test-key-0123456789"

	p, err := producers.New(c.Kinesis, stream)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	pageSrv := httptest.NewServer(http.NotFoundHandler()) // replaced below, once the collector's URL is known
	defer pageSrv.Close()
	col, err := collector.New(collector.Config{APIKeys: []string{key}, AllowedOrigins: []string{pageSrv.URL}}, p, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &faults{next: col.Handler()}
	colSrv := httptest.NewServer(f)
	defer colSrv.Close()
	pageSrv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, page, items("a"), items("b"), colSrv.URL, colSrv.URL, key)
	})

	eval := func(js string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](js)); err != nil {
			t.Fatalf("%s: %v", js, err)
		}
	}
	scrollTo := func(id string) { eval(fmt.Sprintf(`document.getElementById(%q).scrollIntoView()`, id)) }
	if err := chromedp.Do(ctx, chromedp.Navigate(pageSrv.URL), chromedp.WaitReady("#end")); err != nil {
		t.Fatal(err)
	}
	// Viewable impressions: group A on screen 1.2 s, group B 0.5 s.
	scrollTo("a")
	time.Sleep(1200 * time.Millisecond)
	scrollTo("b")
	time.Sleep(500 * time.Millisecond)
	scrollTo("top")
	time.Sleep(1500 * time.Millisecond)
	// Clicks, then two 503s the SDK must ride out.
	f.fail.Store(2)
	scrollTo("a")
	eval(`document.querySelector('[data-item-id="a-2"]').click(); document.querySelector('[data-item-id="a-4"]').click()`)
	scrollTo("top")
	// Bad input: the collector refuses it by index, the page hears why.
	eval(`clickstream.track("click", {user_id: 42, item_id: "bad"})`)
	time.Sleep(3 * time.Second)
	if f.seen.Load() < 2 {
		t.Fatalf("only %d injected 503s were met", f.seen.Load())
	}
	// Offline, events queued, online again.
	offline(t, ctx, true)
	eval(`clickstream.track("page_view", {uri: "/offline-1"}); clickstream.track("page_view", {uri: "/offline-2"})`)
	time.Sleep(time.Second)
	offline(t, ctx, false)
	eval(`window.dispatchEvent(new Event("online"))`)
	time.Sleep(2 * time.Second)
	// A batch over 1 KB goes gzipped (CompressionStream).
	eval(`for (let i = 0; i < 15; i++) clickstream.track("page_view", {uri: "/big-" + i, user_agent: "x".repeat(200)})`)
	eval(`clickstream.flush()`)
	time.Sleep(2 * time.Second)
	if f.gzipped.Load() == 0 {
		t.Error("no gzipped request: large batches should be compressed")
	}
	// Events queued while fetches fail, then the page goes away: the
	// beacon (key in the query, text/plain) carries them.
	f.fail.Store(1000)
	eval(`clickstream.track("page_view", {uri: "/last-1"}); clickstream.track("page_view", {uri: "/last-2"})`)
	ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__ids`))
	if err != nil {
		t.Fatal(err)
	}
	rejected, err := chromedp.Run(ctx, chromedp.Evaluate[[]map[string]any](`window.__rejected`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rejected) != 1 || !strings.Contains(fmt.Sprint(rejected[0]["error"]), "user_id") {
		t.Fatalf("rejected %v, want the bad click with its reason", rejected)
	}

	// The stream: every event once, with the page's ids.
	shards, err := consumers.ListShards(context.Background(), c.Kinesis, stream)
	if err != nil {
		t.Fatal(err)
	}
	var recs []consumers.Record
	for _, sh := range shards {
		if recs, _, err = consumers.ReadShard(context.Background(), c.Kinesis, stream, sh, recs); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var impressions, clicks []string
	uris := map[string]bool{}
	for _, r := range recs {
		if r.Err != nil {
			t.Fatalf("bad record on the stream: %v", r.Err)
		}
		mu.Lock()
		seen[r.Event.ID]++
		mu.Unlock()
		switch r.Event.Type {
		case "impression":
			impressions = append(impressions, r.Event.Placement+"/"+r.Event.ItemID)
		case "click":
			clicks = append(clicks, fmt.Sprintf("%s/%s/%d", r.Event.Placement, r.Event.ItemID, *r.Event.Position))
		case "page_view":
			uris[r.Event.URI] = true
		}
	}
	if len(impressions) != 6 {
		t.Errorf("impressions %v: want exactly group A's six (B was on screen 0.5 s)", impressions)
	}
	for _, im := range impressions {
		if !strings.HasPrefix(im, "grid_a/a-") {
			t.Errorf("impression %s: only group A was viewable", im)
		}
	}
	if strings.Join(clicks, ",") != "grid_a/a-2/2,grid_a/a-4/4" {
		t.Errorf("clicks %v", clicks)
	}
	for _, u := range []string{"/offline-1", "/offline-2", "/last-1", "/last-2", "/big-0", "/big-14"} {
		if !uris[u] {
			t.Errorf("page view %s lost (uris on the stream: %v)", u, uris)
		}
	}
	for _, id := range ids {
		if seen[id] == 0 && !isRejected(rejected, id) {
			t.Errorf("event %s made by the page is not on the stream", id)
		}
		if seen[id] > 1 {
			t.Errorf("event %s is on the stream %d times", id, seen[id])
		}
	}
	t.Logf("%d events made by the page, %d records on the stream, %d impressions, %d clicks, %d 503s ridden out", len(ids), len(recs), len(impressions), len(clicks), f.seen.Load())
}

// offline cuts the page's network (and navigator.onLine) or restores it.
func offline(t *testing.T, ctx context.Context, off bool) {
	t.Helper()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: []*network.Conditions{{Offline: off, DownloadThroughput: -1, UploadThroughput: -1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: off, DownloadThroughput: -1, UploadThroughput: -1}); err != nil {
		t.Fatal(err)
	}
}

func isRejected(rs []map[string]any, id string) bool {
	for _, r := range rs {
		if ev, ok := r["event"].(map[string]any); ok && ev["id"] == id {
			return true
		}
	}
	return false
}
