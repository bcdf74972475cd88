// Package leases keeps the consumer runtime's shard leases and checkpoints:
// which process reads which shard of the stream for one application, and up
// to where that application's effects are durable. Every write by a lease
// holder is fenced by (owner, epoch), so a process that lost a lease can never
// move its checkpoint; assignment across processes is decided by Plan, a pure
// function of the lease table and the clock.
//
// DynamoDB item layout (table key schema setup.LeasesTable: hash `app`,
// range `shard_id`, both strings), one item per (application, shard):
//
//	app            S    application name (lease namespace: "archive", "vectors", ...)
//	shard_id       S    Kinesis shard id
//	stream         S    stream name; a runner refuses leases of another stream
//	parents        SS   parent shard ids (absent for original shards)
//	owner          S    owner id of the holder; absent when the lease is free
//	epoch          N    bumped on every change of holder; fences all writes
//	heartbeat      N    bumped on every renewal; others judge expiry by watching it
//	renewed_at     S    RFC 3339 time of the last renewal (for people, not logic)
//	checkpoint_seq S    sequence number of the last durable record (absent: start)
//	checkpoint_sub N    sub-sequence within that record's KPL aggregate
//	finished       BOOL the shard was read to SHARD_END and everything is durable
//	state          B    processor state saved with Update (absent: none)
package leases

import (
	"context"
	"errors"
	"slices"
)

// Sentinel errors.
var (
	// ErrLeaseLost: the lease has another holder or epoch than the caller's
	// copy; the caller must stop processing the shard without checkpointing.
	ErrLeaseLost = errors.New("lease lost")
	// ErrConflict: Take lost a race; the lease changed since it was read.
	ErrConflict = errors.New("lease changed since it was read")
	// ErrNotFound: no lease for that shard.
	ErrNotFound = errors.New("lease not found")
)

// Lease is one shard's lease and checkpoint for one application.
type Lease struct {
	App     string
	ShardID string
	Stream  string
	Parents []string // parent shard ids; children start only after all parents finished

	Owner     string // holder's owner id; "" when free
	Epoch     int64  // bumped on every change of holder
	Heartbeat int64  // bumped on every renewal

	Checkpoint Position // last durable position; zero = read from TRIM_HORIZON
	Finished   bool     // read to SHARD_END and checkpointed
	State      []byte   // processor state; nil when none
}

// Free reports whether nobody holds the lease.
func (l Lease) Free() bool { return l.Owner == "" }

// Clone returns a deep copy of l.
func (l Lease) Clone() Lease {
	l.Parents = slices.Clone(l.Parents)
	if l.State != nil {
		l.State = slices.Clone(l.State)
	}
	return l
}

// Update is a fenced write by the lease holder: any combination of moving the
// checkpoint, marking the shard finished, saving processor state and
// releasing the lease, applied atomically.
type Update struct {
	Checkpoint *Position // nil: leave unchanged
	Finished   bool      // true: mark finished (never unset)
	State      []byte    // with SetState: new state; nil removes it
	SetState   bool
	Release    bool // true: clear the owner so another process can take the lease at once
}

// Store keeps leases. Implementations are safe for concurrent use; every
// method that takes a Lease uses only its App, ShardID and the fencing fields
// (Owner, Epoch, Heartbeat) of the caller's copy.
type Store interface {
	// Create adds a free lease for a shard unless one exists; creating an
	// existing lease is a no-op (several processes discover the same shards).
	Create(ctx context.Context, l Lease) error
	// List returns every lease of app, sorted by shard id.
	List(ctx context.Context, app string) ([]Lease, error)
	// Get returns one lease, or ErrNotFound.
	Get(ctx context.Context, app, shardID string) (Lease, error)
	// Take makes owner the holder of the lease, provided its Owner, Epoch and
	// Heartbeat still equal l's (nobody touched it since it was read);
	// otherwise ErrConflict. It bumps Epoch and Heartbeat and returns the
	// lease as stored, with the latest checkpoint and state.
	Take(ctx context.Context, l Lease, owner string) (Lease, error)
	// Renew bumps Heartbeat, provided l.Owner still holds the lease at
	// l.Epoch; otherwise ErrLeaseLost. It returns the lease as stored.
	Renew(ctx context.Context, l Lease) (Lease, error)
	// Update applies u, provided l.Owner still holds the lease at l.Epoch;
	// otherwise ErrLeaseLost.
	Update(ctx context.Context, l Lease, u Update) error
	// Delete removes a lease (garbage collection of shards past retention).
	Delete(ctx context.Context, app, shardID string) error
}
