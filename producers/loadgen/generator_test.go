package loadgen

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/event"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func newGen(t testing.TB, cfg GeneratorConfig) *Generator {
	t.Helper()
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatalf("NewGenerator: %v", err)
	}
	return g
}

// stepping returns times t0, t0+step, … for NextAt.
func stepping(step time.Duration) func(i int) time.Time {
	return func(i int) time.Time { return t0.Add(time.Duration(i) * step) }
}

func TestGenerator_SameSeedGivesSameSequence(t *testing.T) {
	at := stepping(3 * time.Millisecond)
	a, b := newGen(t, GeneratorConfig{Seed: 7}), newGen(t, GeneratorConfig{Seed: 7})
	c := newGen(t, GeneratorConfig{Seed: 8})
	same := 0
	for i := range 5000 {
		ea, eb, ec := a.NextAt(at(i)), b.NextAt(at(i)), c.NextAt(at(i))
		ja, jb := ea.AppendJSON(nil), eb.AppendJSON(nil)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("event %d differs with the same seed:\n%s\n%s", i, ja, jb)
		}
		if bytes.Equal(ja, ec.AppendJSON(nil)) {
			same++
		}
	}
	if same > 50 {
		t.Errorf("%d of 5000 events equal under another seed: the seed hardly matters", same)
	}
}

func TestGenerator_MalformedDrawsDoNotChangeTheValidSequence(t *testing.T) {
	at := stepping(time.Millisecond)
	a, b := newGen(t, GeneratorConfig{Seed: 3}), newGen(t, GeneratorConfig{Seed: 3})
	for i := range 2000 {
		if i%3 == 0 {
			b.Malformed(at(i))
		}
		ja, jb := a.NextAt(at(i)), b.NextAt(at(i))
		if !bytes.Equal(ja.AppendJSON(nil), jb.AppendJSON(nil)) {
			t.Fatalf("event %d differs after Malformed calls", i)
		}
	}
}

func TestGenerator_EventsAreValidAndRoundTrip(t *testing.T) {
	g := newGen(t, GeneratorConfig{Seed: 1, LateShare: 0.1})
	at := stepping(time.Millisecond)
	ids := map[string]bool{}
	for i := range 10_000 {
		e := g.NextAt(at(i))
		if err := e.Validate(); err != nil {
			t.Fatalf("event %d invalid: %v\n%s", i, err, e.AppendJSON(nil))
		}
		if ids[e.ID] {
			t.Fatalf("event %d: duplicate id %s", i, e.ID)
		}
		ids[e.ID] = true
		data := e.AppendJSON(nil)
		d, err := event.Decode(data)
		if err != nil {
			t.Fatalf("event %d does not decode: %v\n%s", i, err, data)
		}
		if again := d.AppendJSON(nil); !bytes.Equal(again, data) {
			t.Fatalf("event %d does not round-trip:\n%s\n%s", i, data, again)
		}
		if e.Type != event.TypeAccess && e.PartitionKey() != e.UserID {
			t.Fatalf("event %d: partition key %q, want user %q", i, e.PartitionKey(), e.UserID)
		}
	}
}

func TestGenerator_ClicksFollowPerPlacementCTR(t *testing.T) {
	g := newGen(t, GeneratorConfig{Seed: 11, AccessShare: -1})
	imp, clk := map[string]int{}, map[string]int{}
	for range 150_000 {
		e := g.NextAt(t0)
		switch e.Type {
		case event.TypeImpression:
			imp[e.Placement]++
		case event.TypeClick:
			clk[e.Placement]++
		default:
			t.Fatalf("type %q with AccessShare < 0", e.Type)
		}
	}
	for _, p := range DefaultPlacements {
		got := float64(clk[p.Name]) / float64(imp[p.Name])
		// Binomial standard error, times 4.
		tol := 4 * math.Sqrt(p.CTR*(1-p.CTR)/float64(imp[p.Name]))
		if math.Abs(got-p.CTR) > tol {
			t.Errorf("%s: CTR %.4f over %d impressions, want %.4f ± %.4f", p.Name, got, imp[p.Name], p.CTR, tol)
		}
	}
	total := 0
	for _, n := range imp {
		total += n
	}
	if share := float64(imp["home_feed"]) / float64(total); math.Abs(share-0.5) > 0.01 {
		t.Errorf("home_feed share %.3f, want 0.5", share)
	}
}

func TestGenerator_CacheHitRateFollowsTheConfiguredDrift(t *testing.T) {
	g := newGen(t, GeneratorConfig{Seed: 5, AccessShare: 1, DipEvery: -1})
	peak := t0.Truncate(DefaultHitRatePeriod).Add(DefaultHitRatePeriod / 4) // sin = 1
	trough := peak.Add(DefaultHitRatePeriod / 2)                            // sin = -1
	measure := func(at time.Time) map[string]float64 {
		hits, n := map[string]int{}, map[string]int{}
		for range 60_000 {
			e := g.NextAt(at)
			if e.Type != event.TypeAccess {
				t.Fatalf("type %q with AccessShare 1", e.Type)
			}
			n[e.Route]++
			if e.Cache == "HIT" {
				hits[e.Route]++
			}
		}
		out := map[string]float64{}
		for r := range n {
			out[r] = float64(hits[r]) / float64(n[r])
		}
		return out
	}
	hp, ht := measure(peak), measure(trough)
	for _, r := range []string{"/api/items/:id", "/api/feed", "/api/search", "/static/*path"} {
		for _, c := range []struct {
			at  time.Time
			got float64
		}{{peak, hp[r]}, {trough, ht[r]}} {
			want := g.CacheHitRate(r, c.at)
			if math.Abs(c.got-want) > 0.02 {
				t.Errorf("%s at %s: hit rate %.3f, want %.3f", r, c.at.Format(time.TimeOnly), c.got, want)
			}
		}
	}
	if d := hp["/api/items/:id"] - ht["/api/items/:id"]; math.Abs(d-2*DefaultHitRateSwing) > 0.03 {
		t.Errorf("peak-trough difference %.3f, want about %.2f", d, 2*DefaultHitRateSwing)
	}
	if hp["/api/users/:id"] != 0 || g.CacheHitRate("/api/users/:id", peak) != 0 {
		t.Errorf("uncached route has hits")
	}
}

func TestGenerator_DipsAreOccasionalAndLowerTheHitRate(t *testing.T) {
	g := newGen(t, GeneratorConfig{Seed: 9, HitRateSwing: -1})
	dips, inDip := 0, false
	for m := range 24 * 60 {
		at := t0.Add(time.Duration(m) * time.Minute)
		d := g.InDip(at)
		if d && !inDip {
			dips++
		}
		inDip = d
		want := DefaultHitRate
		if d {
			want -= DefaultDipDepth
		}
		if got := g.BaseHitRate(at); math.Abs(got-want) > 1e-9 {
			t.Fatalf("%s: base hit rate %.3f, want %.3f (dip %v)", at, got, want, d)
		}
	}
	// One dip per 20 minutes on average: 72 a day; allow wide randomness.
	if dips < 40 || dips > 105 {
		t.Errorf("%d dips in a day, want about 72", dips)
	}
	if newGen(t, GeneratorConfig{DipEvery: -1}).InDip(t0) {
		t.Errorf("dip with dips disabled")
	}
}

func TestGenerator_ItemPopularityIsZipf(t *testing.T) {
	g := newGen(t, GeneratorConfig{Seed: 2, AccessShare: -1, Items: 1000})
	counts := map[string]int{}
	n := 0
	for range 100_000 {
		if e := g.NextAt(t0); e.Type == event.TypeImpression {
			counts[e.ItemID]++
			n++
		}
	}
	ranked := make([]int, 0, len(counts))
	for _, c := range counts {
		ranked = append(ranked, c)
	}
	slices.Sort(ranked)
	slices.Reverse(ranked)
	top10 := 0
	for _, c := range ranked[:10] {
		top10 += c
	}
	if share := float64(top10) / float64(n); share < 0.25 {
		t.Errorf("top 10 of 1000 items get %.2f of impressions, want a Zipf head (> 0.25)", share)
	}
	if len(counts) < 300 {
		t.Errorf("only %d distinct items seen: no long tail", len(counts))
	}
}

func TestGenerator_EveryClickFollowsAnImpressionOfTheSameItemAndUser(t *testing.T) {
	g := newGen(t, GeneratorConfig{Seed: 4, AccessShare: -1})
	type key struct{ session, item, placement string }
	shown := map[key]int{}
	lastTS := map[string]time.Time{}
	at := stepping(2 * time.Millisecond)
	for i := range 50_000 {
		e := g.NextAt(at(i))
		k := key{e.SessionID, e.ItemID, e.Placement}
		switch e.Type {
		case event.TypeImpression:
			shown[k]++
		case event.TypeClick:
			if shown[k] == 0 {
				t.Fatalf("event %d: click without an impression of %+v", i, k)
			}
		}
		if e.TS.Before(lastTS[e.UserID+e.SessionID]) {
			t.Fatalf("event %d: session %s goes back in time", i, e.SessionID)
		}
		lastTS[e.UserID+e.SessionID] = e.TS
		if len(e.Features) == 0 || e.Features["cat:"+strings.TrimPrefix(firstCat(e.Features), "cat:")] != 1 {
			t.Fatalf("event %d: features %v lack a cat: feature of weight 1", i, e.Features)
		}
	}
}

func firstCat(f map[string]float64) string {
	for k := range f {
		if strings.HasPrefix(k, "cat:") {
			return k
		}
	}
	return ""
}

func TestGenerator_LateShareMovesThatShareIntoThePast(t *testing.T) {
	g := newGen(t, GeneratorConfig{Seed: 6, LateShare: 0.2})
	late := 0
	const n = 30_000
	for range n {
		e := g.NextAt(t0)
		age := t0.Sub(e.TS)
		if age < 0 || age > DefaultLateMax {
			t.Fatalf("ts %s is %s from now, outside [0, LateMax]", e.TS, age)
		}
		if age >= 30*time.Second {
			late++
		}
	}
	if share := float64(late) / n; math.Abs(share-0.2) > 0.01 {
		t.Errorf("late share %.3f, want 0.2", share)
	}
}

func TestGenerator_AccessLogsLookLikeNginx(t *testing.T) {
	g := newGen(t, GeneratorConfig{Seed: 8, AccessShare: 1})
	class := map[int]int{}
	var lat []float64
	const n = 50_000
	for range n {
		e := g.NextAt(t0)
		class[e.Status/100]++
		lat = append(lat, *e.RequestTimeMS)
		switch e.Route {
		case "/api/users/:id", "/api/events":
			if e.Cache != "-" {
				t.Fatalf("uncached route %s with cache %q", e.Route, e.Cache)
			}
		default:
			if e.Cache == "" || e.Cache == "-" {
				t.Fatalf("cached route %s without a cache status", e.Route)
			}
		}
		if !strings.HasPrefix(e.URI, e.Route[:strings.IndexAny(e.Route+":", ":*?")]) || e.Host == "" || e.Method == "" || *e.RequestTimeMS <= 0 || *e.Bytes < 0 {
			t.Fatalf("implausible access event %s", e.AppendJSON(nil))
		}
	}
	if f := float64(class[2]) / n; f < 0.9 {
		t.Errorf("2xx share %.3f, want most", f)
	}
	for _, c := range []int{3, 4, 5} {
		if class[c] == 0 {
			t.Errorf("no %dxx statuses", c)
		}
	}
	slices.Sort(lat)
	p50, p99 := lat[n/2], lat[n*99/100]
	if p99 < 8*p50 {
		t.Errorf("p99 %.1f ms vs p50 %.1f ms: want a long tail", p99, p50)
	}
}

func TestGenerator_MalformedPayloadsAreRejectedByTheEventContract(t *testing.T) {
	g := newGen(t, GeneratorConfig{Seed: 10})
	flaws := map[string]bool{}
	for i := range 300 {
		data, flaw := g.Malformed(t0)
		flaws[flaw] = true
		if bytes.ContainsAny(data, "\r\n") {
			t.Fatalf("payload %d has a newline: NDJSON could not carry it", i)
		}
		if _, err := event.Decode(data); err == nil {
			t.Fatalf("malformed payload %d (%s) decodes without error: %s", i, flaw, data)
		}
	}
	if len(flaws) != 6 {
		t.Errorf("saw %d kinds of flaw, want 6: %v", len(flaws), flaws)
	}
}

func TestNewGenerator_RejectsInvalidConfig(t *testing.T) {
	for name, cfg := range map[string]GeneratorConfig{
		"zipf ≤ 1":        {ZipfS: 0.9},
		"ctr > 1":         {Placements: []Placement{{Name: "x", Weight: 1, CTR: 1.5}}},
		"zero weights":    {Placements: []Placement{{Name: "x", Weight: 0, CTR: 0.1}}},
		"hit rate > 1":    {HitRate: 1.2},
		"late share > 1":  {LateShare: 2},
		"negative users":  {Users: -1},
		"access share >1": {AccessShare: 1.5},
	} {
		if _, err := NewGenerator(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func BenchmarkGenerator_Next(b *testing.B) {
	g := newGen(b, GeneratorConfig{Seed: 1})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = g.NextAt(t0.Add(time.Duration(i) * time.Microsecond))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkGenerator_NextEncoded(b *testing.B) {
	g := newGen(b, GeneratorConfig{Seed: 1})
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e := g.NextAt(t0.Add(time.Duration(i) * time.Microsecond))
		buf = e.AppendJSON(buf[:0])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
