package vectors

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers/leases"
)

const hour = int64(time.Hour / time.Millisecond)

func TestGridLandmark_IsTheGridPointAtOrBelow(t *testing.T) {
	if t0ms != time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() {
		t.Fatal("T0 must be 2020-01-01T00:00:00Z")
	}
	hl := 168 * hour
	step := hl * EpochHalfLives
	for _, tc := range []struct {
		ts, want int64
	}{
		{t0ms, t0ms},
		{t0ms + 1, t0ms},
		{t0ms + step - 1, t0ms},
		{t0ms + step, t0ms + step},
		{t0ms - 1, t0ms - step},
		{t0ms - step, t0ms - step},
		{0, t0ms - ((t0ms+step-1)/step)*step},
	} {
		if got := gridLandmark(tc.ts, hl); got != tc.want {
			t.Errorf("gridLandmark(%d) = %d, want %d", tc.ts, got, tc.want)
		}
		if got := gridLandmark(tc.ts, hl); got > tc.ts || tc.ts-got >= step {
			t.Errorf("gridLandmark(%d) = %d: not the grid point at or below", tc.ts, got)
		}
	}
}

func TestFixed_ValuesAreExactDynamoDBNumbersWithin38Digits(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		v := math.Exp2(r.Float64()*140-80) * (r.Float64() + 0.5)
		if r.IntN(2) == 0 {
			v = -v
		}
		s, zero, sat := fixed(v)
		d, err := parseDec(s)
		if err != nil {
			t.Fatalf("fixed(%g) = %q: %v", v, s, err)
		}
		if err := d.check(); err != nil {
			t.Fatalf("fixed(%g) = %q: %v", v, s, err)
		}
		if d.mant.Sign() != 0 && d.exp < -FractionDigits {
			t.Fatalf("fixed(%g) = %q: finer than 1e-%d", v, s, FractionDigits)
		}
		switch {
		case sat:
			if math.Abs(v) < maxStored {
				t.Fatalf("fixed(%g) saturated", v)
			}
		case zero:
			if math.Abs(v) > 0.5e-20 {
				t.Fatalf("fixed(%g) = 0", v)
			}
		default:
			if got := d.float(); math.Abs(got-v) > 0.5e-20+math.Abs(v)*1e-15 {
				t.Fatalf("fixed(%g) = %q, off by %g", v, s, got-v)
			}
		}
	}
	// The point of the scheme: sums of any stored values stay exact.
	a, _ := parseDec("999999999999999998.12345678901234567891")
	b, _ := parseDec("0.00000000000000000009")
	if err := a.add(b).check(); err != nil {
		t.Fatalf("sum of two fixed values: %v", err)
	}
	c, _ := parseDec("1.5")
	e, _ := parseDec("1.2345678901234567e-30")
	if err := c.add(e).check(); err == nil {
		t.Fatal("memStore must reject inexact sums, as DynamoDB does")
	}
}

func TestGuard_EncodingOrdersLikePositions(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var ps []leases.Position
	for range 2000 {
		n := 1 + r.IntN(60)
		var b strings.Builder
		b.WriteByte(byte('1' + r.IntN(9)))
		for range n - 1 {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		ps = append(ps, leases.Position{SequenceNumber: b.String(), SubSequence: int64(r.IntN(3) * r.IntN(100000))})
	}
	ps = append(ps, leases.Position{SequenceNumber: "0"}, leases.Position{SequenceNumber: strings.Repeat("9", 129), SubSequence: math.MaxInt64})
	for i := range ps {
		gi := encodeGuard(ps[i])
		back, err := decodeGuard(gi)
		if err != nil || back.Compare(ps[i]) != 0 {
			t.Fatalf("round trip %v: %v, %v", ps[i], back, err)
		}
		j := r.IntN(len(ps))
		gj := encodeGuard(ps[j])
		if want, got := ps[i].Compare(ps[j]), strings.Compare(gi, gj); want != got {
			t.Fatalf("order of %v vs %v: strings say %d, positions %d", ps[i], ps[j], got, want)
		}
	}
	for _, bad := range []string{"", "x", "003123.0000000000000000001x", "005123.0000000000000000001"} {
		if _, err := decodeGuard(bad); err == nil {
			t.Errorf("decodeGuard(%q) accepted", bad)
		}
	}
}

// simEvent is one event of a simulated shard.
type simEvent struct {
	user string
	ev   ev
	w    map[string]float64 // == ev.features
}

// simStream generates n events for users, shard-ordered positions, event
// times spread over span before end and shuffled (out of order).
func simStream(r *rand.Rand, n, users, features int, end time.Time, span time.Duration) []simEvent {
	out := make([]simEvent, n)
	for i := range out {
		fs := map[string]float64{}
		for range 1 + r.IntN(4) {
			fs[fmt.Sprintf("f%02d", zipfish(r, features))] = 0.01 + r.Float64()*10
		}
		ts := end.Add(-time.Duration(r.Int64N(int64(span)))).UnixMilli()
		out[i] = simEvent{
			user: fmt.Sprintf("u%03d", zipfish(r, users)),
			ev: ev{
				pos:   leases.Position{SequenceNumber: fmt.Sprintf("4960%052d", 1000+i/3), SubSequence: int64(i % 3)},
				ts:    ts,
				click: r.IntN(4) == 0,
			},
			w: fs,
		}
		out[i].ev.features = fs
	}
	return out
}

// zipfish draws from 0..n-1 with a heavy head.
func zipfish(r *rand.Rand, n int) int {
	return int(math.Floor(math.Pow(float64(n), r.Float64()))) - 1
}

// applyBatch groups a batch by user in shard order and applies each user's
// events with w, like the processor does.
func applyBatch(t testing.TB, w *writer, shard string, batch []simEvent) map[writeKind]int {
	t.Helper()
	byUser := map[string][]ev{}
	var order []string
	for _, e := range batch {
		if _, ok := byUser[e.user]; !ok {
			order = append(order, e.user)
		}
		byUser[e.user] = append(byUser[e.user], e.ev)
	}
	kinds := map[writeKind]int{}
	for _, u := range order {
		res, err := w.apply(context.Background(), shard, u, byUser[u], u[len(u)-1]%2 == 0) // both first moves
		if err != nil {
			t.Fatalf("apply %s: %v", u, err)
		}
		kinds[res.kind]++
	}
	return kinds
}

// direct computes Σ w·2^(−(at−ts)/H) per user and feature, clicks and
// impressions, in big.Float (the reference must be better than what it judges).
func direct(evs []simEvent, at int64, hl int64) map[string]map[string][2]float64 {
	type acc struct{ c, i *big.Float }
	sums := map[string]map[string]*acc{}
	for _, e := range evs {
		if sums[e.user] == nil {
			sums[e.user] = map[string]*acc{}
		}
		f := math.Exp2(-float64(at-e.ev.ts) / float64(hl))
		for name, w := range e.w {
			a := sums[e.user][name]
			if a == nil {
				a = &acc{new(big.Float).SetPrec(200), new(big.Float).SetPrec(200)}
				sums[e.user][name] = a
			}
			term := new(big.Float).SetPrec(200).SetFloat64(w)
			term.Mul(term, new(big.Float).SetFloat64(f))
			if e.ev.click {
				a.c.Add(a.c, term)
			} else {
				a.i.Add(a.i, term)
			}
		}
	}
	out := map[string]map[string][2]float64{}
	for u, m := range sums {
		out[u] = map[string][2]float64{}
		for name, a := range m {
			c, _ := a.c.Float64()
			i, _ := a.i.Float64()
			out[u][name] = [2]float64{c, i}
		}
	}
	return out
}

// checkVectors compares every stored vector with the direct computation:
// relative error ≤ 1e-9 for every value ≥ 1e-6 at the user's landmark, and
// an absolute error within the fixed-point resolution below that.
func checkVectors(t *testing.T, st *memStore, evs []simEvent, at int64, hl int64) (checked, fine int) {
	t.Helper()
	want := direct(evs, at, hl)
	for user, feats := range want {
		it := st.snapshot(user)
		if it == nil {
			t.Fatalf("user %s missing", user)
		}
		vec, err := vectorOf(it, time.UnixMilli(at), 0)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][2]float64{}
		for _, f := range vec.Features {
			got[f.Name] = [2]float64{f.Clicks, f.Impressions}
		}
		toLandmark := growth(it.Landmark, at, hl) // value(at) = stored · this
		for name, w := range feats {
			g := got[name]
			for k := range 2 {
				checked++
				errAbs := math.Abs(g[k] - w[k])
				stored := w[k] / toLandmark
				if math.Abs(stored) >= 1e-6 {
					fine++
					if errAbs > 1e-9*math.Abs(w[k]) {
						t.Errorf("user %s feature %s [%d]: got %.17g, want %.17g (relative error %.3g)",
							user, name, k, g[k], w[k], errAbs/math.Abs(w[k]))
					}
				} else if errAbs > 1e-18*toLandmark+1e-9*math.Abs(w[k]) {
					t.Errorf("user %s feature %s [%d]: got %.17g, want %.17g: beyond the 1e-20 resolution", user, name, k, g[k], w[k])
				}
			}
		}
		if len(got) > len(feats) {
			t.Errorf("user %s: %d features stored, %d expected", user, len(got), len(feats))
		}
		var n int64
		for _, e := range evs {
			if e.user == user {
				n++
			}
		}
		if vec.Events != n {
			t.Errorf("user %s: events %d, want %d", user, vec.Events, n)
		}
	}
	return checked, fine
}

func newTestWriter(st store, hl int64, maxFeatures int) *writer {
	return &writer{
		st: st, halfLife: hl, maxFeatures: maxFeatures, pruneTo: pruneTo(maxFeatures), maxRounds: DefaultMaxRounds,
		retry: retryPolicy{maxAttempts: 3, base: time.Millisecond, max: time.Millisecond, retryable: func(error) bool { return false }},
	}
}

// TestDecay_RandomEventSetsMatchDirectComputation is the acceptance test of
// the decay maths: random event sets, out of order in event time, spanning
// from hours to years (landmark rebases), cut into random batches with
// crash-style replays that cut the stream differently, applied through the
// real write protocol on a store with DynamoDB's exact-decimal rules.
func TestDecay_RandomEventSetsMatchDirectComputation(t *testing.T) {
	end := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i, tc := range []struct {
		span time.Duration
		hl   time.Duration
	}{
		{6 * time.Hour, 168 * time.Hour},
		{90 * 24 * time.Hour, 168 * time.Hour},
		{3 * 365 * 24 * time.Hour, 168 * time.Hour},
		{10 * 365 * 24 * time.Hour, 168 * time.Hour},
		{30 * 24 * time.Hour, time.Hour},
		{2 * 365 * 24 * time.Hour, 30 * 24 * time.Hour},
	} {
		t.Run(fmt.Sprintf("span=%v/H=%v", tc.span, tc.hl), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(i), 42))
			hl := tc.hl.Milliseconds()
			evs := simStream(r, 3000, 40, 30, end, tc.span)
			st := newMemStore()
			w := newTestWriter(st, hl, 10000)
			kinds := map[writeKind]int{}
			replays := 0
			for cur := 0; cur < len(evs); {
				n := 1 + r.IntN(200)
				hi := min(len(evs), cur+n)
				for k, v := range applyBatch(t, w, "shardId-000000000001", evs[cur:hi]) {
					kinds[k] += v
				}
				if r.IntN(5) == 0 && replays < 30 { // "crash": resume from an earlier checkpoint
					replays++
					cur = max(0, cur-r.IntN(300))
					continue
				}
				cur = hi
			}
			at := end.Add(time.Duration(r.Int64N(int64(48 * time.Hour)))).UnixMilli()
			checked, fine := checkVectors(t, st, evs, at, hl)
			t.Logf("writes %v, %d replays; %d values checked, %d at relative 1e-9", kinds, replays, checked, fine)
			if kinds[kindNoop] == 0 || kinds[kindAdd] == 0 || kinds[kindCreate] == 0 {
				t.Errorf("the run did not exercise replays, ADDs and creates: %v", kinds)
			}
			if tc.span > 100*24*time.Hour && tc.hl == 168*time.Hour && kinds[kindRewrite] == 0 {
				t.Errorf("a multi-year span must rebase landmarks: %v", kinds)
			}
		})
	}
}

// Event order in the shard is independent of event time: applying the same
// events in shard order, reversed, or shuffled gives the same vector.
func TestDecay_OrderOfArrivalDoesNotMatter(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	end := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	base := simStream(r, 1500, 5, 20, end, 400*24*time.Hour)
	hl := (168 * time.Hour).Milliseconds()
	at := end.UnixMilli()
	var results []*Vector
	for variant := range 3 {
		evs := slices.Clone(base)
		switch variant {
		case 1:
			slices.Reverse(evs)
		case 2:
			r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		}
		for i := range evs { // re-number: positions follow arrival order
			evs[i].ev.pos = leases.Position{SequenceNumber: fmt.Sprintf("4960%052d", 1000+i)}
		}
		st := newMemStore()
		w := newTestWriter(st, hl, 10000)
		for cur := 0; cur < len(evs); cur += 50 {
			applyBatch(t, w, "s", evs[cur:min(len(evs), cur+50)])
		}
		checkVectors(t, st, evs, at, hl)
		v, err := vectorOf(st.snapshot("u000"), time.UnixMilli(at), 0)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, v)
	}
	for _, v := range results[1:] {
		for i, f := range v.Features {
			g := results[0].Features[i]
			if f.Name != g.Name || math.Abs(f.Clicks-g.Clicks) > 1e-12*math.Abs(g.Clicks) {
				t.Fatalf("arrival order changed the vector: %+v vs %+v", f, g)
			}
		}
	}
}

func TestDecay_TenYearsOfDailyEventsNeverOverflows(t *testing.T) {
	hl := (168 * time.Hour).Milliseconds()
	st := newMemStore()
	w := newTestWriter(st, hl, 100)
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var all []simEvent
	for day := range 3650 {
		ts := start.Add(time.Duration(day) * 24 * time.Hour).UnixMilli()
		e := simEvent{user: "u", w: map[string]float64{"steady": 1, fmt.Sprintf("y%d", day/365): 2}}
		e.ev = ev{pos: leases.Position{SequenceNumber: fmt.Sprintf("%d", 1_000_000+day)}, ts: ts, click: true, features: e.w}
		all = append(all, e)
		applyBatch(t, w, "s", []simEvent{e})
	}
	end := start.Add(3650 * 24 * time.Hour).UnixMilli()
	checkVectors(t, st, all, end, hl)
	it := st.snapshot("u")
	// Steady state of one weight-1 click a day: Σ 2^(−k/7) ≈ 1/(1−2^(−1/7)).
	want := 1 / (1 - math.Exp2(-1.0/7)) * math.Exp2(-1.0/7)
	got, _ := vectorOf(it, time.UnixMilli(end), 0)
	for _, f := range got.Features {
		if f.Name == "steady" && math.Abs(f.Clicks-want) > 1e-9*want {
			t.Errorf("steady state %v, want %v", f.Clicks, want)
		}
		if f.Clicks > 1e6 {
			t.Errorf("%s = %g: values must not grow with time", f.Name, f.Clicks)
		}
	}
	for k, v := range it.Clicks {
		if math.Abs(v) > 1e4 {
			t.Errorf("stored %s = %g: landmark rebasing failed", k, v)
		}
	}
}
