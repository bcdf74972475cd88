package leases

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// MemoryStore is an in-process Store for unit tests and single-process
// experiments. It has the same semantics as DynamoStore (one contract suite
// tests both) but nothing survives the process.
type MemoryStore struct {
	mu     sync.Mutex
	leases map[string]Lease // key: app + "\x00" + shard id
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{leases: make(map[string]Lease)} }

func memKey(app, shardID string) string { return app + "\x00" + shardID }

// Create implements Store.
func (m *MemoryStore) Create(ctx context.Context, l Lease) error {
	if err := validKey(l.App, l.ShardID); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey(l.App, l.ShardID)
	if _, ok := m.leases[k]; ok {
		return nil
	}
	parents := slices.Clone(l.Parents)
	slices.Sort(parents)
	m.leases[k] = Lease{App: l.App, ShardID: l.ShardID, Stream: l.Stream, Parents: parents}
	return nil
}

// List implements Store.
func (m *MemoryStore) List(ctx context.Context, app string) ([]Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Lease
	for _, l := range m.leases {
		if l.App == app {
			out = append(out, l.Clone())
		}
	}
	slices.SortFunc(out, func(a, b Lease) int { return strings.Compare(a.ShardID, b.ShardID) })
	return out, nil
}

// Get implements Store.
func (m *MemoryStore) Get(ctx context.Context, app, shardID string) (Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.leases[memKey(app, shardID)]
	if !ok {
		return Lease{}, fmt.Errorf("get lease %s/%s: %w", app, shardID, ErrNotFound)
	}
	return l.Clone(), nil
}

// Take implements Store.
func (m *MemoryStore) Take(ctx context.Context, l Lease, owner string) (Lease, error) {
	if owner == "" {
		return Lease{}, fmt.Errorf("take lease %s/%s: empty owner", l.App, l.ShardID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey(l.App, l.ShardID)
	cur, ok := m.leases[k]
	if !ok {
		return Lease{}, fmt.Errorf("take lease %s/%s: %w", l.App, l.ShardID, ErrNotFound)
	}
	if cur.Owner != l.Owner || cur.Epoch != l.Epoch || cur.Heartbeat != l.Heartbeat {
		return Lease{}, fmt.Errorf("take lease %s/%s: %w", l.App, l.ShardID, ErrConflict)
	}
	cur.Owner = owner
	cur.Epoch++
	cur.Heartbeat++
	m.leases[k] = cur
	return cur.Clone(), nil
}

// Renew implements Store.
func (m *MemoryStore) Renew(ctx context.Context, l Lease) (Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey(l.App, l.ShardID)
	cur, ok := m.leases[k]
	if !ok || l.Owner == "" || cur.Owner != l.Owner || cur.Epoch != l.Epoch {
		return Lease{}, fmt.Errorf("renew lease %s/%s: %w", l.App, l.ShardID, ErrLeaseLost)
	}
	cur.Heartbeat++
	m.leases[k] = cur
	return cur.Clone(), nil
}

// Update implements Store.
func (m *MemoryStore) Update(ctx context.Context, l Lease, u Update) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey(l.App, l.ShardID)
	cur, ok := m.leases[k]
	if !ok || l.Owner == "" || cur.Owner != l.Owner || cur.Epoch != l.Epoch {
		return fmt.Errorf("update lease %s/%s: %w", l.App, l.ShardID, ErrLeaseLost)
	}
	if u.Checkpoint != nil {
		cur.Checkpoint = *u.Checkpoint
	}
	if u.Finished {
		cur.Finished = true
	}
	if u.SetState {
		cur.State = slices.Clone(u.State)
		if len(cur.State) == 0 {
			cur.State = nil
		}
	}
	if u.Release {
		cur.Owner = ""
	}
	m.leases[k] = cur
	return nil
}

// Delete implements Store.
func (m *MemoryStore) Delete(ctx context.Context, app, shardID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.leases, memKey(app, shardID))
	return nil
}

func validKey(app, shardID string) error {
	if app == "" || shardID == "" {
		return fmt.Errorf("create lease: app and shard id are required (got %q, %q)", app, shardID)
	}
	return nil
}
