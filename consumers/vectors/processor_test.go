package vectors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The SDK's HTTP transport keeps idle connections to DynamoDB Local.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		// kpl.VerifyChecksums's MD5 server, kept for the process.
		goleak.IgnoreTopFunction("github.com/minio/md5-simd.(*md5Server).process"),
	)
}

var testNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// rec builds a good record at sequence seq.
func rec(seq int, typ, user string, ts time.Time, feats map[string]float64) consumers.Record {
	return consumers.Record{
		Position:     consumers.Position{SequenceNumber: fmt.Sprintf("4960%052d", seq)},
		ShardID:      "shardId-000000000000",
		PartitionKey: user,
		ArrivalTime:  ts.Add(time.Second),
		Event:        event.Event{V: 1, ID: fmt.Sprint(seq), Type: typ, TS: ts, UserID: user, Features: feats},
	}
}

func batchOf(recs ...consumers.Record) consumers.Batch {
	return consumers.Batch{ShardID: "shardId-000000000000", Records: recs, Now: testNow}
}

func mustProcessor(t testing.TB, st store, cfg Config) *Processor {
	t.Helper()
	p, err := newProcessor(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func open(t testing.TB, p *Processor) consumers.ShardProcessor {
	t.Helper()
	sp, err := p.OpenShard(context.Background(), consumers.Shard{ID: "shardId-000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func vec(t testing.TB, st *memStore, user string) map[string][2]float64 {
	t.Helper()
	it := st.snapshot(user)
	if it == nil {
		t.Fatalf("no vector for %s", user)
	}
	v, err := vectorOf(it, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2]float64{}
	for _, f := range v.Features {
		out[f.Name] = [2]float64{f.Clicks, f.Impressions}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))+1e-15 }

func TestProcess_AppliesClicksAndImpressionsAndIgnoresEverythingElse(t *testing.T) {
	st := newMemStore()
	p := mustProcessor(t, st, Config{})
	sp := open(t, p)
	day := 7 * 24 * time.Hour
	bad := rec(3, event.TypeClick, "u1", testNow, map[string]float64{"x": 100})
	bad.Err = &event.Error{Field: "user_id", Reason: "required for type click"}
	b := batchOf(
		rec(1, event.TypeClick, "u1", testNow, map[string]float64{"cat:sports": 1, "tag:soccer": 0.5}),
		rec(2, event.TypeImpression, "u1", testNow.Add(-day), map[string]float64{"cat:sports": 2}),
		bad,
		rec(4, event.TypeAccess, "u1", testNow, map[string]float64{"x": 100}),
		rec(5, "purchase", "u1", testNow, map[string]float64{"x": 100}),
		rec(6, event.TypeClick, "u2", testNow.Add(-2*day), map[string]float64{"cat:news": 4}),
	)
	pos, err := sp.Process(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if pos != b.Last() {
		t.Fatalf("durable position %v, want the batch's last %v", pos, b.Last())
	}
	u1 := vec(t, st, "u1")
	if len(u1) != 2 || !near(u1["cat:sports"][0], 1) || !near(u1["cat:sports"][1], 1) || !near(u1["tag:soccer"][0], 0.5) || u1["tag:soccer"][1] != 0 {
		t.Errorf("u1 = %v", u1)
	}
	if u2 := vec(t, st, "u2"); !near(u2["cat:news"][0], 1) {
		t.Errorf("u2 = %v, want clicks 4·2^-2 = 1", u2)
	}
	if it := st.snapshot("u1"); it.Events != 2 {
		t.Errorf("u1 events %d, want 2", it.Events)
	}
	if got, _ := sp.Flush(context.Background()); got != b.Last() {
		t.Errorf("Flush = %v, want %v", got, b.Last())
	}
	if pos, err := sp.Process(context.Background(), consumers.Batch{ShardID: b.ShardID, Now: testNow}); err != nil || !pos.IsZero() {
		t.Errorf("empty batch: %v, %v; want zero position", pos, err)
	}
}

func TestProcess_ReplayedBatchChangesNothing(t *testing.T) {
	st := newMemStore()
	p := mustProcessor(t, st, Config{})
	sp := open(t, p)
	var recs []consumers.Record
	for i := range 50 {
		recs = append(recs, rec(i+1, event.TypeClick, fmt.Sprintf("u%d", i%7), testNow.Add(-time.Duration(i)*time.Hour), map[string]float64{"f": 1}))
	}
	if _, err := sp.Process(context.Background(), batchOf(recs...)); err != nil {
		t.Fatal(err)
	}
	before := map[string]map[string][2]float64{}
	for u := range 7 {
		before[fmt.Sprintf("u%d", u)] = vec(t, st, fmt.Sprintf("u%d", u))
	}
	adds := st.count("add")
	// The same records, cut differently, through a fresh shard processor (a restart).
	sp2 := open(t, mustProcessor(t, st, Config{}))
	for _, cut := range [][2]int{{0, 13}, {13, 14}, {14, 50}} {
		if _, err := sp2.Process(context.Background(), batchOf(recs[cut[0]:cut[1]]...)); err != nil {
			t.Fatal(err)
		}
	}
	for u, want := range before {
		got := vec(t, st, u)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s changed by the replay: %v -> %v", u, want, got)
		}
	}
	if st.count("put") != 7 {
		t.Errorf("puts %d: a replay must not rewrite", st.count("put"))
	}
	t.Logf("replay cost %d failed conditional ADDs, no writes", st.count("add")-adds)
}

// The guard is per event: a replay that overlaps the applied part applies
// exactly the newer events.
func TestProcess_ReplayOverlappingTheGuardAppliesOnlyNewerEvents(t *testing.T) {
	st := newMemStore()
	sp := open(t, mustProcessor(t, st, Config{}))
	recs := []consumers.Record{
		rec(1, event.TypeClick, "u", testNow, map[string]float64{"a": 1}),
		rec(2, event.TypeClick, "u", testNow, map[string]float64{"a": 10}),
		rec(3, event.TypeClick, "u", testNow, map[string]float64{"a": 100}),
		rec(4, event.TypeClick, "u", testNow, map[string]float64{"a": 1000}),
	}
	if _, err := sp.Process(context.Background(), batchOf(recs[:2]...)); err != nil {
		t.Fatal(err)
	}
	// Crash before the checkpoint; the replay's batch spans old and new events.
	if _, err := sp.Process(context.Background(), batchOf(recs...)); err != nil {
		t.Fatal(err)
	}
	if got := vec(t, st, "u")["a"][0]; !near(got, 1111) {
		t.Fatalf("clicks %v, want 1111", got)
	}
	if n := st.snapshot("u").Events; n != 4 {
		t.Fatalf("events %d, want 4", n)
	}
}

// The Lambda adapter and the runtime cut the same records differently; the
// vectors must agree.
func TestProcess_SameVectorsWhateverTheBatchBoundaries(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var recs []consumers.Record
	for i := range 2000 {
		typ := event.TypeImpression
		if r.IntN(5) == 0 {
			typ = event.TypeClick
		}
		recs = append(recs, rec(i+1, typ, fmt.Sprintf("u%d", zipfish(r, 50)),
			testNow.Add(-time.Duration(r.Int64N(int64(200*24*time.Hour)))),
			map[string]float64{fmt.Sprintf("f%d", zipfish(r, 40)): 1 + r.Float64()}))
	}
	run := func(maxBatch int) *memStore {
		st := newMemStore()
		sp := open(t, mustProcessor(t, st, Config{}))
		for i := 0; i < len(recs); {
			n := 1 + r.IntN(maxBatch)
			if _, err := sp.Process(context.Background(), batchOf(recs[i:min(len(recs), i+n)]...)); err != nil {
				t.Fatal(err)
			}
			i += n
		}
		return st
	}
	a, b := run(1000), run(3)
	for u := range 50 {
		user := fmt.Sprintf("u%d", u)
		if a.snapshot(user) == nil {
			continue
		}
		va, vb := vec(t, a, user), vec(t, b, user)
		for name, x := range va {
			if y := vb[name]; !near(x[0], y[0]) || !near(x[1], y[1]) {
				t.Errorf("%s %s: %v vs %v", user, name, x, y)
			}
		}
		if len(va) != len(vb) {
			t.Errorf("%s: %d vs %d features", user, len(va), len(vb))
		}
	}
}

func TestProcess_PartialFailureNamesFirstRecordOfEarliestFailedUser(t *testing.T) {
	st := newMemStore()
	boom := errors.New("injected")
	var failing atomic.Value
	failing.Store("u2")
	st.hook = func(op, user string) error {
		if user == failing.Load().(string) {
			return boom
		}
		return nil
	}
	sp := open(t, mustProcessor(t, st, Config{Concurrency: 4}))
	b := batchOf(
		rec(1, event.TypeClick, "u1", testNow, map[string]float64{"a": 1}),
		rec(2, event.TypeAccess, "", testNow, nil),
		rec(3, event.TypeClick, "u2", testNow, map[string]float64{"a": 1}), // u2's first record
		rec(4, event.TypeClick, "u1", testNow, map[string]float64{"a": 1}),
		rec(5, event.TypeClick, "u3", testNow, map[string]float64{"a": 1}),
		rec(6, event.TypeClick, "u2", testNow, map[string]float64{"a": 1}),
	)
	pos, err := sp.Process(context.Background(), b)
	var be *consumers.BatchError
	if !errors.As(err, &be) || be.Index != 2 || !errors.Is(err, boom) {
		t.Fatalf("err = %v, want a BatchError at index 2 (u2's first record) wrapping the cause", err)
	}
	if pos != b.Records[1].Position {
		t.Fatalf("durable position %v, want record 1's", pos)
	}
	if vec(t, st, "u1")["a"][0] != 2 {
		t.Errorf("u1 (before the index) must be durable: %v", vec(t, st, "u1"))
	}
	// The runtime retries from the index; u1's record 4 and (maybe) u3 are
	// replayed and skipped by their guards.
	failing.Store("")
	if _, err := sp.Process(context.Background(), batchOf(b.Records[be.Index:]...)); err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]float64{"u1": 2, "u2": 2, "u3": 1} {
		if got := vec(t, st, user)["a"][0]; !near(got, want) {
			t.Errorf("%s clicks %v, want %v", user, got, want)
		}
	}
}

func TestProcess_ThrottlingIsRetriedUntilItSucceeds(t *testing.T) {
	st := newMemStore()
	var calls atomic.Int64
	st.hook = func(op, user string) error {
		if calls.Add(1)%3 != 0 { // two of three calls throttled
			return &types.ProvisionedThroughputExceededException{Message: aws.String("injected")}
		}
		return nil
	}
	reg := prometheus.NewRegistry()
	sp := open(t, mustProcessor(t, st, Config{Registerer: reg, RetryBase: time.Millisecond, RetryMax: 2 * time.Millisecond}))
	var recs []consumers.Record
	for i := range 20 {
		recs = append(recs, rec(i+1, event.TypeClick, fmt.Sprintf("u%d", i%5), testNow, map[string]float64{"a": 1}))
	}
	if _, err := sp.Process(context.Background(), batchOf(recs...)); err != nil {
		t.Fatal(err)
	}
	for u := range 5 {
		if got := vec(t, st, fmt.Sprintf("u%d", u))["a"][0]; !near(got, 4) {
			t.Errorf("u%d clicks %v, want 4", u, got)
		}
	}
	if n := counterValue(t, reg, "clickstream_vectors_retries_total", "throttle"); n < 10 {
		t.Errorf("throttle retries counted %v, want ≥ 10", n)
	}
}

func TestProcess_PersistentThrottlingFailsTheBatchAfterMaxAttempts(t *testing.T) {
	st := newMemStore()
	st.hook = func(op, user string) error {
		return &types.ProvisionedThroughputExceededException{Message: aws.String("injected")}
	}
	sp := open(t, mustProcessor(t, st, Config{MaxAttempts: 3, RetryBase: time.Millisecond, RetryMax: time.Millisecond}))
	_, err := sp.Process(context.Background(), batchOf(rec(1, event.TypeClick, "u", testNow, map[string]float64{"a": 1})))
	var be *consumers.BatchError
	if !errors.As(err, &be) || be.Index != 0 {
		t.Fatalf("err = %v, want BatchError at 0", err)
	}
	if n := st.count("add"); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
}

func TestProcess_WritesUsersInParallelWithinTheConcurrencyBound(t *testing.T) {
	st := newMemStore()
	var inFlight, peak atomic.Int64
	var mu sync.Mutex
	st.hook = func(op, user string) error {
		n := inFlight.Add(1)
		mu.Lock()
		peak.Store(max(peak.Load(), n))
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		inFlight.Add(-1)
		return nil
	}
	p := mustProcessor(t, st, Config{Concurrency: 5})
	// Two shards at once share the process-wide bound.
	var wg sync.WaitGroup
	for s := range 2 {
		wg.Go(func() {
			sp, _ := p.OpenShard(context.Background(), consumers.Shard{ID: fmt.Sprint("shard-", s)})
			var recs []consumers.Record
			for i := range 60 {
				recs = append(recs, rec(i+1, event.TypeClick, fmt.Sprintf("s%d-u%d", s, i), testNow, map[string]float64{"a": 1}))
			}
			if _, err := sp.Process(context.Background(), batchOf(recs...)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := peak.Load(); got > 5 || got < 3 {
		t.Errorf("peak in-flight writes %d, want 3..5 (parallel, bounded by 5)", got)
	}
}

func TestProcess_FeatureCapPrunesTheWeakest(t *testing.T) {
	st := newMemStore()
	sp := open(t, mustProcessor(t, st, Config{MaxFeatures: 10}))
	seq := 0
	next := func(user string, feats map[string]float64) consumers.Record {
		seq++
		return rec(seq, event.TypeClick, user, testNow, feats)
	}
	// Eight strong features (under the 9 a prune keeps), then a stream of weak ones.
	strong := map[string]float64{}
	for i := range 8 {
		strong[fmt.Sprintf("strong%d", i)] = 100 + float64(i)
	}
	if _, err := sp.Process(context.Background(), batchOf(next("u", strong))); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if _, err := sp.Process(context.Background(), batchOf(next("u", map[string]float64{fmt.Sprintf("weak%d", i): 0.01}))); err != nil {
			t.Fatal(err)
		}
		if n := st.snapshot("u").features(); n > 10 {
			t.Fatalf("%d features stored, cap 10", n)
		}
	}
	v := vec(t, st, "u")
	for name, w := range strong {
		if !near(v[name][0], w) {
			t.Errorf("strong feature %s = %v, want %v (kept exactly)", name, v[name], w)
		}
	}
	// One event with more features than the cap at once.
	many := map[string]float64{}
	for i := range 25 {
		many[fmt.Sprintf("burst%02d", i)] = float64(i)
	}
	if _, err := sp.Process(context.Background(), batchOf(next("u", many))); err != nil {
		t.Fatal(err)
	}
	v = vec(t, st, "u")
	if len(v) != 9 { // pruned to 90% of 10
		t.Errorf("%d features after a burst, want 9: %v", len(v), v)
	}
	for i := range 8 {
		if _, ok := v[fmt.Sprintf("strong%d", i)]; !ok {
			t.Errorf("strong%d pruned before weaker ones: %v", i, v)
		}
	}
	if _, ok := v["burst24"]; !ok {
		t.Errorf("the strongest new feature must displace the weak ones: %v", v)
	}
}

func TestProcess_SkipsInvalidFeaturesAndKeepsTheRest(t *testing.T) {
	st := newMemStore()
	reg := prometheus.NewRegistry()
	sp := open(t, mustProcessor(t, st, Config{Registerer: reg, MaxFeatureNameBytes: 8}))
	_, err := sp.Process(context.Background(), batchOf(rec(1, event.TypeClick, "u", testNow, map[string]float64{
		"ok": 1, "": 1, "much-too-long": 1, "huge": 1e300, "neg": -2,
	})))
	if err != nil {
		t.Fatal(err)
	}
	v := vec(t, st, "u")
	if len(v) != 2 || !near(v["ok"][0], 1) || !near(v["neg"][0], -2) {
		t.Errorf("vector %v, want ok and neg only", v)
	}
	for reason, want := range map[string]float64{"empty_name": 1, "name_too_long": 1, "weight_out_of_range": 1} {
		if got := counterValue(t, reg, "clickstream_vectors_features_skipped_total", reason); got != want {
			t.Errorf("skipped[%s] = %v, want %v", reason, got, want)
		}
	}
}

func TestProcess_ClampsEventTimesFarAfterArrival(t *testing.T) {
	st := newMemStore()
	sp := open(t, mustProcessor(t, st, Config{}))
	r := rec(1, event.TypeClick, "u", testNow.AddDate(10, 0, 0), map[string]float64{"a": 1})
	r.ArrivalTime = testNow
	if _, err := sp.Process(context.Background(), batchOf(r)); err != nil {
		t.Fatal(err)
	}
	// Treated as at arrival + 1h: decayed to now it is 2^(1h/168h).
	if got, want := vec(t, st, "u")["a"][0], math.Exp2(1.0/168); !near(got, want) {
		t.Errorf("clicks %v, want %v", got, want)
	}
}

func TestProcess_HalfLifeMismatchIsAnError(t *testing.T) {
	st := newMemStore()
	if _, err := open(t, mustProcessor(t, st, Config{HalfLife: time.Hour})).Process(context.Background(),
		batchOf(rec(1, event.TypeClick, "u", testNow, map[string]float64{"a": 1}))); err != nil {
		t.Fatal(err)
	}
	_, err := open(t, mustProcessor(t, st, Config{HalfLife: 2 * time.Hour})).Process(context.Background(),
		batchOf(rec(2, event.TypeClick, "u", testNow, map[string]float64{"a": 1})))
	if !errors.Is(err, ErrHalfLifeMismatch) || !strings.Contains(err.Error(), "1h0m0s") {
		t.Fatalf("err = %v, want ErrHalfLifeMismatch naming both", err)
	}
}

func TestConfig_RejectsItemsThatCouldExceed400KB(t *testing.T) {
	for _, c := range []Config{
		{MaxFeatures: 5000},
		{MaxFeatures: 1000, MaxFeatureNameBytes: 1024},
		{HalfLife: -time.Hour},
		{MaxWeight: math.Inf(1)},
		{RetryBase: time.Second, RetryMax: time.Millisecond},
	} {
		if _, err := New(nil, c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	if _, err := New(nil, Config{}); err != nil {
		t.Errorf("defaults rejected: %v", err)
	}
}

// counterValue returns the value of the counter name{…=label} in reg.
func counterValue(t testing.TB, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" && len(m.GetLabel()) == 0 {
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestProcess_CoalesceHoldsBatchesAndWritesEachUserOnceForAll(t *testing.T) {
	st := newMemStore()
	sp := open(t, mustProcessor(t, st, Config{Coalesce: 150 * time.Millisecond}))
	ctx := context.Background()
	var last consumers.Position
	for i := range 10 { // 10 small deliveries of the same two users
		b := batchOf(rec(2*i+1, event.TypeClick, "u1", testNow, map[string]float64{"f": 1}),
			rec(2*i+2, event.TypeClick, "u2", testNow, map[string]float64{"f": 1}))
		pos, err := sp.Process(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if pos.After(last) {
			t.Fatalf("delivery %d: reported %v durable while its records are held", i, pos)
		}
		last = b.Last()
	}
	if n := st.count("add") + st.count("put"); n != 0 {
		t.Fatalf("%d writes while held", n)
	}
	time.Sleep(150 * time.Millisecond)
	pos, err := sp.Process(ctx, batchOf()) // an idle tick after the window
	if err != nil || pos != last {
		t.Fatalf("after the window: durable %v (%v), want %v", pos, err, last)
	}
	if n := st.count("add") + st.count("put"); n > 4 { // one per user; a new user's create may add one
		t.Fatalf("%d writes for 2 users, want one each", n)
	}
	if v := vec(t, st, "u1"); v["f"][0] < 9.99 || v["f"][0] > 10.01 {
		t.Fatalf("u1's clicks %v, want 10", v["f"])
	}
	// Flush writes what is held, at once.
	b := batchOf(rec(21, event.TypeClick, "u1", testNow, map[string]float64{"f": 1}))
	if _, err := sp.Process(ctx, b); err != nil {
		t.Fatal(err)
	}
	if pos, err := sp.Flush(ctx); err != nil || pos != b.Last() {
		t.Fatalf("flush: durable %v (%v), want %v", pos, err, b.Last())
	}
}
