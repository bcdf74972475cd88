package kinesisadapter

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/leases"
)

// LeaseState returns a WithStateStore function that keeps each shard's
// processor state in the lease table (leases.Store, the same items the
// long-running runtime uses: key app + shard_id, attribute state), so a
// buffering processor such as the archive gets the same exactly-once
// recovery in Lambda as in the runtime.
//
// Every invocation takes the shard's lease under owner before its first
// state read (bumping the epoch), and every Save is fenced by that epoch:
// an invocation that Lambda gave up on (a timeout) and that is still
// running can no longer overwrite the state of the invocation retrying
// its records — its Save fails with leases.ErrLeaseLost and the batch is
// reported failed. This assumes one invocation per shard at a time
// (parallelization factor 1), which is what the state means: with a higher
// factor, concurrent invocations of one shard would take the lease from
// each other and fail their flushes.
//
// The lease is created free on first use (stream names it). Lambda's event
// source mapping keeps its own checkpoint; the lease's checkpoint is not
// used, so the items of the Lambda host and of the long-running runtime
// must not share one table and application name at the same time.
func LeaseState(store leases.Store, app, stream, owner string) func(shardID string) consumers.StateStore {
	return func(shardID string) consumers.StateStore {
		return &leaseState{store: store, app: app, stream: stream, owner: owner, shard: shardID}
	}
}

// leaseState is one invocation's view of one shard's state.
type leaseState struct {
	store                     leases.Store
	app, stream, owner, shard string

	mu    sync.Mutex
	lease *leases.Lease // taken; nil until the first Load or Save
}

var _ consumers.StateStore = (*leaseState)(nil)

// take makes this invocation the lease holder and returns the lease as
// stored (with its state).
func (s *leaseState) take(ctx context.Context) (*leases.Lease, error) {
	if s.lease != nil {
		return s.lease, nil
	}
	for attempt := 0; ; attempt++ {
		l, err := s.store.Get(ctx, s.app, s.shard)
		if errors.Is(err, leases.ErrNotFound) {
			if err := s.store.Create(ctx, leases.Lease{App: s.app, ShardID: s.shard, Stream: s.stream}); err != nil {
				return nil, fmt.Errorf("create state lease %s/%s: %w", s.app, s.shard, err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read state lease %s/%s: %w", s.app, s.shard, err)
		}
		nl, err := s.store.Take(ctx, l, s.owner)
		if errors.Is(err, leases.ErrConflict) && attempt < 5 {
			continue // another invocation took it between our read and take
		}
		if err != nil {
			return nil, fmt.Errorf("take state lease %s/%s: %w", s.app, s.shard, err)
		}
		s.lease = &nl
		return s.lease, nil
	}
}

// Load implements consumers.StateStore.
func (s *leaseState) Load(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.take(ctx)
	if err != nil {
		return nil, err
	}
	return l.State, nil
}

// Save implements consumers.StateStore.
func (s *leaseState) Save(ctx context.Context, state []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.take(ctx)
	if err != nil {
		return err
	}
	if len(state) == 0 {
		state = nil
	}
	if err := s.store.Update(ctx, *l, leases.Update{State: state, SetState: true}); err != nil {
		return fmt.Errorf("save shard state %s/%s: %w", s.app, s.shard, err)
	}
	l.State = state
	return nil
}
