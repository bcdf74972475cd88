package metrics

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

func TestSketches_QuantilesWithinOnePercentOnKnownData(t *testing.T) {
	d := DefaultDefinitions()
	mp := d.plan.metrics[0]
	rng := rand.New(rand.NewPCG(7, 7))
	for _, dist := range []struct {
		name string
		gen  func() float64
	}{
		{"lognormal latencies", func() float64 { return math.Exp(3 + rng.NormFloat64()) }},
		{"uniform 0..1000", func() float64 { return rng.Float64() * 1000 }},
		{"bimodal with zeros", func() float64 {
			if rng.IntN(10) == 0 {
				return 0
			}
			if rng.IntN(2) == 0 {
				return 5 + rng.Float64()
			}
			return 800 + rng.Float64()*400
		}},
	} {
		t.Run(dist.name, func(t *testing.T) {
			a := newPartial(mp)
			v := eventView{p: d.plan}
			var vals []float64
			for i := 0; i < 100_000; i++ {
				x := dist.gen()
				vals = append(vals, x)
				e := access(t0, "/a", "HIT", 200, x)
				v.reset(&e)
				a.add(mp, &v)
			}
			got := a.values(mp)
			for name, q := range map[string]float64{"latency_p50_ms": 0.5, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99} {
				ex := exactQuantile(vals, q)
				if math.Abs(got[name]-ex) > RelativeAccuracy*ex {
					t.Errorf("%s = %v, exact %v: error %.3f%% > 1%%", name, got[name], ex, 100*math.Abs(got[name]-ex)/ex)
				}
			}
		})
	}
}

func TestSketches_DistinctUsersWithinTwoPercent(t *testing.T) {
	d := DefaultDefinitions()
	mp := d.plan.metrics[1]
	for _, n := range []int{10, 1000, 20_000, 200_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			// Split over 4 "shards" and merge, as the read path does.
			parts := []*partial{newPartial(mp), newPartial(mp), newPartial(mp), newPartial(mp)}
			v := eventView{p: d.plan}
			for i := 0; i < n; i++ {
				u := fmt.Sprintf("user-%d", i)
				for rep := 0; rep < 2; rep++ { // every user twice
					e := impression(t0, u, "home")
					v.reset(&e)
					parts[i%4].add(mp, &v)
				}
			}
			total := newPartial(mp)
			for _, p := range parts {
				if err := total.merge(mp, p); err != nil {
					t.Fatal(err)
				}
			}
			got := total.values(mp)["unique_users"]
			if math.Abs(got-float64(n)) > 0.02*float64(n) {
				t.Errorf("unique_users = %v, want %d ±2%%", got, n)
			}
			if total.values(mp)["impressions"] != float64(2*n) {
				t.Errorf("impressions = %v, want %d", total.values(mp)["impressions"], 2*n)
			}
		})
	}
}

func TestPartial_EncodeDecodeMergeEqualsOneAggregate(t *testing.T) {
	d := DefaultDefinitions()
	mp := d.plan.metrics[0]
	rng := rand.New(rand.NewPCG(1, 1))
	whole := newPartial(mp)
	parts := []*partial{newPartial(mp), newPartial(mp), newPartial(mp)}
	v := eventView{p: d.plan}
	caches := []string{"HIT", "MISS", "EXPIRED", "BYPASS", "-", "hit"}
	for i := 0; i < 5000; i++ {
		e := access(t0, "/a", caches[rng.IntN(len(caches))], []int{200, 301, 404, 500}[rng.IntN(4)], rng.ExpFloat64()*30)
		v.reset(&e)
		whole.add(mp, &v)
		v.reset(&e)
		parts[rng.IntN(3)].add(mp, &v)
	}
	merged := newPartial(mp)
	for _, p := range parts {
		var row Row
		if err := p.encode(mp, &row); err != nil {
			t.Fatal(err)
		}
		row.RowKey = RowKey{Metric: "access", Window: t0, Shard: "s"}
		back, err := decodePartial(mp, &row)
		if err != nil {
			t.Fatal(err)
		}
		if err := merged.merge(mp, back); err != nil {
			t.Fatal(err)
		}
	}
	w, m := whole.values(mp), merged.values(mp)
	for k, x := range w {
		if m[k] != x {
			t.Errorf("%s: merged %v, one aggregate %v", k, m[k], x)
		}
	}
	if len(m) != len(w) {
		t.Errorf("merged has %d values, one aggregate %d", len(m), len(w))
	}
}

func TestPartial_RatiosOmittedWithoutDenominator(t *testing.T) {
	d := DefaultDefinitions()
	mp := d.plan.metrics[0]
	a := newPartial(mp)
	v := eventView{p: d.plan}
	e := access(t0, "/a", "-", 200, 3)
	v.reset(&e)
	a.add(mp, &v)
	vals := a.values(mp)
	if _, ok := vals["hit_rate"]; ok {
		t.Errorf("hit_rate present without cached requests: %v", vals)
	}
	if vals["requests"] != 1 || vals["status_2xx"] != 1 || vals["latency_p50_ms"] == 0 {
		t.Errorf("values = %v", vals)
	}
}

func TestCustomMetric_AttrsFeaturesSumMinMax(t *testing.T) {
	d, err := ParseDefinitions([]byte(`metrics:
  - name: ab
    where: {type: click}
    group_by: [attrs.ab_bucket, app]
    values:
      - {name: clicks, kind: count}
      - {name: sports, kind: sum, field: features.cat:sports}
      - {name: lo, kind: min, field: position}
      - {name: hi, kind: max, field: position}
      - {name: per_click, kind: ratio, numerator: [sports], denominator: [clicks]}
`))
	if err != nil {
		t.Fatal(err)
	}
	st := NewMemoryStore()
	p, err := NewProcessor(st, Config{Definitions: d, FlushInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	sp := open(t, p, consumers.Position{})
	mk := func(bucket string, pos int, w float64) event.Event {
		e := click(t0, "u", "home")
		e.App, e.Attrs, e.Position, e.Features = "ios", map[string]string{"ab_bucket": bucket}, &pos, map[string]float64{"cat:sports": w}
		return e
	}
	process(t, sp, t0, records(1, mk("A", 3, 1), mk("A", 1, 0.5), mk("B", 7, 2), access(t0, "/x", "HIT", 200, 1))...)
	if _, err := sp.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	res, err := NewReader(st, ReaderConfig{Definitions: d}).Query(t.Context(), Query{Metric: "ab", From: t0, To: t0.Add(time.Minute), Dims: map[string]string{"attrs.ab_bucket": "A"}, IncludeOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 1 {
		t.Fatalf("rows = %+v", res.Rows)
	}
	v := res.Rows[0].Values
	if v["clicks"] != 2 || v["sports"] != 1.5 || v["lo"] != 1 || v["hi"] != 3 || v["per_click"] != 0.75 {
		t.Errorf("values = %v", v)
	}
	if res.Rows[0].Dims["app"] != "ios" {
		t.Errorf("dims = %v", res.Rows[0].Dims)
	}
}
