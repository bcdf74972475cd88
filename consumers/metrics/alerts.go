package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/internal/retry"
)

// AlertConfig configures an Alerter. Zero fields take the defaults.
type AlertConfig struct {
	// Rules to evaluate. Default: the reader's Definitions.Alerts.
	Rules []AlertRule
	// WebhookURL is used by rules without a webhook of their own when the
	// definitions file names none either. Default "": such rules are
	// evaluated and logged but post nothing.
	WebhookURL string
	// Interval between evaluations. Default 30s.
	Interval time.Duration
	// Delay is how long after a window's end it is taken as complete (the
	// processor's OutOfOrderness plus its flush and read lag). Default 30s.
	Delay time.Duration
	// HTTPClient posts the webhooks. Default: a client with a 10s timeout.
	HTTPClient *http.Client
	// Clock is the current time. Default time.Now.
	Clock func() time.Time
	// Logger receives alert transitions and delivery errors. Default: discard.
	Logger *slog.Logger
	// Registerer receives the alerter's Prometheus metrics. Default nil: none.
	Registerer prometheus.Registerer
}

// Alerter evaluates alert rules on the read path once per Interval and
// posts a Slack-compatible webhook once when an alert fires and once when
// it resolves. Alert state lives in memory: run one Alerter per deployment
// (a restarted one re-announces alerts that are still firing).
type Alerter struct {
	r     *Reader
	cfg   AlertConfig
	state map[string]*alertState // rule \x00 dimsKey

	mu      sync.Mutex
	firing  *prometheus.GaugeVec
	posts   *prometheus.CounterVec
	lastErr time.Time
}

type alertState struct {
	firing bool
}

// Alert is one firing or resolution; Payload renders it for the webhook.
type Alert struct {
	Rule      string
	Status    string // "firing" or "resolved"
	Metric    string
	Dims      map[string]string
	Value     float64
	HasValue  bool
	Window    time.Time
	Condition string
	For       int
}

// NewAlerter returns an Alerter reading through r.
func NewAlerter(r *Reader, cfg AlertConfig) (*Alerter, error) {
	if cfg.Rules == nil {
		cfg.Rules = r.Definitions().Alerts
	}
	if cfg.WebhookURL == "" {
		cfg.WebhookURL = r.Definitions().Webhook
	}
	if cfg.WebhookURL != "" {
		if err := checkURL(cfg.WebhookURL); err != nil {
			return nil, fmt.Errorf("alert webhook: %w", err)
		}
	}
	for i := range cfg.Rules {
		rule := &cfg.Rules[i]
		if rule.op == "" {
			m, ok := r.Definitions().Metric(rule.Metric)
			if !ok {
				return nil, fmt.Errorf("alert %s: unknown metric %q", rule.Name, rule.Metric)
			}
			if err := rule.parseWhen(m); err != nil {
				return nil, fmt.Errorf("alert %s: %w", rule.Name, err)
			}
			if rule.For <= 0 {
				rule.For = 1
			}
		}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.Delay <= 0 {
		cfg.Delay = 30 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Alerter{
		r: r, cfg: cfg, state: map[string]*alertState{},
		firing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "clickstream_alerts_firing", Help: "Alerts currently firing, per rule.",
		}, []string{"rule"}),
		posts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_alert_webhooks_total", Help: "Alert webhook posts by result (ok, error).",
		}, []string{"result"}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{a.firing, a.posts} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register alert metrics: %w", err)
			}
		}
	}
	return a, nil
}

// Run evaluates every Interval until ctx is done, then returns nil.
// Evaluation errors are logged (at most one a minute) and retried at the
// next tick.
func (a *Alerter) Run(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		if err := a.Evaluate(ctx); err != nil && ctx.Err() == nil {
			if now := time.Now(); now.Sub(a.lastErr) >= time.Minute {
				a.lastErr = now
				a.cfg.Logger.Warn("alert evaluation failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Evaluate runs every rule once against the latest complete windows.
func (a *Alerter) Evaluate(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.cfg.Clock()
	// The last window whose end is at least Delay ago.
	last := now.Add(-a.cfg.Delay).Truncate(time.Minute).Add(-time.Minute).UTC()
	var errs []error
	for i := range a.cfg.Rules {
		if err := a.evalRule(ctx, &a.cfg.Rules[i], last); err != nil {
			errs = append(errs, fmt.Errorf("alert %s: %w", a.cfg.Rules[i].Name, err))
		}
	}
	return errors.Join(errs...)
}

func (a *Alerter) evalRule(ctx context.Context, rule *AlertRule, last time.Time) error {
	first := last.Add(-time.Duration(rule.For-1) * time.Minute)
	res, err := a.r.Query(ctx, Query{Metric: rule.Metric, From: first, To: last.Add(time.Minute), Dims: rule.Where})
	if err != nil {
		return err
	}
	def, _ := a.r.Definitions().Metric(rule.Metric)
	type group struct {
		dims map[string]string
		vals map[int64]float64
	}
	groups := map[string]*group{}
	for _, row := range res.Rows {
		k := DimsKey(def.GroupBy, row.Dims)
		g := groups[k]
		if g == nil {
			g = &group{dims: row.Dims, vals: map[int64]float64{}}
			groups[k] = g
		}
		if v, ok := row.Values[rule.value]; ok {
			g.vals[row.WindowStart.Unix()] = v
		}
	}
	var errs []error
	for _, k := range sortedKeys(groups) {
		g := groups[k]
		id := rule.Name + "\x00" + k
		st := a.state[id]
		if st == nil {
			st = &alertState{}
			a.state[id] = st
		}
		latest, hasLatest := g.vals[last.Unix()]
		held := true
		for w := first; !w.After(last); w = w.Add(time.Minute) {
			v, ok := g.vals[w.Unix()]
			if !ok || !compare(v, rule.op, rule.threshold) {
				held = false
				break
			}
		}
		var status string
		switch {
		case !st.firing && held:
			status = "firing"
		case st.firing && hasLatest && !compare(latest, rule.op, rule.threshold):
			status = "resolved"
		default:
			continue // no transition; missing data keeps the state
		}
		al := Alert{Rule: rule.Name, Status: status, Metric: rule.Metric, Dims: g.dims, Value: latest, HasValue: hasLatest,
			Window: last, Condition: rule.When, For: rule.For}
		if err := a.deliver(ctx, rule, al); err != nil {
			errs = append(errs, err) // state unchanged: retried next evaluation
			continue
		}
		st.firing = status == "firing"
		if st.firing {
			a.firing.WithLabelValues(rule.Name).Inc()
		} else {
			a.firing.WithLabelValues(rule.Name).Dec()
		}
		a.cfg.Logger.Info("alert "+status, "rule", rule.Name, "dims", k, "value", latest, "window", last)
	}
	return errors.Join(errs...)
}

func compare(v float64, op string, th float64) bool {
	switch op {
	case "<":
		return v < th
	case "<=":
		return v <= th
	case ">":
		return v > th
	case ">=":
		return v >= th
	case "==":
		return v == th
	case "!=":
		return v != th
	}
	return false
}

// Payload renders the Slack-compatible webhook body.
func (al Alert) Payload() map[string]any {
	dims := make([]string, 0, len(al.Dims))
	for _, k := range sortedKeys(al.Dims) {
		dims = append(dims, k+"="+al.Dims[k])
	}
	where := strings.Join(dims, " ")
	if where == "" {
		where = "(all)"
	}
	val := "no data"
	if al.HasValue {
		val = strconv.FormatFloat(al.Value, 'g', 4, 64)
	}
	icon, color := ":rotating_light: FIRING", "danger"
	if al.Status == "resolved" {
		icon, color = ":white_check_mark: RESOLVED", "good"
	}
	text := fmt.Sprintf("%s %s: %s %s on %s (value %s in window %s, for %d min)",
		icon, al.Rule, al.Metric, al.Condition, where, val, al.Window.Format(windowFormat), al.For)
	return map[string]any{
		"text": text,
		"attachments": []map[string]any{{
			"color":    color,
			"fallback": text,
			"fields": []map[string]any{
				{"title": "rule", "value": al.Rule, "short": true},
				{"title": "status", "value": al.Status, "short": true},
				{"title": "metric", "value": al.Metric, "short": true},
				{"title": "condition", "value": al.Condition, "short": true},
				{"title": "group", "value": where, "short": true},
				{"title": "value", "value": val, "short": true},
				{"title": "window", "value": al.Window.Format(time.RFC3339), "short": true},
			},
			"ts": al.Window.Unix(),
		}},
	}
}

// deliver posts al, retrying transient failures twice within this
// evaluation. Without a webhook the alert is only logged.
func (a *Alerter) deliver(ctx context.Context, rule *AlertRule, al Alert) error {
	url := rule.Webhook
	if url == "" {
		url = a.cfg.WebhookURL
	}
	if url == "" {
		a.cfg.Logger.Warn("alert has no webhook", "rule", rule.Name, "status", al.Status)
		return nil
	}
	body, err := json.Marshal(al.Payload())
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			if err := retry.Sleep(ctx, time.Duration(attempt)*500*time.Millisecond); err != nil {
				return err
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("post alert: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := a.cfg.HTTPClient.Do(req)
		if err != nil {
			last = fmt.Errorf("post alert: %w", err)
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			a.posts.WithLabelValues("ok").Inc()
			return nil
		}
		last = fmt.Errorf("post alert: webhook answered %s", resp.Status)
		if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests {
			break // a client error will not heal by retrying now
		}
	}
	a.posts.WithLabelValues("error").Inc()
	return last
}
