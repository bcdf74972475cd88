package vectors

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/internal/testenv"
)

// knownEvents is the integration event set: clicks and impressions for
// many users over two shards, event times out of order over 60 days.
func knownEvents(seed uint64, n, users int) map[string][]consumers.Record {
	r := rand.New(rand.NewPCG(seed, 99))
	byShard := map[string][]consumers.Record{}
	for i := range n {
		shard := fmt.Sprintf("shardId-%012d", r.IntN(2))
		typ := event.TypeImpression
		if r.IntN(4) == 0 {
			typ = event.TypeClick
		}
		feats := map[string]float64{}
		for range 1 + r.IntN(3) {
			feats[fmt.Sprintf("cat:%d", zipfish(r, 25))] = math.Round((0.1+r.Float64()*3)*1000) / 1000
		}
		ts := testNow.Add(-time.Duration(r.Int64N(int64(60 * 24 * time.Hour)))).Truncate(time.Millisecond)
		rc := rec(i+1, typ, fmt.Sprintf("user-%04d", zipfish(r, users)), ts, feats)
		rc.ShardID = shard
		rc.SubSequence = int64(i % 4)
		byShard[shard] = append(byShard[shard], rc)
	}
	return byShard
}

// directRecords is the direct computation for records, as of at.
func directRecords(recs []consumers.Record, at time.Time, hl time.Duration) (map[string]map[string][2]float64, map[string]int64) {
	vals := map[string]map[string][2]float64{}
	counts := map[string]int64{}
	for _, r := range recs {
		e := r.Event
		if r.Err != nil || (e.Type != event.TypeClick && e.Type != event.TypeImpression) {
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

// compareWithDirect reads every expected user through the Reader and
// compares with the direct computation (relative 1e-9).
func compareWithDirect(t *testing.T, rd *Reader, recs []consumers.Record, at time.Time, hl time.Duration) {
	t.Helper()
	want, counts := directRecords(recs, at, hl)
	bad := 0
	for user, feats := range want {
		v, err := rd.Get(context.Background(), user, at, 0)
		if err != nil {
			t.Fatalf("get %s: %v", user, err)
		}
		if v.Events != counts[user] {
			t.Errorf("%s: events %d, want %d", user, v.Events, counts[user])
			bad++
		}
		got := map[string][2]float64{}
		for _, f := range v.Features {
			got[f.Name] = [2]float64{f.Clicks, f.Impressions}
		}
		if len(got) != len(feats) {
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

// TestVectors_DynamoDBKnownEventSetWithReplaysEqualsDirectComputation:
// many users, out of order, two shards written concurrently, random batch
// cuts, whole batches replayed (and replays cut differently) → every vector
// equals the direct computation, on DynamoDB Local.
func TestVectors_DynamoDBKnownEventSetWithReplaysEqualsDirectComputation(t *testing.T) {
	c := testenv.Clients(t)
	table := testenv.Table(t, c, setup.VectorsTable)
	reg := prometheus.NewRegistry()
	p, err := New(c.DynamoDB, Config{Table: table, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	byShard := knownEvents(1, 4000, 300)
	ctx := context.Background()
	errs := make(chan error, 2)
	for shard, recs := range byShard {
		go func() {
			r := rand.New(rand.NewPCG(uint64(len(recs)), 1))
			sp, err := p.OpenShard(ctx, consumers.Shard{ID: shard})
			if err != nil {
				errs <- err
				return
			}
			var batches [][]consumers.Record
			for i := 0; i < len(recs); {
				n := 1 + r.IntN(250)
				batches = append(batches, recs[i:min(len(recs), i+n)])
				i += n
			}
			for i, b := range batches {
				if _, err := sp.Process(ctx, consumers.Batch{ShardID: shard, Records: b, Now: testNow}); err != nil {
					errs <- fmt.Errorf("%s batch %d: %w", shard, i, err)
					return
				}
				if r.IntN(2) == 0 && i > 0 { // replay an earlier whole batch
					j := r.IntN(i)
					if _, err := sp.Process(ctx, consumers.Batch{ShardID: shard, Records: batches[j], Now: testNow}); err != nil {
						errs <- fmt.Errorf("%s replay of %d: %w", shard, j, err)
						return
					}
				}
				if r.IntN(3) == 0 && i > 1 { // replay a range cut differently from how it was applied
					lo := r.IntN(len(batches[i-1]))
					replay := append(append([]consumers.Record{}, batches[i-1][lo:]...), batches[i]...)
					if _, err := sp.Process(ctx, consumers.Batch{ShardID: shard, Records: replay, Now: testNow}); err != nil {
						errs <- fmt.Errorf("%s re-cut replay: %w", shard, err)
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range byShard {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var all []consumers.Record
	for _, recs := range byShard {
		all = append(all, recs...)
	}
	rd := NewReader(c.DynamoDB, ReaderConfig{Table: table, ConsistentRead: true})
	compareWithDirect(t, rd, all, testNow.Add(time.Hour), DefaultHalfLife)
	replayed := counterValue(t, reg, "clickstream_vectors_replayed_events_total", "")
	if replayed == 0 {
		t.Error("no replayed events counted: the replays did not exercise the guard")
	}
	t.Logf("%d events, %.0f replayed events skipped; writes add=%.0f create=%.0f rewrite=%.0f noop=%.0f; %.0f DynamoDB calls, %.0f failed conditions",
		len(all), replayed,
		counterValue(t, reg, "clickstream_vectors_user_writes_total", "add"),
		counterValue(t, reg, "clickstream_vectors_user_writes_total", "create"),
		counterValue(t, reg, "clickstream_vectors_user_writes_total", "rewrite"),
		counterValue(t, reg, "clickstream_vectors_user_writes_total", "noop"),
		counterValue(t, reg, "clickstream_vectors_dynamodb_calls_total", ""),
		counterValue(t, reg, "clickstream_vectors_condition_failures_total", ""))
}
