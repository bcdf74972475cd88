package leases_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers/leases"
)

// runContract is the one behaviour suite every Store implementation passes.
func runContract(t *testing.T, newStore func(t *testing.T) leases.Store) {
	ctx := context.Background()
	t.Run("CreateIsIdempotentAndNeverResetsALease", func(t *testing.T) {
		s := newStore(t)
		l := leases.Lease{App: "a", ShardID: "shard-1", Stream: "s", Parents: []string{"p2", "p1"}}
		must(t, s.Create(ctx, l))
		got := get(t, s, "a", "shard-1")
		if got.Owner != "" || got.Epoch != 0 || got.Heartbeat != 0 || !got.Checkpoint.IsZero() || got.Finished {
			t.Fatalf("new lease is not free and empty: %+v", got)
		}
		if !slices.Equal(got.Parents, []string{"p1", "p2"}) || got.Stream != "s" {
			t.Fatalf("parents/stream = %v/%q, want [p1 p2]/s", got.Parents, got.Stream)
		}
		held, err := s.Take(ctx, got, "w1")
		must(t, err)
		pos := leases.Position{SequenceNumber: "100", SubSequence: 3}
		must(t, s.Update(ctx, held, leases.Update{Checkpoint: &pos}))
		must(t, s.Create(ctx, l))
		again := get(t, s, "a", "shard-1")
		if again.Owner != "w1" || again.Checkpoint != pos {
			t.Fatalf("Create reset an existing lease: %+v", again)
		}
	})
	t.Run("CreateRejectsEmptyKey", func(t *testing.T) {
		s := newStore(t)
		if err := s.Create(ctx, leases.Lease{App: "a"}); err == nil {
			t.Fatal("Create with empty shard id succeeded")
		}
	})
	t.Run("ListReturnsOnlyTheAppsLeasesSortedByShard", func(t *testing.T) {
		s := newStore(t)
		for _, id := range []string{"shard-3", "shard-1", "shard-2"} {
			must(t, s.Create(ctx, leases.Lease{App: "a", ShardID: id}))
		}
		must(t, s.Create(ctx, leases.Lease{App: "b", ShardID: "shard-9"}))
		ls, err := s.List(ctx, "a")
		must(t, err)
		var ids []string
		for _, l := range ls {
			ids = append(ids, l.ShardID)
		}
		if !slices.Equal(ids, []string{"shard-1", "shard-2", "shard-3"}) {
			t.Fatalf("List = %v", ids)
		}
		none, err := s.List(ctx, "nobody")
		must(t, err)
		if len(none) != 0 {
			t.Fatalf("List of unknown app = %v", none)
		}
	})
	t.Run("GetOfMissingLeaseIsNotFound", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "a", "nope"); !errors.Is(err, leases.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("TakeOfFreeLeaseBumpsEpochAndHeartbeat", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Create(ctx, leases.Lease{App: "a", ShardID: "x"}))
		held, err := s.Take(ctx, get(t, s, "a", "x"), "w1")
		must(t, err)
		if held.Owner != "w1" || held.Epoch != 1 || held.Heartbeat != 1 {
			t.Fatalf("after Take: %+v", held)
		}
		if got := get(t, s, "a", "x"); got.Owner != "w1" || got.Epoch != 1 {
			t.Fatalf("stored after Take: %+v", got)
		}
	})
	t.Run("TakeWithStaleCopyConflicts", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Create(ctx, leases.Lease{App: "a", ShardID: "x"}))
		free := get(t, s, "a", "x")
		held, err := s.Take(ctx, free, "w1")
		must(t, err)
		if _, err := s.Take(ctx, free, "w2"); !errors.Is(err, leases.ErrConflict) {
			t.Fatalf("second Take of the same free copy: err = %v, want ErrConflict", err)
		}
		// A renewal between read and Take means the holder is alive: the expiry judgement is stale.
		seen := get(t, s, "a", "x")
		_, err = s.Renew(ctx, held)
		must(t, err)
		if _, err := s.Take(ctx, seen, "w2"); !errors.Is(err, leases.ErrConflict) {
			t.Fatalf("Take after a renewal: err = %v, want ErrConflict", err)
		}
	})
	t.Run("TakeOfMissingLeaseIsNotFound", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Take(ctx, leases.Lease{App: "a", ShardID: "gone"}, "w1"); !errors.Is(err, leases.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("TakeReturnsLatestCheckpointAndState", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Create(ctx, leases.Lease{App: "a", ShardID: "x"}))
		h1, err := s.Take(ctx, get(t, s, "a", "x"), "w1")
		must(t, err)
		pos := leases.Position{SequenceNumber: "4955", SubSequence: 7}
		must(t, s.Update(ctx, h1, leases.Update{Checkpoint: &pos, State: []byte("pending"), SetState: true}))
		h2, err := s.Take(ctx, get(t, s, "a", "x"), "w2")
		must(t, err)
		if h2.Checkpoint != pos || string(h2.State) != "pending" || h2.Owner != "w2" || h2.Epoch != 2 {
			t.Fatalf("stolen lease = %+v", h2)
		}
	})
	t.Run("RenewBumpsHeartbeatOnlyForHolder", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Create(ctx, leases.Lease{App: "a", ShardID: "x"}))
		held, err := s.Take(ctx, get(t, s, "a", "x"), "w1")
		must(t, err)
		r, err := s.Renew(ctx, held)
		must(t, err)
		if r.Heartbeat != held.Heartbeat+1 || r.Epoch != held.Epoch {
			t.Fatalf("renewed = %+v, held = %+v", r, held)
		}
		// Renewing with the copy from before the renewal still works: only owner and epoch fence.
		_, err = s.Renew(ctx, held)
		must(t, err)
		other := held
		other.Owner = "w2"
		if _, err := s.Renew(ctx, other); !errors.Is(err, leases.ErrLeaseLost) {
			t.Fatalf("Renew by non-holder: err = %v, want ErrLeaseLost", err)
		}
		if _, err := s.Renew(ctx, leases.Lease{App: "a", ShardID: "x"}); !errors.Is(err, leases.ErrLeaseLost) {
			t.Fatalf("Renew with empty owner: err = %v, want ErrLeaseLost", err)
		}
	})
	t.Run("HolderThatLostTheLeaseCanNeverMoveTheCheckpoint", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Create(ctx, leases.Lease{App: "a", ShardID: "x"}))
		old, err := s.Take(ctx, get(t, s, "a", "x"), "w1")
		must(t, err)
		p1 := leases.Position{SequenceNumber: "10"}
		must(t, s.Update(ctx, old, leases.Update{Checkpoint: &p1}))
		thief, err := s.Take(ctx, get(t, s, "a", "x"), "w2")
		must(t, err)
		p2 := leases.Position{SequenceNumber: "20"}
		for name, u := range map[string]leases.Update{
			"checkpoint": {Checkpoint: &p2},
			"finished":   {Finished: true},
			"state":      {State: []byte("x"), SetState: true},
			"release":    {Release: true},
		} {
			if err := s.Update(ctx, old, u); !errors.Is(err, leases.ErrLeaseLost) {
				t.Fatalf("%s by old holder: err = %v, want ErrLeaseLost", name, err)
			}
		}
		if _, err := s.Renew(ctx, old); !errors.Is(err, leases.ErrLeaseLost) {
			t.Fatalf("Renew by old holder: err = %v, want ErrLeaseLost", err)
		}
		got := get(t, s, "a", "x")
		if got.Checkpoint != p1 || got.Owner != "w2" || got.Finished || got.State != nil {
			t.Fatalf("old holder changed the lease: %+v", got)
		}
		must(t, s.Update(ctx, thief, leases.Update{Checkpoint: &p2}))
		if got := get(t, s, "a", "x"); got.Checkpoint != p2 {
			t.Fatalf("new holder's checkpoint = %v, want %v", got.Checkpoint, p2)
		}
	})
	t.Run("SameOwnerWithOldEpochIsFenced", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Create(ctx, leases.Lease{App: "a", ShardID: "x"}))
		first, err := s.Take(ctx, get(t, s, "a", "x"), "w1")
		must(t, err)
		// The same owner id re-takes the lease (a restarted process with a fixed id).
		_, err = s.Take(ctx, get(t, s, "a", "x"), "w1")
		must(t, err)
		p := leases.Position{SequenceNumber: "5"}
		if err := s.Update(ctx, first, leases.Update{Checkpoint: &p}); !errors.Is(err, leases.ErrLeaseLost) {
			t.Fatalf("write with old epoch: err = %v, want ErrLeaseLost", err)
		}
	})
	t.Run("ReleaseFreesTheLeaseAndKeepsTheCheckpoint", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Create(ctx, leases.Lease{App: "a", ShardID: "x"}))
		held, err := s.Take(ctx, get(t, s, "a", "x"), "w1")
		must(t, err)
		p := leases.Position{SequenceNumber: "99", SubSequence: 1}
		must(t, s.Update(ctx, held, leases.Update{Checkpoint: &p, Finished: true, Release: true}))
		got := get(t, s, "a", "x")
		if !got.Free() || got.Checkpoint != p || !got.Finished {
			t.Fatalf("after release: %+v", got)
		}
		if err := s.Update(ctx, held, leases.Update{Checkpoint: &p}); !errors.Is(err, leases.ErrLeaseLost) {
			t.Fatalf("write after release: err = %v, want ErrLeaseLost", err)
		}
		again, err := s.Take(ctx, got, "w2")
		must(t, err)
		if again.Owner != "w2" || again.Checkpoint != p || !again.Finished {
			t.Fatalf("re-taken lease = %+v", again)
		}
	})
	t.Run("StateIsSavedReplacedAndCleared", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Create(ctx, leases.Lease{App: "a", ShardID: "x"}))
		held, err := s.Take(ctx, get(t, s, "a", "x"), "w1")
		must(t, err)
		big := bytes.Repeat([]byte{0, 1, 2, 255}, 1000)
		must(t, s.Update(ctx, held, leases.Update{State: big, SetState: true}))
		if got := get(t, s, "a", "x"); !bytes.Equal(got.State, big) {
			t.Fatalf("state = %d bytes, want %d", len(got.State), len(big))
		}
		p := leases.Position{SequenceNumber: "7"}
		must(t, s.Update(ctx, held, leases.Update{Checkpoint: &p}))
		if got := get(t, s, "a", "x"); !bytes.Equal(got.State, big) {
			t.Fatal("checkpoint-only update changed the state")
		}
		must(t, s.Update(ctx, held, leases.Update{SetState: true}))
		if got := get(t, s, "a", "x"); got.State != nil || got.Checkpoint != p {
			t.Fatalf("after clearing: state %v, checkpoint %v", got.State, got.Checkpoint)
		}
	})
	t.Run("ZeroCheckpointResetsToStart", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Create(ctx, leases.Lease{App: "a", ShardID: "x"}))
		held, err := s.Take(ctx, get(t, s, "a", "x"), "w1")
		must(t, err)
		p := leases.Position{SequenceNumber: "7", SubSequence: 2}
		must(t, s.Update(ctx, held, leases.Update{Checkpoint: &p}))
		must(t, s.Update(ctx, held, leases.Update{Checkpoint: &leases.Position{}}))
		if got := get(t, s, "a", "x"); !got.Checkpoint.IsZero() {
			t.Fatalf("checkpoint = %v, want zero", got.Checkpoint)
		}
	})
	t.Run("EmptyUpdateStillChecksTheFence", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Create(ctx, leases.Lease{App: "a", ShardID: "x"}))
		held, err := s.Take(ctx, get(t, s, "a", "x"), "w1")
		must(t, err)
		must(t, s.Update(ctx, held, leases.Update{}))
		_, err = s.Take(ctx, get(t, s, "a", "x"), "w2")
		must(t, err)
		if err := s.Update(ctx, held, leases.Update{}); !errors.Is(err, leases.ErrLeaseLost) {
			t.Fatalf("err = %v, want ErrLeaseLost", err)
		}
	})
	t.Run("ConcurrentTakesHaveExactlyOneWinner", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Create(ctx, leases.Lease{App: "a", ShardID: "x"}))
		free := get(t, s, "a", "x")
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Take(ctx, free, fmt.Sprintf("w%d", i))
			}()
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, leases.ErrConflict):
				t.Fatalf("unexpected error: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d winners, want 1", wins)
		}
	})
	t.Run("DeleteRemovesTheLease", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Create(ctx, leases.Lease{App: "a", ShardID: "x"}))
		must(t, s.Delete(ctx, "a", "x"))
		if _, err := s.Get(ctx, "a", "x"); !errors.Is(err, leases.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		must(t, s.Delete(ctx, "a", "x")) // deleting twice is fine
	})
}

func get(t *testing.T, s leases.Store, app, shard string) leases.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := s.Get(ctx, app, shard)
	must(t, err)
	return l
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
