package kinesisadapter_test

import (
	"context"
	"errors"
	"testing"

	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/lambdas/kinesisadapter"
)

func TestLeaseState_KeepsStateAcrossInvocationsAndFencesAnOlderOne(t *testing.T) {
	ctx := context.Background()
	store := leases.NewMemoryStore()
	states := kinesisadapter.LeaseState(store, "archive", "clickstream-events", "fn-1")

	first := states("shardId-000000000001")
	if b, err := first.Load(ctx); err != nil || b != nil {
		t.Fatalf("first load: %q %v, want no state", b, err)
	}
	if err := first.Save(ctx, []byte("written=5")); err != nil {
		t.Fatal(err)
	}
	// The next invocation (same or another instance) sees it and takes the
	// lease; the older invocation, still running, is fenced off.
	second := kinesisadapter.LeaseState(store, "archive", "clickstream-events", "fn-2")("shardId-000000000001")
	if b, err := second.Load(ctx); err != nil || string(b) != "written=5" {
		t.Fatalf("second load: %q %v", b, err)
	}
	if err := first.Save(ctx, []byte("stale")); !errors.Is(err, leases.ErrLeaseLost) {
		t.Fatalf("older invocation's save: %v, want ErrLeaseLost", err)
	}
	if err := second.Save(ctx, nil); err != nil {
		t.Fatal(err)
	}
	l, err := store.Get(ctx, "archive", "shardId-000000000001")
	if err != nil || l.State != nil || l.Stream != "clickstream-events" || l.Owner != "fn-2" {
		t.Fatalf("lease %+v %v: want state cleared, held by fn-2", l, err)
	}
	// Shards are independent.
	if b, err := states("shardId-000000000002").Load(ctx); err != nil || b != nil {
		t.Fatalf("other shard: %q %v", b, err)
	}
}
