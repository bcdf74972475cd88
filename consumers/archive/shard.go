package archive

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/klauspost/compress/s2"

	"github.com/clickstream-go/clickstream/consumers"
)

// partKey identifies a partition buffer: event type and event-time hour.
type partKey struct {
	typ    string
	hourMS int64 // start of the UTC hour, Unix milliseconds
}

const hourMS = int64(time.Hour / time.Millisecond)

func partKeyOf(typ string, tsMS int64) partKey {
	h := tsMS % hourMS
	if h < 0 {
		h += hourMS
	}
	return partKey{typ: typ, hourMS: tsMS - h}
}

// partBuf holds one partition's rows until its shard flushes.
//
// With the archive's own Parquet writer (pqWriter: every config but a
// Bloom filter), a row goes straight into the partition's file as it
// arrives: into its columns' open pages, which are encoded and compressed
// as they fill, so what a partition holds is mostly its file's compressed
// pages (~40 bytes an event of the end-to-end traffic), and a flush only
// cuts the last pages and writes the footer. Rows used to be buffered
// packed and S2-compressed (~90 bytes an event) and written into the
// columns at the flush: packing, compressing, decompressing and reading
// them back was a fifth of the archive's CPU end to end.
//
// With parquet-go's writer (a Bloom filter configured), rows are kept in
// their buffered form (rowbuf.go), a stream cut into blocks of ~blockSize,
// full blocks compressed with S2, and read back into Rows at the flush (a
// decoded Row held ~1 KB an event).
type partBuf struct {
	p           Partition
	n           int   // rows
	raw         int64 // bytes of raw events
	first, last consumers.Position
	drained     bool // the rows were read or the file finished (once only)

	// The file being written (pqWriter), and its bytes so far; done is
	// its writer once the file is finished.
	w, done *pqWriter
	file    bytes.Buffer

	// The rows in their buffered form (parquet-go's writer).
	blocks [][]byte // full blocks, S2-compressed
	cur    []byte   // the open block, uncompressed
	sealed int64    // bytes of blocks
}

// errDrained: a partition's rows were read twice.
var errDrained = errors.New("buffered rows already read")

// blockSize is the uncompressed size of a partition's blocks: large enough
// for S2 to find the repeats between rows (types, hosts, user agents,
// sequence-number prefixes), small enough that hundreds of open partitions
// hold little in their open blocks.
const blockSize = 64 << 10

// held is the heap the partition's rows hold: its file being written (the
// writer's estimate, and the writer itself), or the compressed blocks and
// the open block's buffer.
func (pb *partBuf) held() int64 {
	n := pb.sealed + int64(cap(pb.cur))
	if pb.w != nil {
		n += pb.w.held + int64(unsafe.Sizeof(*pb.w))
	}
	return n
}

// write adds row to the partition's file, started with its first row, and
// returns how much more heap the partition holds.
func (pb *partBuf) write(e *encoder, row *Row) (int64, error) {
	if pb.drained {
		return 0, errDrained
	}
	before := pb.held()
	if pb.w == nil {
		pb.w = e.writer(&pb.file)
	}
	pb.w.add(row)
	if err := pb.w.rowDone(); err != nil {
		return 0, err
	}
	pb.n++
	return pb.held() - before, nil
}

// keep appends a row, in its buffered form b, sealing the open block first
// when b would overflow it; enc is scratch for the compressor. It returns
// how much more heap the partition holds (negative after a seal).
func (pb *partBuf) keep(b []byte, enc *[]byte) int64 {
	before := pb.held()
	if len(pb.cur) > 0 && len(pb.cur)+binary.MaxVarintLen64+len(b) > blockSize {
		*enc = s2.Encode((*enc)[:cap(*enc)], pb.cur)
		// An exact-size copy: Encode's buffer is sized for the worst case.
		pb.blocks = append(pb.blocks, bytes.Clone(*enc))
		pb.sealed += int64(len(*enc))
		pb.cur = pb.cur[:0]
	}
	if pb.cur == nil {
		// Grown by append: a partition of a few rows (late data) must not
		// hold a whole block.
		pb.cur = make([]byte, 0, max(512, 2*len(b)))
	}
	pb.cur = binary.AppendUvarint(pb.cur, uint64(len(b)))
	pb.cur = append(pb.cur, b...)
	pb.n++
	return pb.held() - before
}

// rowChunk is the reused buffer rows are read into at upload: a chunk of
// Rows, what they point to, and the decompressed block. Pooled, so uploads
// reuse the same few (one per file being encoded).
type rowChunk struct {
	rows    []Row
	scratch []rowScratch
	block   []byte
}

var rowChunks = sync.Pool{New: func() any { return new(rowChunk) }}

// release drops the chunk's references into an object's buffers, so a
// pooled chunk pins none of them, and pools it.
func (c *rowChunk) release() {
	clear(c.rows)
	for i := range c.scratch {
		clear(c.scratch[i].features)
		clear(c.scratch[i].attrs)
	}
	rowChunks.Put(c)
}

// rows is a rowSource over the buffered rows, block by block: a chunk
// never spans two blocks (its strings point into the block, and the next
// block is decompressed into the same buffer). The pooled rowChunk is taken
// at the first call, inside the encoder's slot, so only files being encoded
// hold one; release pools it again. Like packed, it reads the rows once.
func (pb *partBuf) rows(shardID string) (src rowSource, release func()) {
	var c *rowChunk
	next := 0    // next block; len(pb.blocks) is the open one
	var b []byte // rest of the current block
	drained := pb.drained
	pb.drained = true
	src = func(from, n int) ([]Row, error) {
		if drained {
			return nil, errDrained
		}
		if c == nil {
			c = rowChunks.Get().(*rowChunk)
		}
		if len(b) == 0 {
			switch {
			case next < len(pb.blocks):
				var err error
				if c.block, err = s2.Decode(c.block[:cap(c.block)], pb.blocks[next]); err != nil {
					return nil, fmt.Errorf("buffered rows, block %d: %w", next, err)
				}
				pb.blocks[next] = nil // read once, as packed
				b = c.block
			case next == len(pb.blocks):
				b = pb.cur
			}
			next++
		}
		c.rows = slices.Grow(c.rows[:0], n)[:n]
		if len(c.scratch) < n {
			c.scratch = append(c.scratch, make([]rowScratch, n-len(c.scratch))...)
		}
		k := 0
		for ; k < n && len(b) > 0; k++ {
			size, w := binary.Uvarint(b)
			if w <= 0 || size > uint64(len(b)-w) {
				return nil, fmt.Errorf("buffered row %d: %w", from+k, errCorruptRow)
			}
			if err := readRow(b[w:w+int(size)], &c.rows[k], &c.scratch[k]); err != nil {
				return nil, fmt.Errorf("buffered row %d: %w", from+k, err)
			}
			c.rows[k].ShardID = shardID
			b = b[w+int(size):]
		}
		if k == 0 {
			return nil, fmt.Errorf("buffered rows end at %d of %d", from, pb.n)
		}
		return c.rows[:k], nil
	}
	release = func() {
		if c != nil {
			c.release()
			c = nil
		}
	}
	return src, release
}

// shardProc archives one shard. Every flush writes ALL buffered rows of the
// shard (one object per partition) and so cuts the shard at one position:
// everything at or before it is in S3, nothing after it is. That makes
// "written" one position, replays cheap to skip and the pending flush one
// range (see shardState).
type shardProc struct {
	a      *Archive
	id     string
	states consumers.StateStore // nil: the host keeps no state (see OpenShard)
	log    *slog.Logger

	written  consumers.Position // every good record at or before it is in S3
	pending  *pendingFlush      // an interrupted flush being redone, or nil
	lastSeen consumers.Position // last record handed (or the checkpoint)
	durable  consumers.Position // last position reported durable

	parts map[partKey]*partBuf
	// spare are the writers of the files the last flush wrote, kept for
	// the same partitions' next files: an hour's rows of a type keep
	// arriving, and a writer's buffers then need not grow again from
	// nothing for every file (the open pages' growth was a fifth of what
	// the archive allocated in the end-to-end run). Those not taken again
	// by the next flush go back to the encoder's pool, trimmed.
	spare     map[partKey]*pqWriter
	spareMem  int64 // their buffers, counted in the budget
	rows      int
	mem       int64              // estimated memory of buffered rows
	firstPrev consumers.Position // lastSeen before the first buffered row
	firstAt   time.Time          // processing time of the first buffered row
	scratch   []byte             // a row's buffered form, before it goes to its partition
	encBuf    []byte             // the block compressor's output, before its exact-size copy
	pos       int64              // behind the Position of the row being packed

	err    error // sticky: after a failed flush only Close is valid
	closed bool
}

var (
	_ consumers.EventMapsReleaser = (*shardProc)(nil)
	_ consumers.EventListsReader  = (*shardProc)(nil)
)

// ReadsEventLists implements consumers.EventListsReader: a row's features
// and attrs are written into its file (or packed) as it arrives, in name
// order; the lists are not kept.
func (s *shardProc) ReadsEventLists() {}

// ReleasesEventMaps implements consumers.EventMapsReleaser: a row's map
// entries are copied into its file's pages (or its buffered form) when the
// row is added.
func (s *shardProc) ReleasesEventMaps() {}

var _ consumers.RecordDataReleaser = (*shardProc)(nil)

// ReleasesRecordData implements consumers.RecordDataReleaser: a row's
// values are copied into its file's pages, dictionaries and bounds (or its
// buffered form) when it is added, and a new partition's type is cloned;
// nothing else of a record is kept.
func (s *shardProc) ReleasesRecordData() {}

var _ consumers.BatchLimiter = (*shardProc)(nil)

// MaxBatchRecords implements consumers.BatchLimiter: a row is written into
// its partition's file as it is added, so the archive gains nothing from large
// batches, and a shard that hands it a whole GetRecords answer at once
// holds every record of it decoded, with its events' maps.
func (s *shardProc) MaxBatchRecords() int { return maxBatchRecords }

// maxBatchRecords: see MaxBatchRecords.
const maxBatchRecords = 256

var errClosed = errors.New("archive: shard processor is closed")

// Process implements consumers.ShardProcessor.
func (s *shardProc) Process(ctx context.Context, b consumers.Batch) (consumers.Position, error) {
	if err := s.usable(); err != nil {
		return consumers.Position{}, err
	}
	now := b.Now
	if now.IsZero() {
		now = s.a.cfg.Now()
	}
	for i := range b.Records {
		r := &b.Records[i]
		if s.pending != nil && r.Position.After(s.pending.To) {
			// The interrupted flush's last record never came back (trimmed
			// by retention): redo with what did.
			if err := s.flush(ctx, reasonRedo); err != nil {
				return s.fail(err)
			}
		}
		switch {
		case !r.Position.After(s.lastSeen):
			// Not after what was handed already: the runtime never does
			// this; ignoring it keeps a duplicate out of the archive.
			s.a.m.replayed.Inc()
			continue
		case !r.Position.After(s.written):
			s.lastSeen = r.Position
			s.a.m.replayed.Inc()
		case r.Err != nil:
			// The runtime has already stored it under errors/ (before
			// calling Process); the archive only counts it.
			s.lastSeen = r.Position
			s.a.m.badRecords.Inc()
		case r.Duplicate:
			// A copy of an event already archived (the runtime counts it).
			s.lastSeen = r.Position
		default:
			if err := s.add(ctx, r, now); err != nil {
				return s.fail(err)
			}
		}
		if s.pending != nil && !s.pending.To.After(r.Position) {
			if err := s.flush(ctx, reasonRedo); err != nil {
				return s.fail(err)
			}
		}
	}
	if s.pending == nil && s.rows > 0 {
		reason := ""
		switch {
		case now.Sub(s.firstAt) >= s.a.cfg.MaxAge:
			reason = reasonAge
		case s.overBudget():
			reason = reasonMemory
		}
		if reason != "" {
			if err := s.flush(ctx, reason); err != nil {
				return s.fail(err)
			}
		}
	}
	return s.report(), nil
}

// add buffers one good record, flushing first or after when a limit says so.
func (s *shardProc) add(ctx context.Context, r *consumers.Record, now time.Time) error {
	pk := partKeyOf(r.Event.Type, r.Event.TS.UnixMilli())
	pb := s.parts[pk]
	if pb == nil {
		if s.pending == nil && len(s.parts) >= s.a.cfg.MaxPartitions {
			if err := s.flush(ctx, reasonPartitions); err != nil {
				return err
			}
		}
		// The partition outlives the batch: its type is a copy, since the
		// event's strings point into the batch's read buffer.
		pk.typ = strings.Clone(pk.typ)
		pb = &partBuf{p: Partition{Type: pk.typ, Hour: time.UnixMilli(pk.hourMS).UTC()}, first: r.Position}
		s.parts[pk] = pb
	}
	if s.rows == 0 {
		s.firstPrev, s.firstAt = s.lastSeen, now
	}
	row := rowOf(r, &s.pos)
	var mem int64
	if s.a.enc.layout != nil {
		if pb.n == 0 && pb.w == nil {
			mem = s.takeSpare(pk, pb)
		}
		row.ShardID = s.id
		d, err := pb.write(s.a.enc, &row)
		if err != nil {
			return fmt.Errorf("write parquet row: %w", err)
		}
		mem += d
	} else {
		s.scratch = appendRow(s.scratch[:0], &row)
		mem = pb.keep(s.scratch, &s.encBuf)
	}
	pb.raw += int64(len(r.Data))
	pb.last = r.Position
	s.lastSeen = r.Position
	s.rows++
	s.mem += mem
	s.account(mem)
	s.a.m.bufferedRows.Inc()
	if s.pending != nil {
		return nil // a redo cuts exactly where the interrupted flush did
	}
	switch {
	case pb.raw >= s.a.cfg.FlushBytes || pb.n >= s.a.cfg.FlushRows:
		return s.flush(ctx, reasonSize)
	case s.overBudget():
		return s.flush(ctx, reasonMemory)
	}
	return nil
}

// overBudget: the Archive's buffers exceed the memory budget and this shard
// holds at least its fair share, so flushing it frees the most. Shards under
// their share wait for the larger ones, which check on their next batch
// (idle polls included), so the overshoot is about one batch per shard.
func (s *shardProc) overBudget() bool {
	total := s.a.buffered.Load()
	if total <= s.a.cfg.MemoryBudget || s.mem == 0 {
		return false
	}
	return s.mem*max(s.a.open.Load(), 1) >= total
}

// report returns the newly durable position, or the zero Position.
func (s *shardProc) report() consumers.Position {
	d := s.lastSeen
	if s.rows > 0 {
		d = s.firstPrev
	}
	if d.After(s.durable) {
		s.durable = d
		return d
	}
	return consumers.Position{}
}

// Flush implements consumers.ShardProcessor.
func (s *shardProc) Flush(ctx context.Context) (consumers.Position, error) {
	if err := s.usable(); err != nil {
		return consumers.Position{}, err
	}
	if p := s.pending; p != nil {
		// The host stops (shutdown, end of a Lambda invocation) before the
		// replay reached the end of the interrupted flush. Its objects may
		// hold records not handed again yet; delete them so the rest of the
		// range, when it comes back, is archived once, in new objects.
		s.log.Info("interrupted flush not replayed to its end; deleting its objects",
			slog.String("to", p.To.String()), slog.String("last_seen", s.lastSeen.String()))
		for _, k := range p.Keys {
			// Best effort: an upload left open costs storage until it is
			// aborted, never a wrong row.
			if err := s.a.store.AbortUploads(ctx, k); err != nil {
				s.log.Warn("abort of open multipart uploads failed; their parts are billed until aborted", slog.String("key", k), slog.Any("err", err))
			}
		}
		if err := s.a.store.Delete(ctx, p.Keys); err != nil {
			return s.fail(err)
		}
		s.pending = nil
		if s.rows == 0 {
			// The checkpoint may lag "written": never move it back.
			w := s.written
			if s.lastSeen.After(w) {
				w = s.lastSeen
			}
			if err := s.save(ctx, shardState{Written: w}); err != nil {
				return s.fail(err)
			}
			s.written = w
		}
	}
	if s.rows > 0 {
		if err := s.flush(ctx, reasonFlush); err != nil {
			return s.fail(err)
		}
	}
	s.report()
	return s.durable, nil
}

// Close implements consumers.ShardProcessor: buffered rows are dropped (the
// next owner replays them from the checkpoint).
func (s *shardProc) Close() {
	if s.closed {
		return
	}
	s.closed = true
	s.release()
	s.dropSpares()
	s.a.open.Add(-1)
	s.a.m.openShards.Dec()
}

func (s *shardProc) usable() error {
	if s.closed {
		return errClosed
	}
	return s.err
}

func (s *shardProc) fail(err error) (consumers.Position, error) {
	s.err = fmt.Errorf("archive shard %s: %w", s.id, err)
	return consumers.Position{}, s.err
}

// release forgets the buffered rows and returns their memory to the budget.
func (s *shardProc) release() {
	s.account(-s.mem)
	s.a.m.bufferedRows.Sub(float64(s.rows))
	clear(s.parts)
	s.rows, s.mem = 0, 0
}

// account adds d bytes to the memory the Archive's buffers hold.
func (s *shardProc) account(d int64) {
	s.a.buffered.Add(d)
	bufferedInProcess.Add(d)
	s.a.m.bufferedBytes.Add(float64(d))
}

// keepWriters keeps the writers of the files the flush just wrote as the
// spares of their partitions, and gives back the spares of the flush before
// that no partition took again.
func (s *shardProc) keepWriters() {
	s.dropSpares()
	if s.spare == nil {
		s.spare = map[partKey]*pqWriter{}
	}
	for pk, pb := range s.parts {
		if w := pb.done; w != nil {
			pb.done = nil
			s.spare[pk] = w
			s.spareMem += w.heldBytes()
		}
	}
	s.account(s.spareMem)
}

// dropSpares gives the spare writers back to the encoder's pool.
func (s *shardProc) dropSpares() {
	for _, w := range s.spare {
		s.a.enc.pool.Put(w)
	}
	clear(s.spare)
	s.account(-s.spareMem)
	s.spareMem = 0
}

// takeSpare starts pb's file with its partition's spare writer, if it has
// one, and returns the heap that writer brings.
func (s *shardProc) takeSpare(pk partKey, pb *partBuf) int64 {
	w := s.spare[pk]
	if w == nil {
		return 0
	}
	delete(s.spare, pk)
	h := w.heldBytes()
	s.spareMem -= h
	s.account(-h)
	w.restart(&pb.file)
	pb.w = w
	return pb.held()
}

func (s *shardProc) save(ctx context.Context, st shardState) error {
	if s.states == nil {
		return nil
	}
	b, err := st.marshal()
	if err != nil {
		return err
	}
	if err := s.states.Save(ctx, b); err != nil {
		if errors.Is(err, consumers.ErrNoStateStore) {
			// A host without a store (Lambda without WithStateStore): go
			// on without, as OpenShard would have had Load said so.
			s.log.Warn("no per-shard state store: a flush interrupted by a crash may leave duplicate rows")
			s.states = nil
			return nil
		}
		return fmt.Errorf("save archive state: %w", err)
	}
	return nil
}

// object is one Parquet object of a flush.
type object struct {
	key string
	pb  *partBuf
}

// flush writes every buffered row, one object per partition, and moves
// "written" to the cut: lastSeen, or the interrupted flush's end when
// redoing it. The order is what makes a crash anywhere harmless:
//
//  1. save the pending flush (cut + keys) — unless redoing it;
//  2. upload every object (same keys on a redo: overwrites);
//  3. on a redo, delete keys of the interrupted flush not produced now;
//  4. save written = cut, no pending; the runtime checkpoints afterwards.
func (s *shardProc) flush(ctx context.Context, reason string) error {
	start := time.Now()
	redo := s.pending != nil
	cut := s.lastSeen
	if redo {
		cut = s.pending.To
	}
	objs := make([]object, 0, len(s.parts))
	for _, pb := range s.parts {
		objs = append(objs, object{key: ObjectKey(s.a.cfg.Prefix, pb.p, s.id, pb.first, pb.last), pb: pb})
	}
	slices.SortFunc(objs, func(a, b object) int { return strings.Compare(a.key, b.key) })
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.key
	}
	if !redo && len(objs) > 0 {
		if err := s.save(ctx, shardState{Written: s.written, Pending: &pendingFlush{To: cut, Keys: keys}}); err != nil {
			return err
		}
	}
	if err := s.upload(ctx, objs); err != nil {
		if s.states == nil && !redo {
			// Nothing records this flush for a redo, and the retry will
			// cut differently: take back what was uploaded.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			if derr := s.a.store.Delete(dctx, keys); derr != nil {
				s.log.Warn("delete objects of a failed flush", slog.Any("err", derr))
			}
			cancel()
		}
		return err
	}
	if redo {
		var stale []string
		for _, k := range s.pending.Keys {
			if _, found := slices.BinarySearch(keys, k); !found {
				stale = append(stale, k)
			}
		}
		if len(stale) > 0 {
			s.log.Warn("interrupted flush had objects the redo does not produce (records trimmed?); deleting them",
				slog.Int("objects", len(stale)))
			if err := s.a.store.Delete(ctx, stale); err != nil {
				return err
			}
		}
	}
	if redo || len(objs) > 0 {
		if err := s.save(ctx, shardState{Written: cut}); err != nil {
			return err
		}
	}
	// On a redo cut beyond lastSeen (its last records were trimmed) the
	// durable position stays lastSeen, a real record; replays up to the cut
	// are skipped as written.
	s.written, s.pending = cut, nil
	s.keepWriters()
	s.a.m.flushes.WithLabelValues(reason).Inc()
	s.a.m.flushSeconds.Observe(time.Since(start).Seconds())
	s.log.LogAttrs(ctx, slog.LevelDebug, "flushed", slog.String("reason", reason), slog.Int("objects", len(objs)),
		slog.Int("rows", s.rows), slog.String("to", cut.String()), slog.Duration("took", time.Since(start)))
	s.release()
	return nil
}

// upload encodes and uploads objs, UploadConcurrency at a time; the first
// error cancels the rest.
func (s *shardProc) upload(ctx context.Context, objs []object) error {
	if len(objs) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan object)
	errs := make(chan error, len(objs))
	var wg sync.WaitGroup
	for range min(s.a.cfg.UploadConcurrency, len(objs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				err := s.uploadOne(ctx, o)
				if err != nil {
					cancel()
				}
				errs <- err
			}
		}()
	}
	for _, o := range objs {
		work <- o
	}
	close(work)
	wg.Wait()
	close(errs)
	// Report the errors that caused the cancellation, not the cancellations.
	var real []error
	var first error
	for err := range errs {
		if err == nil {
			continue
		}
		first = cmp.Or(first, err)
		if !errors.Is(err, context.Canceled) {
			real = append(real, err)
		}
	}
	if len(real) > 0 {
		return errors.Join(real...)
	}
	return first
}

func (s *shardProc) uploadOne(ctx context.Context, o object) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n := o.pb.n
	body, err := s.a.enc.encodePart(o.pb, s.id)
	if err != nil {
		return fmt.Errorf("encode %s: %w", o.key, err)
	}
	if err := s.a.store.Put(ctx, o.key, body); err != nil {
		return err
	}
	s.a.m.rows.Add(float64(n))
	s.a.m.objects.Inc()
	s.a.m.bytes.Add(float64(len(body)))
	return nil
}
