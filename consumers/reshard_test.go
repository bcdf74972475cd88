package consumers_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// reshard changes the stream's shard count and waits until it is ACTIVE.
func reshard(t *testing.T, e *env, shards int32) {
	t.Helper()
	ctx := context.Background()
	_, err := e.c.Kinesis.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{
		StreamName: aws.String(e.stream), TargetShardCount: aws.Int32(shards), ScalingType: types.ScalingTypeUniformScaling,
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the stream to be active again", func() bool {
		out, err := e.c.Kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(e.stream)})
		return err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive &&
			aws.ToInt32(out.StreamDescriptionSummary.OpenShardCount) == shards
	})
}

func TestRunner_ReshardingUnderLoadReadsParentsFirstAndKeepsPerKeyOrder(t *testing.T) {
	e := newEnv(t, 2)
	p := newProducer(e.c, e.stream)
	us := users(10)
	stopProducing := background(100*time.Millisecond, func(ctx context.Context) error { return p.put(ctx, us) })
	defer func() { _ = stopProducing() }()
	// Two processes, so shards (and the parents' and children's leases) move between them.
	ra, rb := newRecorder("reshard", "a"), newRecorder("reshard", "b")
	a := start(t, e.config(t, ra, "a"))
	b := start(t, e.config(t, rb, "b"))

	time.Sleep(time.Second)
	reshard(t, e, 4) // split both shards
	time.Sleep(time.Second)
	reshard(t, e, 2) // merge back: children with two parents
	time.Sleep(time.Second)
	if err := stopProducing(); err != nil {
		t.Fatal(err)
	}
	want := p.produced()
	waitSeenByAny(t, 60*time.Second, want, ra, rb)
	a.stop(t)
	b.stop(t)
	e.store.check(t)

	// Parents before children.
	ls, err := e.c.Kinesis.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(e.stream)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.Shards) != 8 {
		t.Fatalf("%d shards after 2→4→2, want 8", len(ls.Shards))
	}
	firstOpen := firstOpenIn(ra, rb)
	ended := func(id string) time.Time {
		for _, r := range []*recorder{ra, rb} {
			r.mu.Lock()
			ts, ok := r.ended[id]
			r.mu.Unlock()
			if ok {
				return ts
			}
		}
		return time.Time{}
	}
	for _, s := range ls.Shards {
		id := aws.ToString(s.ShardId)
		for _, parent := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
			if parent == nil {
				continue
			}
			end := ended(*parent)
			if end.IsZero() {
				t.Errorf("parent %s of %s never reached its end", *parent, id)
				continue
			}
			if open := firstOpen(id); !open.IsZero() && open.Before(end) {
				t.Errorf("child %s opened %v before parent %s ended", id, end.Sub(open), *parent)
			}
		}
	}

	checkKeyOrderByLineage(t, ra, rb)
	t.Logf("%d records across 8 shards", len(want))
}

// waitSeenByAny waits until every id in want was handed to one of recs.
func waitSeenByAny(t *testing.T, timeout time.Duration, want []string, recs ...*recorder) {
	t.Helper()
	waitFor(t, timeout, "every record", func() bool {
		for _, id := range want {
			n := 0
			for _, r := range recs {
				n += r.count(id)
			}
			if n == 0 {
				return false
			}
		}
		return true
	})
}

// checkKeyOrderByLineage checks per-key order across resharding: the first
// time a counter appears, every earlier counter of that key has appeared
// before it. Merging processes' logs by processing order is not possible;
// order per key holds per shard lineage, so each key is checked in the
// order its shards were read (first-open time of the shard, then position).
func checkKeyOrderByLineage(t *testing.T, recs ...*recorder) {
	t.Helper()
	var all []seen
	for _, r := range recs {
		all = append(all, r.all()...)
	}
	next := map[string]int{}
	for _, s := range orderByLineage(all, firstOpenIn(recs...)) {
		if s.Counter > next[s.Key] {
			t.Fatalf("key %s: counter %d processed before %d", s.Key, s.Counter, next[s.Key])
		}
		if s.Counter == next[s.Key] {
			next[s.Key]++
		}
	}
}

// firstOpenIn returns when a shard was first opened by any of the recorders.
func firstOpenIn(recs ...*recorder) func(shard string) time.Time {
	return func(id string) time.Time {
		var first time.Time
		for _, r := range recs {
			r.mu.Lock()
			if ts := r.opened[id]; len(ts) > 0 && (first.IsZero() || ts[0].Before(first)) {
				first = ts[0]
			}
			r.mu.Unlock()
		}
		return first
	}
}

// orderByLineage orders records as the stream's lineage dictates: by when
// their shard was first opened (children open after their parents end),
// then by position within the shard.
func orderByLineage(all []seen, firstOpen func(string) time.Time) []seen {
	opened := map[string]time.Time{}
	for _, s := range all {
		if _, ok := opened[s.Shard]; !ok {
			opened[s.Shard] = firstOpen(s.Shard)
		}
	}
	out := slices.Clone(all)
	slices.SortStableFunc(out, func(a, b seen) int {
		if c := opened[a.Shard].Compare(opened[b.Shard]); c != 0 {
			return c
		}
		if c := strings.Compare(a.Shard, b.Shard); c != 0 {
			return c
		}
		return a.Position.Compare(b.Position)
	})
	return out
}
