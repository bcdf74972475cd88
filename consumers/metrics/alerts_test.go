package metrics

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/clickstream-go/clickstream/event"
)

func withAlerts(rules string) []byte {
	return []byte(strings.Replace(string(DefaultYAML()), "alerts: []", "alerts:"+rules, 1))
}

type webhookSink struct {
	mu    sync.Mutex
	posts []map[string]any
	fail  int // answer 503 to this many posts first
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || r.Header.Get("Content-Type") != "application/json" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.posts = append(s.posts, m)
}

func (s *webhookSink) texts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.posts {
		out = append(out, p["text"].(string))
	}
	return out
}

// hitRates stores one window per minute for route /x with the given hit
// rates (out of 10 requests) and a healthy route /y.
func hitRates(t *testing.T, rates []float64) Store {
	var evs []event.Event
	for m, r := range rates {
		win := t0.Add(time.Duration(m) * time.Minute)
		for i := 0; i < 10; i++ {
			c := "MISS"
			if float64(i) < r*10 {
				c = "HIT"
			}
			evs = append(evs, access(win.Add(time.Duration(i)*time.Second), "/x", c, 200, 5))
			evs = append(evs, access(win.Add(time.Duration(i)*time.Second), "/y", "HIT", 200, 5))
		}
	}
	st := NewMemoryStore()
	twoShards(t, st, evs)
	return st
}

func TestAlerter_FiresOnceAfterConsecutiveMinutesAndResolvesOnce(t *testing.T) {
	st := hitRates(t, []float64{0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.9, 0.9, 0.5, 0.9})
	d, err := ParseDefinitions(withAlerts(`
  - name: items-hit-rate
    metric: access
    when: hit_rate < 0.8
    for: 3
`))
	if err != nil {
		t.Fatal(err)
	}
	sink := &webhookSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	clock := &fixedClock{}
	r := NewReader(st, ReaderConfig{Definitions: d, Clock: clock.now})
	a, err := NewAlerter(r, AlertConfig{WebhookURL: srv.URL, Delay: 30 * time.Second, Clock: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	// Evaluate every 20 seconds through the ten minutes and beyond.
	var events []string
	for now := t0; now.Before(t0.Add(12 * time.Minute)); now = now.Add(20 * time.Second) {
		clock.t = now
		before := len(sink.texts())
		if err := a.Evaluate(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, txt := range sink.texts()[before:] {
			events = append(events, now.Format("15:04:05")+" "+txt)
		}
	}
	if len(events) != 2 {
		t.Fatalf("posts:\n%s\nwant one firing and one resolved", strings.Join(events, "\n"))
	}
	// Window 10:04 (third bad minute) completes at 10:05:30.
	if !strings.HasPrefix(events[0], "10:05:40 :rotating_light: FIRING items-hit-rate: access hit_rate < 0.8 on route=/x (value 0.5 in window 2026-11-22T10:04Z") {
		t.Errorf("firing post: %s", events[0])
	}
	// Window 10:06 is healthy again; it completes at 10:07:30. The single bad
	// minute 10:08 does not fire again (needs 3).
	if !strings.HasPrefix(events[1], "10:07:40 :white_check_mark: RESOLVED items-hit-rate") || !strings.Contains(events[1], "value 0.9") {
		t.Errorf("resolved post: %s", events[1])
	}
	p := sink.posts[0]
	att := p["attachments"].([]any)[0].(map[string]any)
	if att["color"] != "danger" || len(att["fields"].([]any)) == 0 {
		t.Errorf("attachment = %v", att)
	}
}

func TestAlerter_RetriesAFailedWebhookAtTheNextEvaluation(t *testing.T) {
	st := hitRates(t, []float64{0.1})
	d, err := ParseDefinitions(withAlerts(`
  - {name: low, metric: access, where: {route: /x}, when: "hit_rate <= 0.5"}
`))
	if err != nil {
		t.Fatal(err)
	}
	sink := &webhookSink{fail: 3}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	clock := &fixedClock{t: t0.Add(2 * time.Minute)}
	a, err := NewAlerter(NewReader(st, ReaderConfig{Definitions: d, Clock: clock.now}), AlertConfig{WebhookURL: srv.URL, Clock: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Evaluate(context.Background()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("first evaluation: err = %v, want the webhook's 503", err)
	}
	for i := 0; i < 3; i++ {
		if err := a.Evaluate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := sink.texts(); len(got) != 1 || !strings.Contains(got[0], "FIRING low") {
		t.Errorf("posts = %v, want exactly one firing", got)
	}
}

func TestAlerter_RunStopsWithItsContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sink := &webhookSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	st := hitRates(t, []float64{0.1})
	d, _ := ParseDefinitions(withAlerts("\n  - {name: low, metric: access, when: hit_rate < 0.5}\n"))
	clock := &fixedClock{t: t0.Add(2 * time.Minute)}
	a, err := NewAlerter(NewReader(st, ReaderConfig{Definitions: d, Clock: clock.now}), AlertConfig{WebhookURL: srv.URL, Clock: clock.now, Interval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.texts()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := sink.texts(); len(got) != 1 {
		t.Errorf("posts = %v, want one", got)
	}
	srv.CloseClientConnections()
}
