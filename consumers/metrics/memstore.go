package metrics

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"
)

// MemoryStore is an in-process Store for tests and demos without DynamoDB.
// It is safe for concurrent use. Stored rows are deep-copied in and out.
type MemoryStore struct {
	mu     sync.Mutex
	rows   map[string]map[string]Row // pk → sk → row
	dims   map[string]map[string]map[string]string
	shards map[string]ShardState
	// hook, when set, runs before each row write (tests inject faults).
	hook func(Row) error
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		rows:   map[string]map[string]Row{},
		dims:   map[string]map[string]map[string]string{},
		shards: map[string]ShardState{},
	}
}

// LoadRows implements Store.
func (m *MemoryStore) LoadRows(ctx context.Context, keys []RowKey) ([]Row, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Row
	for _, k := range keys {
		if r, ok := m.rows[k.PK()][k.SK()]; ok {
			out = append(out, copyRow(r))
		}
	}
	return out, nil
}

// PutRows implements Store.
func (m *MemoryStore) PutRows(ctx context.Context, rows []Row) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range rows {
		if m.hook != nil {
			if err := m.hook(r); err != nil {
				return err
			}
		}
		pk, sk := r.PK(), r.SK()
		if old, ok := m.rows[pk][sk]; ok && r.Pos != "" && old.Pos > r.Pos {
			return fmt.Errorf("put row %s: %w (stored %s, ours %s)", r.Key(), ErrStale, old.Pos, r.Pos)
		}
		if m.rows[pk] == nil {
			m.rows[pk] = map[string]Row{}
		}
		m.rows[pk][sk] = copyRow(r)
	}
	return nil
}

// QueryRows implements Store.
func (m *MemoryStore) QueryRows(ctx context.Context, metric, dimsKey string, from, to time.Time) ([]Row, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	lo, hi := windowSK(from), windowSK(to)
	var out []Row
	for sk, r := range m.rows[rowPK(metric, dimsKey)] {
		if sk >= lo && sk < hi {
			out = append(out, copyRow(r))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SK() < out[j].SK() })
	return out, nil
}

// PutDims implements Store.
func (m *MemoryStore) PutDims(ctx context.Context, metric string, dims []map[string]string, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dims[metric] == nil {
		m.dims[metric] = map[string]map[string]string{}
	}
	for _, d := range dims {
		m.dims[metric][DimsKey(sortedKeys(d), d)] = maps.Clone(d)
	}
	return nil
}

// ListDims implements Store.
func (m *MemoryStore) ListDims(ctx context.Context, metric string) ([]map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []map[string]string
	for _, k := range sortedKeys(m.dims[metric]) {
		out = append(out, maps.Clone(m.dims[metric][k]))
	}
	return out, nil
}

// LoadShard implements Store.
func (m *MemoryStore) LoadShard(ctx context.Context, shardID string) (ShardState, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.shards[shardID]
	s.Dropped = maps.Clone(s.Dropped)
	s.OpenRows = slices.Clone(s.OpenRows)
	return s, ok, nil
}

// SaveShard implements Store.
func (m *MemoryStore) SaveShard(ctx context.Context, s ShardState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.shards[s.Shard]; ok && old.Pos > s.Pos {
		return fmt.Errorf("save shard %s: %w (stored %s, ours %s)", s.Shard, ErrStale, old.Pos, s.Pos)
	}
	s.Dropped = maps.Clone(s.Dropped)
	s.OpenRows = slices.Clone(s.OpenRows)
	m.shards[s.Shard] = s
	return nil
}

// ListShards implements Store.
func (m *MemoryStore) ListShards(ctx context.Context) ([]ShardState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ShardState
	for _, k := range sortedKeys(m.shards) {
		s := m.shards[k]
		s.Dropped = maps.Clone(s.Dropped)
		s.OpenRows = slices.Clone(s.OpenRows)
		out = append(out, s)
	}
	return out, nil
}

func copyRow(r Row) Row {
	r.Dims = maps.Clone(r.Dims)
	r.Counts = maps.Clone(r.Counts)
	r.Floats = maps.Clone(r.Floats)
	r.Sketches = maps.Clone(r.Sketches)
	r.Distinct = maps.Clone(r.Distinct)
	return r
}
