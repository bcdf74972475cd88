package metrics

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func access(ts time.Time, route, cache string, status int, ms float64) event.Event {
	return event.Event{V: 1, ID: event.NewID(), Type: event.TypeAccess, TS: ts, Host: "api-1", Method: "GET",
		URI: route, Route: route, Status: status, Cache: cache, RequestTimeMS: &ms}
}

func click(ts time.Time, user, placement string) event.Event {
	return event.Event{V: 1, ID: event.NewID(), Type: event.TypeClick, TS: ts, UserID: user, Placement: placement, ItemID: "a-1"}
}

func impression(ts time.Time, user, placement string) event.Event {
	return event.Event{V: 1, ID: event.NewID(), Type: event.TypeImpression, TS: ts, UserID: user, Placement: placement, ItemID: "a-1"}
}

// seq renders sequence number i the way Kinesis does: long decimals.
func seq(i int) string { return fmt.Sprintf("4959%052d", i) }

// records turns events into shard records at consecutive sequence numbers
// from first, arriving when they happened.
func records(first int, evs ...event.Event) []consumers.Record {
	out := make([]consumers.Record, len(evs))
	for i, e := range evs {
		out[i] = consumers.Record{
			Position: consumers.Position{SequenceNumber: seq(first + i)}, ShardID: "shardId-000000000000",
			PartitionKey: e.PartitionKey(), ArrivalTime: e.TS, Event: e,
		}
	}
	return out
}

// oracle computes the built-in metrics directly from events: the exact
// answers the pipeline must reproduce. Keys are "metric|dimsKey|window".
type oracleRow struct {
	counts  map[string]float64
	latency []float64
	users   map[string]bool
}

func oracle(evs []event.Event) map[string]*oracleRow {
	out := map[string]*oracleRow{}
	get := func(k string) *oracleRow {
		r := out[k]
		if r == nil {
			r = &oracleRow{counts: map[string]float64{}, users: map[string]bool{}}
			out[k] = r
		}
		return r
	}
	for _, e := range evs {
		w := e.TS.Truncate(time.Minute).Format(windowFormat)
		switch e.Type {
		case event.TypeAccess:
			r := get("access|route=" + e.Route + "|" + w)
			r.counts["requests"]++
			switch strings.ToUpper(e.Cache) {
			case "HIT":
				r.counts["cache_hit"]++
			case "MISS":
				r.counts["cache_miss"]++
			case "EXPIRED":
				r.counts["cache_expired"]++
			case "", "-":
			default:
				r.counts["cache_other"]++
			}
			if e.Status > 0 {
				r.counts[fmt.Sprintf("status_%dxx", e.Status/100)]++
			}
			if e.RequestTimeMS != nil {
				r.latency = append(r.latency, *e.RequestTimeMS)
			}
		case event.TypeClick, event.TypeImpression:
			r := get("engagement|placement=" + e.Placement + "|" + w)
			if e.Type == event.TypeClick {
				r.counts["clicks"]++
			} else {
				r.counts["impressions"]++
			}
			r.users[e.UserID] = true
		}
	}
	for k, r := range out {
		c := r.counts
		if strings.HasPrefix(k, "access|") {
			for _, n := range []string{"cache_hit", "cache_miss", "cache_expired", "cache_other", "status_2xx", "status_3xx", "status_4xx", "status_5xx"} {
				c[n] += 0
			}
			if den := c["cache_hit"] + c["cache_miss"] + c["cache_expired"] + c["cache_other"]; den > 0 {
				c["hit_rate"] = c["cache_hit"] / den
				c["miss_rate"] = c["cache_miss"] / den
				c["expired_rate"] = c["cache_expired"] / den
			}
		} else {
			c["clicks"] += 0
			c["impressions"] += 0
			if c["impressions"] > 0 {
				c["ctr"] = c["clicks"] / c["impressions"]
			}
		}
	}
	return out
}

// exactQuantile is DDSketch's rank convention: the value at rank q·(n−1).
func exactQuantile(vals []float64, q float64) float64 {
	s := append([]float64(nil), vals...)
	sort.Float64s(s)
	return s[int(q*float64(len(s)-1))]
}

// checkAgainstOracle compares API rows with the oracle: counts and rates
// exactly, quantiles within 1% relative, unique users within 2%.
func checkAgainstOracle(t *testing.T, want map[string]*oracleRow, results ...*Result) {
	t.Helper()
	for _, d := range oracleDiff(want, results...) {
		t.Error(d)
	}
}

func oracleDiff(want map[string]*oracleRow, results ...*Result) []string {
	var diffs []string
	errf := func(format string, a ...any) { diffs = append(diffs, fmt.Sprintf(format, a...)) }
	got := map[string]ResultRow{}
	for _, res := range results {
		for _, row := range res.Rows {
			k := res.Metric + "|" + DimsKey(sortedKeys(row.Dims), row.Dims) + "|" + row.WindowStart.Format(windowFormat)
			got[k] = row
		}
	}
	for _, k := range sortedKeys(want) {
		w := want[k]
		g, ok := got[k]
		if !ok {
			errf("%s: missing from the API", k)
			continue
		}
		for _, name := range sortedKeys(w.counts) {
			v := w.counts[name]
			if gv, ok := g.Values[name]; !ok || math.Abs(gv-v) > 1e-12 {
				errf("%s: %s = %v (present %v), want %v", k, name, gv, ok, v)
			}
		}
		for name, q := range map[string]float64{"latency_p50_ms": 0.5, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99} {
			if len(w.latency) == 0 {
				continue
			}
			ex := exactQuantile(w.latency, q)
			if gv := g.Values[name]; math.Abs(gv-ex) > RelativeAccuracy*ex+1e-9 {
				errf("%s: %s = %v, want %v ±1%%", k, name, gv, ex)
			}
		}
		if strings.HasPrefix(k, "engagement|") {
			ex := float64(len(w.users))
			if gv := g.Values["unique_users"]; math.Abs(gv-ex) > 0.02*ex {
				errf("%s: unique_users = %v, want %v ±2%%", k, gv, ex)
			}
		}
	}
	for _, k := range sortedKeys(got) {
		if want[k] == nil {
			errf("%s: in the API but not in the events", k)
		}
	}
	return diffs
}

// queryAll reads both built-in metrics over [from, to).
func queryAll(t *testing.T, r *Reader, from, to time.Time) (*Result, *Result) {
	t.Helper()
	ctx := context.Background()
	a, err := r.Query(ctx, Query{Metric: "access", From: from, To: to})
	if err != nil {
		t.Fatalf("query access: %v", err)
	}
	e, err := r.Query(ctx, Query{Metric: "engagement", From: from, To: to})
	if err != nil {
		t.Fatalf("query engagement: %v", err)
	}
	return a, e
}

// fixedClock returns a settable clock.
type fixedClock struct{ t time.Time }

func (c *fixedClock) now() time.Time { return c.t }
