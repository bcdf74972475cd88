package consumers_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
)

// heldCounts returns how many shards each runner reads, sorted.
func heldCounts(rs ...*running) []int {
	var out []int
	for _, r := range rs {
		out = append(out, len(r.r.Held()))
	}
	slices.Sort(out)
	return out
}

func TestRunner_BalancesAcrossProcessesAndTakesOverFromACrashedOne(t *testing.T) {
	e := newEnv(t, 4)
	p := newProducer(e.c, e.stream)
	us := users(16)
	stopProducing := background(100*time.Millisecond, func(ctx context.Context) error { return p.put(ctx, us) })

	ra, rb, rc := newRecorder("app", "a"), newRecorder("app", "b"), newRecorder("app", "c")
	a := start(t, e.config(t, ra, "a"))
	b := start(t, e.config(t, rb, "b"))
	waitFor(t, 15*time.Second, "two runners to split 4 shards 2/2", func() bool {
		return slices.Equal(heldCounts(a, b), []int{2, 2})
	})

	c := start(t, e.config(t, rc, "c"))
	waitFor(t, 15*time.Second, "a third runner to get its share", func() bool {
		return slices.Equal(heldCounts(a, b, c), []int{1, 1, 2})
	})
	time.Sleep(time.Second) // balanced: nothing may move any more
	if got := heldCounts(a, b, c); !slices.Equal(got, []int{1, 1, 2}) {
		t.Fatalf("balanced cluster churned: %v", got)
	}

	crashed := b.r.Held()
	consumers.Abandon(b.r) // like SIGKILL: no flush, no checkpoint, no release
	waitFor(t, 15*time.Second, "the crashed runner's shards to be taken over after lease expiry", func() bool {
		return slices.Equal(heldCounts(a, c), []int{2, 2})
	})
	for _, id := range crashed {
		if !slices.Contains(append(a.r.Held(), c.r.Held()...), id) {
			t.Fatalf("shard %s of the crashed runner not taken over", id)
		}
	}

	if err := stopProducing(); err != nil {
		t.Fatal(err)
	}
	want := p.produced()
	waitFor(t, 30*time.Second, "every produced record to be processed", func() bool {
		for _, id := range want {
			if ra.count(id)+rb.count(id)+rc.count(id) == 0 {
				return false
			}
		}
		return true
	})
	a.stop(t)
	c.stop(t)
	e.store.check(t)
	if e.store.writes == 0 {
		t.Fatal("no checkpoint was written")
	}
	// Graceful stops release their leases.
	ls, err := e.store.List(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if !l.Free() {
			t.Errorf("lease %s still held by %s after graceful shutdown", l.ShardID, l.Owner)
		}
	}
	t.Logf("%d records, %d checkpoint writes", len(want), e.store.writes)
}
