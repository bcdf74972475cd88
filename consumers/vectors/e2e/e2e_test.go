package e2e

import (
	"context"
	"fmt"
	"github.com/clickstream-go/clickstream/consumers/vectors"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/producers"
)

// stack is one end-to-end test's private stream, lease table and vectors table.
type stack struct {
	c          *awsx.Clients
	stream     string
	leaseTable string
	table      string
}

func newStack(t testing.TB, shards int) *stack {
	t.Helper()
	c := testenv.Clients(t)
	return &stack{
		c: c, stream: testenv.Stream(t, c, shards),
		leaseTable: testenv.Table(t, c, setup.LeasesTable),
		table:      testenv.Table(t, c, setup.VectorsTable),
	}
}

// runnerConfig is a runtime config with test-speed lease timings.
func runnerConfig(c *awsx.Clients, stream, leaseTable string, p consumers.Processor, owner string) consumers.Config {
	return consumers.Config{
		Stream: stream, Processor: p, Kinesis: c.Kinesis,
		Leases:     leases.NewDynamoStore(c.DynamoDB, leaseTable),
		DeadLetter: consumers.NewMemoryDeadLetter(), Owner: owner,
		LeaseDuration: 1500 * time.Millisecond, RenewInterval: 300 * time.Millisecond,
		ShardSyncInterval: time.Second, PollInterval: 100 * time.Millisecond, IdleInterval: 150 * time.Millisecond,
		MaxBackoff: 500 * time.Millisecond, ShutdownTimeout: 10 * time.Second,
	}
}

// runRunner starts a runner; the returned func stops it gracefully.
func runRunner(t testing.TB, cfg consumers.Config) func() {
	t.Helper()
	r, err := consumers.NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("runner did not stop in 30s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// genEvents makes n click/impression events for users with event times
// spread (out of order) over span before end, plus a few access events and
// malformed records that vectors must ignore.
func genEvents(seed uint64, n, users int, end time.Time, span time.Duration) []event.Event {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([]event.Event, n)
	for i := range out {
		typ := event.TypeImpression
		if r.IntN(4) == 0 {
			typ = event.TypeClick
		}
		feats := map[string]float64{}
		for range 1 + r.IntN(3) {
			feats[fmt.Sprintf("cat:%d", zipfish(r, 20))] = math.Round((0.1+r.Float64()*2)*100) / 100
		}
		out[i] = event.Event{
			V: 1, ID: fmt.Sprintf("e%06d", i), Type: typ,
			TS:       end.Add(-time.Duration(r.Int64N(int64(span)))).Truncate(time.Millisecond).UTC(),
			UserID:   fmt.Sprintf("user-%03d", zipfish(r, users)),
			Features: feats, Placement: "home_feed",
		}
		if i%97 == 0 {
			out[i].Type, out[i].Features, out[i].Route = event.TypeAccess, nil, "/api/items/:id"
		}
	}
	return out
}

// producer wraps the project's producer (KPL aggregation on) and fails the
// test on any record that finally fails.
type producer struct {
	p      *producers.Producer
	mu     sync.Mutex
	failed []error
}

func newTestProducer(t testing.TB, c *awsx.Clients, stream string, linger time.Duration) *producer {
	t.Helper()
	tp := &producer{}
	p, err := producers.New(c.Kinesis, stream, producers.WithAggregation(true), producers.WithLinger(linger),
		producers.WithOnFailure(func(r producers.Record, err error) {
			tp.mu.Lock()
			tp.failed = append(tp.failed, err)
			tp.mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	tp.p = p
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return tp
}

func (tp *producer) put(ctx context.Context, e *event.Event) error {
	return tp.p.Put(ctx, producers.Record{PartitionKey: e.PartitionKey(), Data: e.AppendJSON(nil)})
}

func (tp *producer) flush(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tp.p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if len(tp.failed) > 0 {
		t.Fatalf("%d records failed to produce, first: %v", len(tp.failed), tp.failed[0])
	}
}

func countVectorEvents(evs []event.Event) int64 {
	var n int64
	for _, e := range evs {
		if e.Type == event.TypeClick || e.Type == event.TypeImpression {
			n++
		}
	}
	return n
}

// scanTable returns every item of the table.
func scanTable(t *testing.T, db *dynamodb.Client, table string) map[string]map[string]types.AttributeValue {
	t.Helper()
	out := map[string]map[string]types.AttributeValue{}
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		for _, it := range page.Items {
			out[it["user_id"].(*types.AttributeValueMemberS).Value] = it
		}
	}
	return out
}

// appliedEvents sums n over the table.
func appliedEvents(t *testing.T, db *dynamodb.Client, table string) int64 {
	t.Helper()
	var n int64
	for _, it := range scanTable(t, db, table) {
		if v, ok := it["n"].(*types.AttributeValueMemberN); ok {
			x, err := strconv.ParseInt(v.Value, 10, 64)
			if err != nil {
				t.Fatalf("item n = %q: %v", v.Value, err)
			}
			n += x
		}
	}
	return n
}

// zipfish draws from 0..n-1 with a heavy head.
func zipfish(r *rand.Rand, n int) int {
	return int(math.Floor(math.Pow(float64(n), r.Float64()))) - 1
}

// counterValue returns the value of the counter name{…=label} in reg
// ("" for an unlabelled counter).
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

// direct is the direct computation, Σ w·2^(−(at−ts)/H) per user and
// feature (clicks, impressions), and the events per user.
func direct(evs []event.Event, at time.Time, hl time.Duration) (map[string]map[string][2]float64, map[string]int64) {
	vals := map[string]map[string][2]float64{}
	counts := map[string]int64{}
	for _, e := range evs {
		if e.Type != event.TypeClick && e.Type != event.TypeImpression {
			continue
		}
		counts[e.UserID]++
		if vals[e.UserID] == nil {
			vals[e.UserID] = map[string][2]float64{}
		}
		f := math.Exp2(-float64(at.Sub(e.TS)) / float64(hl))
		for name, w := range e.Features {
			v := vals[e.UserID][name]
			if e.Type == event.TypeClick {
				v[0] += w * f
			} else {
				v[1] += w * f
			}
			vals[e.UserID][name] = v
		}
	}
	return vals, counts
}

// compareWithDirect reads every user through the Reader and compares with
// the direct computation: relative error ≤ 1e-9, event counts exact.
func compareWithDirect(t *testing.T, rd *vectors.Reader, evs []event.Event, at time.Time, hl time.Duration) {
	t.Helper()
	want, counts := direct(evs, at, hl)
	bad := 0
	for user, feats := range want {
		v, err := rd.Get(context.Background(), user, at, 0)
		if err != nil {
			t.Fatalf("get %s: %v", user, err)
		}
		if v.Events != counts[user] {
			bad++
			t.Errorf("%s: events %d, want %d", user, v.Events, counts[user])
		}
		got := map[string][2]float64{}
		for _, f := range v.Features {
			got[f.Name] = [2]float64{f.Clicks, f.Impressions}
		}
		if len(got) != len(feats) {
			bad++
			t.Errorf("%s: %d features, want %d", user, len(got), len(feats))
		}
		for name, w := range feats {
			g := got[name]
			for k := range 2 {
				if math.Abs(g[k]-w[k]) > 1e-9*math.Abs(w[k])+1e-15 {
					bad++
					if bad < 10 {
						t.Errorf("%s %s[%d] = %.15g, want %.15g", user, name, k, g[k], w[k])
					}
				}
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d mismatches", bad)
	}
}

func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestVectors_EndToEndFromKinesisThenReplayFromTrimHorizonChangesNothing:
// events produced with KPL aggregation onto a 2-shard kinesis-local stream,
// consumed by the runtime with the vectors processor → every vector equals
// the direct computation; then a second application reading the whole
// stream again from TRIM_HORIZON (fresh lease table) into the same table
// changes no item at all, not even its version.
func TestVectors_EndToEndFromKinesisThenReplayFromTrimHorizonChangesNothing(t *testing.T) {
	t0 := time.Now()
	s := newStack(t, 2)
	t.Logf("stack ready in %v", time.Since(t0))
	end := time.Now().UTC().Truncate(time.Millisecond)
	evs := genEvents(11, 3000, 150, end, 30*24*time.Hour)
	want := countVectorEvents(evs)

	tp := newTestProducer(t, s.c, s.stream, 20*time.Millisecond)
	for i := range evs {
		if err := tp.put(context.Background(), &evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	tp.flush(t)
	t.Logf("produced at %v", time.Since(t0))

	reg1 := prometheus.NewRegistry()
	p, err := vectors.New(s.c.DynamoDB, vectors.Config{Table: s.table, Registerer: reg1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		mfs, _ := reg1.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "clickstream_vectors_batch_seconds" {
				h := mf.GetMetric()[0].GetHistogram()
				t.Logf("first run: %d batches, %.2fs in Process", h.GetSampleCount(), h.GetSampleSum())
			}
		}
	}()
	stop := runRunner(t, runnerConfig(s.c, s.stream, s.leaseTable, p, "first"))
	waitUntil(t, 60*time.Second, "every event applied", func() bool { return appliedEvents(t, s.c.DynamoDB, s.table) >= want })
	t.Logf("applied at %v", time.Since(t0))
	stop()
	t.Logf("stopped at %v", time.Since(t0))
	rd := vectors.NewReader(s.c.DynamoDB, vectors.ReaderConfig{Table: s.table, ConsistentRead: true})
	at := end.Add(time.Hour)
	compareWithDirect(t, rd, evs, at, vectors.DefaultHalfLife)
	before := scanTable(t, s.c.DynamoDB, s.table)

	// Replay the whole stream: a new lease table means no checkpoints.
	reg := prometheus.NewRegistry()
	p2, err := vectors.New(s.c.DynamoDB, vectors.Config{Table: s.table, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	replayLeases := testenv.Table(t, s.c, setup.LeasesTable)
	stop2 := runRunner(t, runnerConfig(s.c, s.stream, replayLeases, p2, "replay"))
	waitUntil(t, 60*time.Second, "the replay to reach the end", func() bool {
		return counterValue(t, reg, "clickstream_vectors_replayed_events_total", "") >= float64(want)
	})
	t.Logf("replayed at %v", time.Since(t0))
	stop2()
	after := scanTable(t, s.c.DynamoDB, s.table)
	if len(after) != len(before) {
		t.Fatalf("%d items after the replay, %d before", len(after), len(before))
	}
	for user, it := range before {
		if !reflect.DeepEqual(it, after[user]) {
			t.Errorf("user %s changed by the replay:\nbefore %v\nafter  %v", user, it, after[user])
		}
	}
	if n := counterValue(t, reg, "clickstream_vectors_events_total", "click") + counterValue(t, reg, "clickstream_vectors_events_total", "impression"); n != 0 {
		t.Errorf("the replay applied %v events", n)
	}
	compareWithDirect(t, rd, evs, at, vectors.DefaultHalfLife)
	t.Logf("%d events (%d for vectors), %d users; replay skipped %.0f events",
		len(evs), want, len(before), counterValue(t, reg, "clickstream_vectors_replayed_events_total", ""))
}
