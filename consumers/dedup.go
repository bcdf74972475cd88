package consumers

import (
	"hash/maphash"
	"time"
)

// Duplicate events, and why the runtime drops them by event id.
//
// A producer that retries a PutRecords call whose answer it never got (a
// dropped connection, a timeout) writes the same events again, and an app
// that retries a collector request whose 202 it lost does the same. Each
// copy gets its own sequence number, so the processors' exactly-once
// positions cannot tell them apart: the archive would keep two rows, the
// vector and the CTR would count the event twice. Every event carries an
// id (the collector and loadgen assign one), so the runtime keeps, per
// shard, the ids of the most recent events and marks a record whose id it
// has already handed as Duplicate; processors skip it.
//
// The window is per shard because a retry carries the same partition key
// to the same shard. It is bounded by arrival time (DedupWindow: a copy
// arriving longer after its original is not caught) and by count
// (DedupMaxIDs, which bounds memory: about 65 bytes of heap an id). After a
// restart or a lease moving to another process, the runtime rebuilds the
// window by reading the DedupWindow of records before the checkpoint
// (GetShardIterator AT_TIMESTAMP), so the decisions of a replay are the
// same as the first run's. A child shard's window starts with the last
// DedupWindow of its parents' records, so a retry across a reshard (the
// original on the parent, the copy on the child) is caught too. Not
// covered: events without an id.

// DedupWindow remembers the ids of one shard's most recent events. Ids are
// kept as 64-bit hashes: two distinct ids collide with probability about
// n/2^64 per lookup (n ids in the window), negligible next to the
// duplicates it removes. Not safe for concurrent use.
type DedupWindow struct {
	maxAge int64 // ms
	maxIDs int
	seed   maphash.Seed
	ids    map[uint64]struct{}
	// ring is a FIFO of the window's entries: n of them from head,
	// wrapping. It grows by doubling up to maxIDs and is never compacted,
	// so it holds at most maxIDs entries (16 bytes each).
	ring    []dedupEntry
	head, n int
	newest  int64 // latest arrival seen, ms
}

type dedupEntry struct {
	h  uint64
	at int64 // arrival, ms
}

// NewDedupWindow returns a window of ids of events that arrived within
// maxAge of the newest, at most maxIDs of them; nil (which treats nothing
// as seen) when either is not positive.
func NewDedupWindow(maxAge time.Duration, maxIDs int) *DedupWindow {
	if maxAge <= 0 || maxIDs <= 0 {
		return nil
	}
	return &DedupWindow{maxAge: maxAge.Milliseconds(), maxIDs: maxIDs, seed: maphash.MakeSeed(), ids: make(map[uint64]struct{})}
}

// Seen reports whether id is in the window, and adds it when it is not.
// Records must be presented in shard order; arrival is the Kinesis record's
// ApproximateArrivalTimestamp.
func (w *DedupWindow) Seen(id string, arrival time.Time) bool {
	if w == nil || id == "" {
		return false
	}
	at := arrival.UnixMilli()
	if at > w.newest {
		w.newest = at
	}
	for w.n > 0 && w.ring[w.head].at < w.newest-w.maxAge {
		w.evict()
	}
	h := maphash.String(w.seed, id)
	if _, ok := w.ids[h]; ok {
		return true
	}
	if w.n >= w.maxIDs {
		w.evict()
	}
	if w.n == len(w.ring) {
		w.grow()
	}
	w.ring[(w.head+w.n)%len(w.ring)] = dedupEntry{h: h, at: at}
	w.n++
	w.ids[h] = struct{}{}
	return false
}

// grow doubles the ring (up to maxIDs), unwrapping it.
func (w *DedupWindow) grow() {
	size := min(max(2*len(w.ring), 1024), w.maxIDs)
	ring := make([]dedupEntry, size)
	for i := range w.n {
		ring[i] = w.ring[(w.head+i)%len(w.ring)]
	}
	w.ring, w.head = ring, 0
}

func (w *DedupWindow) evict() {
	delete(w.ids, w.ring[w.head].h)
	w.head = (w.head + 1) % len(w.ring)
	w.n--
}

// Len is the number of ids in the window.
func (w *DedupWindow) Len() int {
	if w == nil {
		return 0
	}
	return w.n
}

// Mark sets Duplicate on every valid record of rs whose event id the
// window has seen, adds the others' ids, and returns how many it marked.
func (w *DedupWindow) Mark(rs []Record) int {
	if w == nil {
		return 0
	}
	n := 0
	for i := range rs {
		r := &rs[i]
		if r.Err != nil || r.Duplicate {
			continue
		}
		if w.Seen(r.Event.ID, r.ArrivalTime) {
			r.Duplicate = true
			n++
		}
	}
	return n
}
