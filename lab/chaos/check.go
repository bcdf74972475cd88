package chaos

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/archive"
	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/consumers/vectors"
	"github.com/clickstream-go/clickstream/event"
)

// Check is one line of the verdict table.
type Check struct {
	Name     string
	Expected string
	Got      string
	OK       bool
	// Examples of what differed (a few at most).
	Examples []string
}

// maxExamples bounds the examples kept per check.
const maxExamples = 5

func (c *Check) example(format string, args ...any) {
	if len(c.Examples) < maxExamples {
		c.Examples = append(c.Examples, fmt.Sprintf(format, args...))
	}
}

func countCheck(name string, want, got int) Check {
	return Check{Name: name, Expected: fmt.Sprint(want), Got: fmt.Sprint(got), OK: want == got}
}

// recordKey identifies a user record: shard, sequence number, sub-sequence.
func recordKey(shard, seq string, sub int64) string {
	return shard + "/" + seq + "/" + fmt.Sprint(sub)
}

// CheckArchive verifies that every valid record of the stream is in rows
// exactly once and nothing else is, that each row is its record's event,
// and that the dead letters under prefix are exactly the stream's bad
// records (deadLetterKeys: every object key under PREFIX/errors/).
func CheckArchive(records []consumers.Record, rows []archive.Row, prefix string, deadLetterKeys []string) []Check {
	want := map[string]*consumers.Record{}
	wantDL := map[string]bool{}
	for i := range records {
		r := &records[i]
		if r.Err != nil {
			wantDL[consumers.DeadLetterKey(prefix, *r)] = true
			continue
		}
		if r.Duplicate {
			continue // a copy: never archived
		}
		want[recordKey(r.ShardID, r.SequenceNumber, r.SubSequence)] = r
	}
	seen := map[string]int{}
	rowsC := countCheck("archive: rows", len(want), len(rows))
	missing := Check{Name: "archive: valid records missing", Expected: "0"}
	dups := Check{Name: "archive: duplicate rows", Expected: "0"}
	extra := Check{Name: "archive: rows not on the stream", Expected: "0"}
	content := Check{Name: "archive: rows equal their event", Expected: "0 differ"}
	var nDup, nExtra, nDiff int
	for i := range rows {
		row := &rows[i]
		k := recordKey(row.ShardID, row.SequenceNumber, row.SubSequenceNumber)
		seen[k]++
		r, ok := want[k]
		switch {
		case !ok:
			nExtra++
			extra.example("%s (type %s, id %s)", k, row.Type, row.ID)
		case seen[k] > 1:
			nDup++
			dups.example("%s ×%d", k, seen[k])
		default:
			if d := rowDiff(row, &r.Event); d != "" {
				nDiff++
				content.example("%s: %s", k, d)
			}
		}
	}
	var nMissing int
	keys := sortedKeys(want)
	for _, k := range keys {
		if seen[k] == 0 {
			nMissing++
			missing.example("%s (type %s, id %s)", k, want[k].Event.Type, want[k].Event.ID)
		}
	}
	missing.Got, missing.OK = fmt.Sprint(nMissing), nMissing == 0
	dups.Got, dups.OK = fmt.Sprint(nDup), nDup == 0
	extra.Got, extra.OK = fmt.Sprint(nExtra), nExtra == 0
	content.Got, content.OK = fmt.Sprintf("%d differ", nDiff), nDiff == 0

	dl := Check{Name: "archive: dead letters = bad records", Expected: fmt.Sprintf("%d", len(wantDL))}
	gotDL := map[string]bool{}
	var dlMissing, dlExtra int
	for _, k := range deadLetterKeys {
		gotDL[k] = true
		if !wantDL[k] {
			dlExtra++
			dl.example("extra %s", k)
		}
	}
	for _, k := range sortedKeys(wantDL) {
		if !gotDL[k] {
			dlMissing++
			dl.example("missing %s", k)
		}
	}
	dl.Got = fmt.Sprintf("%d (%d missing, %d extra)", len(gotDL), dlMissing, dlExtra)
	dl.OK = dlMissing == 0 && dlExtra == 0
	return []Check{rowsC, missing, dups, extra, content, dl}
}

// rowDiff compares the identifying fields of a row with its event.
func rowDiff(row *archive.Row, e *event.Event) string {
	var d []string
	if row.ID != e.ID {
		d = append(d, fmt.Sprintf("id %q≠%q", row.ID, e.ID))
	}
	if row.Type != e.Type {
		d = append(d, fmt.Sprintf("type %q≠%q", row.Type, e.Type))
	}
	if row.UserID != e.UserID {
		d = append(d, fmt.Sprintf("user_id %q≠%q", row.UserID, e.UserID))
	}
	if row.TS != e.TS.UnixMilli() {
		d = append(d, fmt.Sprintf("ts %d≠%d", row.TS, e.TS.UnixMilli()))
	}
	if len(row.Features) != len(e.Features) {
		d = append(d, fmt.Sprintf("%d features≠%d", len(row.Features), len(e.Features)))
	}
	return strings.Join(d, ", ")
}

// DirectVectors is the direct computation of every user's vector at time
// at: Σ w·2^(−(at−ts)/H) per feature over clicks and over impressions of the
// valid events, and the events per user.
func DirectVectors(records []consumers.Record, at time.Time, hl time.Duration) map[string]*vectors.Vector {
	out := map[string]*vectors.Vector{}
	vals := map[string]map[string][2]float64{}
	for i := range records {
		r := &records[i]
		e := &r.Event
		if !r.Applies() || (e.Type != event.TypeClick && e.Type != event.TypeImpression) {
			continue
		}
		v := out[e.UserID]
		if v == nil {
			v = &vectors.Vector{UserID: e.UserID, AsOf: at, HalfLifeHours: hl.Hours()}
			out[e.UserID] = v
			vals[e.UserID] = map[string][2]float64{}
		}
		v.Events++
		f := math.Exp2(-float64(at.Sub(e.TS)) / float64(hl))
		for name, w := range e.Features {
			x := vals[e.UserID][name]
			if e.Type == event.TypeClick {
				x[0] += w * f
			} else {
				x[1] += w * f
			}
			vals[e.UserID][name] = x
		}
	}
	for user, fs := range vals {
		for _, name := range sortedKeys(fs) {
			out[user].Features = append(out[user].Features, vectors.Feature{Name: name, Clicks: fs[name][0], Impressions: fs[name][1]})
		}
	}
	return out
}

// VectorTolerance is the largest relative error accepted per value.
const VectorTolerance = 1e-6

// CheckVectors compares the vectors read back (got, by user; storedUsers is
// the number of items in the table) with the direct computation want.
func CheckVectors(want, got map[string]*vectors.Vector, storedUsers int) []Check {
	users := countCheck("vectors: users stored", len(want), storedUsers)
	missing := Check{Name: "vectors: users missing", Expected: "0"}
	events := Check{Name: "vectors: events per user", Expected: "0 differ"}
	values := Check{Name: fmt.Sprintf("vectors: values (rel. err ≤ %g)", VectorTolerance), Expected: "0 differ"}
	var nMissing, nEvents, nValues, nFeat int
	var worst float64
	for _, user := range sortedKeys(want) {
		w, g := want[user], got[user]
		if g == nil {
			nMissing++
			missing.example("%s (%d events)", user, w.Events)
			continue
		}
		if g.Events != w.Events {
			nEvents++
			events.example("%s: %d, want %d", user, g.Events, w.Events)
		}
		gf := map[string]vectors.Feature{}
		for _, f := range g.Features {
			gf[f.Name] = f
		}
		for _, f := range w.Features {
			nFeat++
			x, ok := gf[f.Name]
			delete(gf, f.Name)
			if !ok {
				nValues++
				values.example("%s %s: missing", user, f.Name)
				continue
			}
			for _, p := range [][2]float64{{x.Clicks, f.Clicks}, {x.Impressions, f.Impressions}} {
				e := math.Abs(p[0]-p[1]) / math.Max(math.Abs(p[1]), 1e-12)
				worst = math.Max(worst, e)
				if e > VectorTolerance {
					nValues++
					values.example("%s %s: %.12g, want %.12g", user, f.Name, p[0], p[1])
				}
			}
		}
		for name := range gf {
			nValues++
			values.example("%s %s: not in the events", user, name)
		}
	}
	missing.Got, missing.OK = fmt.Sprint(nMissing), nMissing == 0
	events.Got, events.OK = fmt.Sprintf("%d differ", nEvents), nEvents == 0
	values.Got = fmt.Sprintf("%d differ of %d features (worst %.1e)", nValues, nFeat, worst)
	values.OK = nValues == 0
	return []Check{users, missing, events, values}
}

// exactValues are the counts the metrics check compares exactly.
var exactValues = map[string][]string{
	"access":     {"requests", "cache_hit", "cache_miss", "cache_expired", "cache_other", "status_2xx", "status_3xx", "status_4xx", "status_5xx"},
	"engagement": {"impressions", "clicks"},
}

// MetricGroup is the direct computation of one window of one group.
type MetricGroup struct {
	Metric string
	Window time.Time
	Dim    string // route (access) or placement (engagement)
	Counts map[string]float64
	// Latencies (access) and Users (engagement) for the sketch values.
	Latencies []float64
	Users     map[string]bool
}

func (g *MetricGroup) key() string { return metricKey(g.Metric, g.Window, g.Dim) }

func metricKey(metric string, w time.Time, dim string) string {
	return metric + " " + w.UTC().Format(time.RFC3339) + " " + dim
}

// DirectMetrics counts the built-in metrics (access by route, engagement by
// placement) per minute of event time straight from the valid events.
func DirectMetrics(records []consumers.Record) map[string]*MetricGroup {
	out := map[string]*MetricGroup{}
	get := func(metric string, ts time.Time, dim string) *MetricGroup {
		w := time.UnixMilli(floorMinute(ts.UnixMilli())).UTC()
		k := metricKey(metric, w, dim)
		g := out[k]
		if g == nil {
			g = &MetricGroup{Metric: metric, Window: w, Dim: dim, Counts: map[string]float64{}, Users: map[string]bool{}}
			for _, v := range exactValues[metric] {
				g.Counts[v] = 0
			}
			out[k] = g
		}
		return g
	}
	for i := range records {
		r := &records[i]
		e := &r.Event
		if !r.Applies() {
			continue
		}
		switch e.Type {
		case event.TypeAccess:
			g := get("access", e.TS, e.Route)
			g.Counts["requests"]++
			if c := event.ClassifyCache(e.Cache); c != "" {
				g.Counts["cache_"+strings.ToLower(c)]++
			}
			if s := e.Status; s >= 200 && s < 600 {
				g.Counts[fmt.Sprintf("status_%dxx", s/100)]++
			}
			if e.RequestTimeMS != nil {
				g.Latencies = append(g.Latencies, *e.RequestTimeMS)
			}
		case event.TypeClick, event.TypeImpression:
			g := get("engagement", e.TS, e.Placement)
			if e.Type == event.TypeClick {
				g.Counts["clicks"]++
			} else {
				g.Counts["impressions"]++
			}
			if e.UserID != "" {
				g.Users[e.UserID] = true
			}
		}
	}
	return out
}

func floorMinute(ms int64) int64 {
	const m = 60_000
	w := ms / m * m
	if w > ms {
		w -= m
	}
	return w
}

// dimOf is the group's dimension value in a result row.
func dimOf(metric string, dims map[string]string) string {
	if metric == "access" {
		return dims["route"]
	}
	return dims["placement"]
}

// CheckMetrics compares the merged windows read back (rows by metric) with
// the direct computation: every count exactly; quantiles within the
// sketch's relative accuracy of the true quantile; unique users within 3%.
func CheckMetrics(want map[string]*MetricGroup, rows map[string][]metrics.ResultRow) []Check {
	groups := Check{Name: "metrics: windows × groups", Expected: fmt.Sprint(len(want))}
	missing := Check{Name: "metrics: groups missing", Expected: "0"}
	extra := Check{Name: "metrics: groups not in the events", Expected: "0"}
	counts := Check{Name: "metrics: exact counts", Expected: "0 differ"}
	quant := Check{Name: fmt.Sprintf("metrics: latency quantiles (±%g)", metrics.RelativeAccuracy), Expected: "0 outside"}
	uniq := Check{Name: "metrics: unique_users (±3%)", Expected: "0 outside"}
	got := map[string]metrics.ResultRow{}
	var nGot, nExtra, nMissing, nCounts, nCompared, nQuant, nUniq int
	for metric, rs := range rows {
		for _, r := range rs {
			nGot++
			k := metricKey(metric, r.WindowStart, dimOf(metric, r.Dims))
			if _, ok := want[k]; !ok {
				nExtra++
				extra.example("%s %v", k, r.Values)
			}
			got[k] = r
		}
	}
	for _, k := range sortedKeys(want) {
		w := want[k]
		r, ok := got[k]
		if !ok {
			nMissing++
			missing.example("%s %v", k, w.Counts)
			continue
		}
		for _, name := range exactValues[w.Metric] {
			nCompared++
			if r.Values[name] != w.Counts[name] {
				nCounts++
				counts.example("%s %s = %g, want %g", k, name, r.Values[name], w.Counts[name])
			}
		}
		if w.Metric == "access" && len(w.Latencies) > 0 {
			s := append([]float64(nil), w.Latencies...)
			sort.Float64s(s)
			for name, q := range map[string]float64{"latency_p50_ms": 0.50, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99} {
				lo, hi := quantileBounds(s, q)
				tol := metrics.RelativeAccuracy + 1e-9
				if v, ok := r.Values[name]; !ok || v < lo*(1-tol) || v > hi*(1+tol) {
					nQuant++
					quant.example("%s %s = %g, want in [%g, %g]", k, name, v, lo, hi)
				}
			}
		}
		if w.Metric == "engagement" {
			n := float64(len(w.Users))
			if v := r.Values["unique_users"]; math.Abs(v-n) > math.Max(1, 0.03*n) {
				nUniq++
				uniq.example("%s unique_users = %g, want %g", k, v, n)
			}
		}
	}
	groups.Got, groups.OK = fmt.Sprint(nGot), nGot == len(want)
	missing.Got, missing.OK = fmt.Sprint(nMissing), nMissing == 0
	extra.Got, extra.OK = fmt.Sprint(nExtra), nExtra == 0
	counts.Got, counts.OK = fmt.Sprintf("%d differ of %d", nCounts, nCompared), nCounts == 0
	quant.Got, quant.OK = fmt.Sprintf("%d outside", nQuant), nQuant == 0
	uniq.Got, uniq.OK = fmt.Sprintf("%d outside", nUniq), nUniq == 0
	return []Check{groups, missing, extra, counts, quant, uniq}
}

// quantileBounds returns the values around rank q·(n−1) of sorted s (the
// neighbours either side, since sketches and definitions differ by a rank).
func quantileBounds(s []float64, q float64) (lo, hi float64) {
	r := q * float64(len(s)-1)
	i, j := int(math.Floor(r))-1, int(math.Ceil(r))+1
	return s[max(i, 0)], s[min(j, len(s)-1)]
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
