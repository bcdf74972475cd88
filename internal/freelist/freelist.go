// Package freelist is a bounded list of values kept for reuse.
//
// Unlike a sync.Pool, a garbage collection does not empty it. The archive
// runs under a soft memory limit, so the collector runs often, and pooled
// zstd encoders (~1.6 MB each), page scratch and GetRecords answers' memory
// were made again after every collection. What a List keeps is bounded by
// its size: the values are taken for work that does not block (about
// GOMAXPROCS at once), so a process of many shards keeps a few, not one per
// shard.
package freelist

// List keeps up to its size of values. The zero List keeps nothing.
type List[T any] struct{ ch chan T }

// New returns a List that keeps up to n values.
func New[T any](n int) List[T] { return List[T]{ch: make(chan T, n)} }

// Get returns a kept value, or false when there is none.
func (l List[T]) Get() (T, bool) {
	select {
	case v := <-l.ch:
		return v, true
	default:
		var zero T
		return zero, false
	}
}

// Put keeps v if there is room, and drops it otherwise.
func (l List[T]) Put(v T) {
	select {
	case l.ch <- v:
	default:
	}
}
