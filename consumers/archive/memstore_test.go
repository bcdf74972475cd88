package archive

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"sync"
)

// memStore is an in-memory objectStore for pure-logic tests, with fault
// injection: failPut, when set, is consulted before each Put.
type memStore struct {
	mu      sync.Mutex
	objects map[string][]byte
	puts    int
	failPut func(key string) error
}

func newMemStore() *memStore { return &memStore{objects: map[string][]byte{}} }

func (m *memStore) Put(ctx context.Context, key string, body []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failPut != nil {
		if err := m.failPut(key); err != nil {
			return err
		}
	}
	m.objects[key] = bytes.Clone(body)
	m.puts++
	return nil
}

func (m *memStore) Delete(ctx context.Context, keys []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.objects, k)
	}
	return nil
}

func (m *memStore) AbortUploads(ctx context.Context, key string) error { return nil }

// keys returns the stored keys under prefix, sorted.
func (m *memStore) keys(prefix string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.objects {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
