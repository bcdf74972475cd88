package consumers

import (
	"hash/maphash"
	"math/bits"
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
// (DedupMaxIDs, which bounds memory: 22 to 38 bytes of heap an id). After a
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
//
// An id costs 22 to 38 bytes of heap (BenchmarkDedupWindow_Memory): 8 in
// the hash set's slots (an open-addressing table kept between 2/5 and 3/5
// full), 8 in the FIFO of hashes, and its share of a run of equal arrival
// times (16 bytes a run): 22 when 30 ids arrive in a millisecond (KPL
// aggregates, PutRecords batches), 38 when each has its own. A Go
// map[uint64]struct{} and a ring grown by doubling held 63 bytes an id (a
// map that keeps deleting holds tombstones and grows anyway); at 100,000
// ids per shard the windows were a fifth to a third of a consumer's live
// heap. Lookups are about as fast (BenchmarkDedupWindow_Seen: 103–117 ns against
// 100–115 for a miss that evicts).
type DedupWindow struct {
	maxAge int64 // ms
	maxIDs int
	seed   maphash.Seed
	ids    idSet
	fifo   dedupFIFO
	newest int64 // latest arrival seen, ms
}

// NewDedupWindow returns a window of ids of events that arrived within
// maxAge of the newest, at most maxIDs of them; nil (which treats nothing
// as seen) when either is not positive.
func NewDedupWindow(maxAge time.Duration, maxIDs int) *DedupWindow {
	if maxAge <= 0 || maxIDs <= 0 {
		return nil
	}
	return &DedupWindow{maxAge: maxAge.Milliseconds(), maxIDs: maxIDs, seed: maphash.MakeSeed(),
		ids: idSet{maxLen: maxIDs}}
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
	for w.fifo.len() > 0 && w.fifo.oldestAt() < w.newest-w.maxAge {
		w.ids.remove(w.fifo.pop())
	}
	h := maphash.String(w.seed, id)
	if h == 0 {
		h = 1 // 0 marks an empty slot of the set
	}
	if w.ids.has(h) {
		return true
	}
	if w.fifo.len() >= w.maxIDs {
		w.ids.remove(w.fifo.pop())
	}
	w.ids.add(h)
	w.fifo.push(h, at)
	return false
}

// Len is the number of ids in the window.
func (w *DedupWindow) Len() int {
	if w == nil {
		return 0
	}
	return w.fifo.len()
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

// idSet is a set of nonzero 64-bit hashes: open addressing with linear
// probing, over any number of slots (a hash's home slot is its top bits
// scaled to the table: Lemire's multiply-shift), so the table can grow by
// half and stop at exactly what maxLen needs. Removal shifts the rest of
// the probe run back (no tombstones), so a set that keeps removing and
// adding never needs to be rebuilt.
type idSet struct {
	slots  []uint64 // 0: empty
	n      int
	maxLen int // the most the set will hold: it never grows past 3/5 full at maxLen
}

func (s *idSet) home(h uint64) int {
	hi, _ := bits.Mul64(h, uint64(len(s.slots)))
	return int(hi)
}

func (s *idSet) next(i int) int {
	if i++; i == len(s.slots) {
		return 0
	}
	return i
}

func (s *idSet) has(h uint64) bool {
	if s.n == 0 {
		return false
	}
	for i := s.home(h); ; i = s.next(i) {
		switch s.slots[i] {
		case h:
			return true
		case 0:
			return false
		}
	}
}

// add inserts h, which the set must not hold.
func (s *idSet) add(h uint64) {
	if 5*(s.n+1) > 3*len(s.slots) {
		s.grow()
	}
	i := s.home(h)
	for s.slots[i] != 0 {
		i = s.next(i)
	}
	s.slots[i] = h
	s.n++
}

// grow rehashes into half again as many slots (at least 1024), no more
// than maxLen needs at 3/5 full. Linear probing slows down fast past that:
// at 3/4 a lookup that misses probed ~8 slots, and Seen took 130 ns.
func (s *idSet) grow() {
	size := max(len(s.slots)*3/2, 1024)
	if limit := s.maxLen*5/3 + 1; size > limit && limit > len(s.slots) {
		size = limit
	}
	old := s.slots
	s.slots, s.n = make([]uint64, size), 0
	for _, h := range old {
		if h != 0 {
			s.add(h)
		}
	}
}

// remove deletes h, if the set holds it.
func (s *idSet) remove(h uint64) {
	if s.n == 0 {
		return
	}
	i := s.home(h)
	for s.slots[i] != h {
		if s.slots[i] == 0 {
			return
		}
		i = s.next(i)
	}
	// i is a hole. A later member of the run moves into it when the hole
	// is on its probe path: cyclically within [its home, where it is).
	for j := s.next(i); s.slots[j] != 0; j = s.next(j) {
		k := s.home(s.slots[j])
		if (i <= j && (k <= i || k > j)) || (i > j && k <= i && k > j) {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = 0
	s.n--
}

// dedupFIFO holds the window's hashes in arrival order, and their
// arrivals as runs of equal times: the events of a KPL aggregate share
// their record's arrival, as do the records of one PutRecords call, so a
// full window (the case its memory matters in) holds few runs. An id costs
// 8 bytes and its share of a 16-byte run: 24 when every id arrived at a
// millisecond of its own, ~8.5 for aggregates of 30 events.
type dedupFIFO struct {
	hashes chunkQueue[uint64]
	runs   chunkQueue[arrivalRun]
}

// arrivalRun is n consecutive entries that arrived at the same
// millisecond.
type arrivalRun struct {
	at int64 // ms
	n  int
}

func (f *dedupFIFO) len() int { return f.hashes.n }

func (f *dedupFIFO) push(h uint64, at int64) {
	f.hashes.push(h)
	if f.runs.n > 0 {
		if last := f.runs.back(); last.at == at {
			last.n++
			return
		}
	}
	f.runs.push(arrivalRun{at: at, n: 1})
}

// oldestAt is the arrival of the oldest entry; the FIFO must not be empty.
func (f *dedupFIFO) oldestAt() int64 { return f.runs.front().at }

// pop removes the oldest entry and returns its hash; the FIFO must not be
// empty.
func (f *dedupFIFO) pop() uint64 {
	if r := f.runs.front(); r.n > 1 {
		r.n--
	} else {
		f.runs.pop()
	}
	return f.hashes.pop()
}

// chunkQueue is a FIFO in fixed chunks: it grows and shrinks a chunk at a
// time, never copying its values, and holds at most two chunks more than
// its values need.
type chunkQueue[T any] struct {
	chunks     []*[queueChunk]T
	head, tail int // next to pop in chunks[0]; next free in the last chunk
	n          int
	spare      *[queueChunk]T // the last chunk emptied, for the next one needed
}

const queueChunk = 512

func (q *chunkQueue[T]) push(v T) {
	if len(q.chunks) == 0 || q.tail == queueChunk {
		c := q.spare
		if c == nil {
			c = new([queueChunk]T)
		}
		q.spare = nil
		q.chunks = append(q.chunks, c)
		q.tail = 0
	}
	q.chunks[len(q.chunks)-1][q.tail] = v
	q.tail++
	q.n++
}

// front is the oldest value, back the newest; the queue must not be empty.
func (q *chunkQueue[T]) front() *T { return &q.chunks[0][q.head] }
func (q *chunkQueue[T]) back() *T  { return &q.chunks[len(q.chunks)-1][q.tail-1] }

// pop removes the oldest value; the queue must not be empty.
func (q *chunkQueue[T]) pop() T {
	v := q.chunks[0][q.head]
	q.head++
	q.n--
	if q.head == queueChunk || q.n == 0 {
		// The first chunk is used up (or the queue empty): it becomes the spare.
		q.spare = q.chunks[0]
		q.chunks[0] = nil
		q.chunks = q.chunks[1:]
		q.head = 0
	}
	return v
}
