package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/internal/retry"
)

// callTimeout bounds one AWS call, so a hung connection cannot stall a shard.
const callTimeout = 30 * time.Second

// noSDKRetries turns the SDK's own retries off for GetRecords: the shard
// loop paces, backs off and counts throttled calls itself. With the SDK's
// retryer on, a throttled call (several applications sharing a shard's 5
// reads/s) waited up to three attempts with backoff of up to 20 s, and
// drained the client's retry quota, before the loop even saw it.
func noSDKRetries(o *kinesis.Options) { o.RetryMaxAttempts = 1 }

var (
	errStopped   = errors.New("shard stopped")
	errShardGone = errors.New("shard no longer exists (past retention)")
)

// shardWorker reads one leased shard and drives its ShardProcessor. It is
// owned by the Runner: requestStop asks for a graceful stop (flush,
// checkpoint, release), abort for an immediate one (lease lost).
type shardWorker struct {
	r     *Runner
	info  StreamShard
	lease leases.Lease // fencing copy: Owner and Epoch never change while held
	log   *slog.Logger
	met   shardMetrics

	ctx      context.Context
	abort    context.CancelFunc
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	released atomic.Bool
	lost     atomic.Bool // set before abort when the lease was lost
	// lastRenew is touched only by the coordinator's renewals.
	lastRenew time.Time

	// writeMu orders the lease writes (commit, StateStore.Save) so a
	// checkpoint never moves backwards; it is held across one write, never
	// across a backoff. mu guards the checkpoint fields for moments only:
	// the processor may call the StateStore from its own goroutines.
	writeMu    sync.Mutex
	mu         sync.Mutex
	checkpoint Position // last written
	durable    Position // reported durable by the processor, ≥ checkpoint
	handed     Position // last position handed to the processor this session
	state      []byte
	lastCommit time.Time
}

// newShardWorker makes a worker whose context is a child of work, the
// runner's context that outlives graceful shutdown.
func newShardWorker(work context.Context, r *Runner, l leases.Lease, info StreamShard) *shardWorker {
	ctx, cancel := context.WithCancel(work)
	return &shardWorker{
		r: r, info: info, lease: l,
		log:        r.log.With(slog.String("shard", l.ShardID)),
		met:        r.m.shard(r.cfg.App, l.ShardID),
		ctx:        ctx,
		abort:      cancel,
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		lastRenew:  r.cfg.Now(),
		checkpoint: l.Checkpoint,
		durable:    l.Checkpoint,
		state:      l.State,
	}
}

func (w *shardWorker) requestStop() { w.stopOnce.Do(func() { close(w.stop) }) }

// loseLease stops the worker at once, without checkpointing: someone else
// holds (or may hold) the lease.
func (w *shardWorker) loseLease() {
	w.lost.Store(true)
	w.abort()
}

func (w *shardWorker) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (w *shardWorker) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// run owns the shard until it is finished, stopped or lost; processor and
// read errors restart a session from the checkpoint after a back-off.
func (w *shardWorker) run() {
	defer w.r.wakeUp()
	defer close(w.done)
	defer w.abort()
	defer w.r.m.dropShard(w.r.cfg.App, w.lease.ShardID)
	w.log.Info("shard started", slog.String("checkpoint", w.checkpoint.String()))
	bo := retry.Backoff{Min: w.r.cfg.PollInterval, Max: w.r.cfg.MaxBackoff}
	var errs errLog
	for {
		began := time.Now()
		err := w.session()
		if time.Since(began) > 2*w.r.cfg.MaxBackoff {
			bo.Reset() // a long healthy session: start backing off afresh
		}
		switch {
		case err == nil:
			return
		case errors.Is(err, leases.ErrLeaseLost), w.lost.Load():
			w.log.Info("shard stopped: lease lost")
			return
		case w.ctx.Err() != nil:
			w.log.Info("shard abandoned")
			return
		case errors.Is(err, errStopped):
			return
		}
		w.r.m.procError(w.r.cfg.App)
		errs.log(w.log, slog.LevelError, "shard session failed; replaying from checkpoint", err)
		stopped, err := w.sleep(bo.Next())
		if err != nil {
			w.log.Info("shard abandoned")
			return
		}
		if stopped {
			// Nothing is buffered (the processor was closed): release as is.
			if err := w.commit(w.ctx, false, true, 3); err != nil && !errors.Is(err, leases.ErrLeaseLost) {
				w.log.Warn("lease release failed; it will expire", slog.Any("err", err))
			}
			return
		}
	}
}

// session opens the processor at the checkpoint and reads until the shard
// ends (nil), a stop was requested (nil), or an error.
func (w *shardWorker) session() (err error) {
	// A panicking processor fails its shard's session, not the process: the
	// shard replays from its checkpoint after a back-off (like net/http
	// recovering a handler).
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in processor: %v\n%s", p, debug.Stack())
		}
	}()
	ctx := w.ctx
	w.mu.Lock()
	start := w.checkpoint
	w.durable, w.handed = start, start
	w.mu.Unlock()

	sp, err := w.r.cfg.Processor.OpenShard(ctx, Shard{
		ID: w.lease.ShardID, Parents: slices.Clone(w.info.Parents), HashKeyRange: w.info.Range,
		Checkpoint: start, State: shardState{w},
	})
	if err != nil {
		return fmt.Errorf("open shard: %w", err)
	}
	defer sp.Close()
	dec, err := NewRecordDecoder(w.lease.ShardID, w.info.Range)
	if err != nil {
		w.log.Warn("bad shard hash key range; out-of-range check off", slog.Any("err", err))
		dec, _ = NewRecordDecoder(w.lease.ShardID, HashKeyRange{})
	}

	// A fresh de-duplication window per session, rebuilt from the records
	// before the checkpoint so a replay decides as the first run did.
	dedup := NewDedupWindow(w.r.cfg.DedupWindow, w.r.cfg.DedupMaxIDs)
	var from time.Time // AT_TIMESTAMP start of the rebuild; zero: none
	if dedup != nil {
		// Parents first: a retry across a reshard puts the copy on this
		// shard and the original on a parent.
		for _, parent := range w.info.Parents {
			w.seedFromParent(dedup, parent)
		}
		if !start.IsZero() {
			from = w.rebuildFrom(w.lease.ShardID, start)
		}
	}
	// The processor keeps nothing of a batch's data: each answer is read
	// into memory an earlier answer left (RecordDataReleaser).
	_, reuse := sp.(RecordDataReleaser)
	rd, err := w.newReader(start, from, reuse)
	if errors.Is(err, errShardGone) {
		w.log.Error("shard vanished before it was read to the end: its remaining data expired", slog.String("checkpoint", start.String()))
		return w.commit(ctx, true, true, -1)
	}
	if err != nil {
		return w.finish(sp, err)
	}
	defer rd.close()

	var (
		errs errLog
		skip = start // drop user records at or before the checkpoint
		// The processor keeps no event maps: its batches' maps decode
		// later events (EventMapsReleaser).
		_, recycle = sp.(EventMapsReleaser)
		maxBatch   = math.MaxInt
	)
	// Or it reads the features and attrs as lists (EventListsReader).
	if _, ok := sp.(EventListsReader); ok {
		dec.UseLists()
	}
	if bl, ok := sp.(BatchLimiter); ok {
		maxBatch = max(bl.MaxBatchRecords(), 1)
	}
	for {
		b, err := rd.next()
		if errors.Is(err, errShardGone) {
			w.log.Error("shard vanished before it was read to the end: its remaining data expired", slog.String("checkpoint", start.String()))
			return w.commit(ctx, true, true, -1)
		}
		if err != nil {
			return w.finish(sp, err)
		}
		switch {
		case len(b.children) > 0:
			// Children are known at once, without waiting for a ListShards.
			w.r.addChildren(b.children)
		case b.end:
			w.r.syncNow.Store(true) // emulators without ChildShards: list instead
		}
		if err := w.handAnswer(ctx, sp, dec, dedup, &skip, b, maxBatch, recycle); err != nil {
			return err
		}
		if b.end {
			pos, err := sp.Flush(ctx)
			if err != nil {
				return fmt.Errorf("flush at shard end: %w", err)
			}
			w.noteDurable(pos)
			if err := w.commit(ctx, true, true, -1); err != nil {
				return err
			}
			w.log.Info("shard finished", slog.String("checkpoint", w.checkpointNow().String()))
			return nil
		}
		if w.commitDue() {
			// One attempt: the next batch tries again, so a failure here
			// only delays the checkpoint.
			if err := w.commit(ctx, false, false, 0); errors.Is(err, leases.ErrLeaseLost) {
				return err
			} else if err != nil {
				errs.log(w.log, slog.LevelWarn, "checkpoint failed; retrying after the next batch", err)
			}
		}
	}
}

// batchRecords pools the Records slices of batches (*[]Record). A Record is
// ~500 bytes and a batch holds thousands: allocated for every batch, they
// were ~30% of the bytes a consumer allocated, and collections cost in
// proportion to those bytes.
var batchRecords sync.Pool

// handAnswer hands one answer's records to the processor in batches of at
// most maxBatch user records (whole Kinesis records: an aggregate is never
// split), and at least one batch: idle polls let processors flush by age.
// Records at or before *skip are not handed (see skipToCheckpoint).
func (w *shardWorker) handAnswer(ctx context.Context, sp ShardProcessor, dec *RecordDecoder, dedup *DedupWindow,
	skip *Position, b readBatch, maxBatch int, recycle bool) error {
	w.met.call()
	rest := b.records
	dec.VerifyAggregates(len(rest), func(i int) []byte { return rest[i].Data })
	for first := true; first || len(rest) > 0; first = false {
		// A batch holds at most maxBatch Kinesis records: sizing it from
		// those alone, not from all the answer's rest again for every batch.
		records := getBatchRecords(min(recordsCap(rest[:min(len(rest), maxBatch)]), maxBatch))
		n := 0
		for ; n < len(rest) && len(records) < maxBatch; n++ {
			kr := &rest[n]
			records = dec.Append(records, KinesisRecord{
				SequenceNumber: aws.ToString(kr.SequenceNumber), PartitionKey: aws.ToString(kr.PartitionKey),
				ArrivalTime: aws.ToTime(kr.ApproximateArrivalTimestamp), Data: kr.Data,
			})
		}
		rest = rest[n:]
		last := len(rest) == 0
		err := w.handle(ctx, sp, skipToCheckpoint(records, skip, dedup, b.end && last), dedup, b.behind, b.end && last)
		if dec.lists != nil {
			dec.ResetLists()
		} else if recycle {
			dec.RecycleMaps(records)
		}
		putBatchRecords(records)
		if err != nil {
			return err
		}
	}
	return nil
}

// skipToCheckpoint drops the records at or before *skip, the checkpoint a
// session resumes at, and clears *skip once a record after it (or the
// shard's end, final) is seen. AT_SEQUENCE_NUMBER re-reads the checkpointed
// record: its sub-records up to the checkpointed sub-sequence are dropped
// (the mid-aggregate resume harlow/kinesis-consumer gets wrong). Records
// before it (read since AT_TIMESTAMP) only rebuild the de-duplication
// window.
func skipToCheckpoint(records []Record, skip *Position, dedup *DedupWindow, final bool) []Record {
	if skip.IsZero() {
		return records
	}
	i := 0
	for i < len(records) && !records[i].Position.After(*skip) {
		if records[i].Err == nil {
			dedup.Seen(records[i].Event.ID, records[i].ArrivalTime)
		}
		i++
	}
	if i < len(records) || final {
		*skip = Position{}
	}
	return records[i:]
}

// getBatchRecords returns an empty slice with room for n records.
func getBatchRecords(n int) []Record {
	if p, _ := batchRecords.Get().(*[]Record); p != nil && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]Record, 0, n)
}

// putBatchRecords pools rs once the processor is done with its batch,
// cleared so that a pooled slice pins none of the batch's data.
func putBatchRecords(rs []Record) {
	clear(rs)
	rs = rs[:0]
	batchRecords.Put(&rs)
}

// handle dead-letters the bad records, hands the batch to the processor and
// records what it reports durable.
func (w *shardWorker) handle(ctx context.Context, sp ShardProcessor, records []Record, dedup *DedupWindow, behind int64, shardEnd bool) error {
	dups := dedup.Mark(records)
	var bad []Record
	oor := 0
	for i := range records {
		if records[i].Err != nil {
			bad = append(bad, records[i])
		}
		if records[i].OutOfRange {
			oor++
		}
	}
	if len(bad) > 0 {
		if err := w.deadLetter(ctx, bad); err != nil {
			return err
		}
	}
	if oor > 0 {
		w.log.Debug("sub-records outside the shard's hash key range (processed)", slog.Int("count", oor))
	}
	if dups > 0 {
		w.log.Debug("duplicate events dropped (same event id already handed on this shard)", slog.Int("count", dups))
	}
	w.met.observe(len(records), len(bad), oor, dups, behind)
	if len(records) > 0 {
		w.mu.Lock()
		w.handed = records[len(records)-1].Position
		w.mu.Unlock()
	}
	b := Batch{ShardID: w.lease.ShardID, Records: records, MillisBehindLatest: behind, Now: w.r.cfg.Now(), ShardEnd: shardEnd}
	pos, err := sp.Process(ctx, b)
	w.noteDurable(pos)
	if err != nil {
		var be *BatchError
		if errors.As(err, &be) && be.Index > 0 && be.Index <= len(records) {
			w.noteDurable(records[be.Index-1].Position)
		}
		// Keep what is durable before replaying.
		if cerr := w.commit(ctx, false, false, 1); errors.Is(cerr, leases.ErrLeaseLost) {
			return cerr
		}
		return fmt.Errorf("process: %w", err)
	}
	return nil
}

// finish ends a session that was stopped (err nil or errStopped) by
// flushing, checkpointing and releasing; other errors pass through.
func (w *shardWorker) finish(sp ShardProcessor, err error) error {
	if err != nil && !errors.Is(err, errStopped) {
		return err
	}
	pos, ferr := sp.Flush(w.ctx)
	if ferr != nil {
		w.log.Error("flush at shutdown failed; releasing at the last checkpoint", slog.Any("err", ferr))
	} else {
		w.noteDurable(pos)
	}
	if err := w.commit(w.ctx, false, true, -1); err != nil && !errors.Is(err, leases.ErrLeaseLost) {
		w.log.Error("final checkpoint failed; the lease will expire", slog.Any("err", err))
	}
	w.log.Info("shard stopped", slog.String("checkpoint", w.checkpointNow().String()))
	return nil
}

// noteDurable records a position the processor reports durable. Positions
// beyond the last record handed are clamped (a processor bug must never
// skip records) and positions behind the current one are ignored.
func (w *shardWorker) noteDurable(p Position) {
	if p.IsZero() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if p.After(w.handed) {
		w.log.Error("processor reported a durable position beyond the last record handed; clamped",
			slog.String("reported", p.String()), slog.String("handed", w.handed.String()))
		p = w.handed
	}
	if p.After(w.durable) {
		w.durable = p
	}
}

func (w *shardWorker) checkpointNow() Position {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checkpoint
}

func (w *shardWorker) commitDue() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.durable.After(w.checkpoint) && time.Since(w.lastCommit) >= w.r.cfg.CheckpointInterval
}

// commit writes the durable position (if it moved), optionally marking the
// shard finished and releasing the lease, in one fenced write. retries < 0
// retries until the shard's context ends.
func (w *shardWorker) commit(ctx context.Context, finished, release bool, retries int) error {
	if release {
		w.released.Store(true) // the coordinator stops renewing it
	}
	bo := retry.Backoff{Min: 100 * time.Millisecond, Max: w.r.cfg.MaxBackoff}
	for attempt := 0; ; attempt++ {
		done, err := w.commitOnce(ctx, finished, release)
		if done {
			return err
		}
		if ctx.Err() != nil || (retries >= 0 && attempt >= retries) {
			if release {
				w.released.Store(false)
			}
			return fmt.Errorf("checkpoint %s: %w", w.lease.ShardID, err)
		}
		w.log.Warn("checkpoint failed; retrying", slog.Any("err", err))
		_ = retry.Sleep(ctx, bo.Next()) // a done ctx ends the loop above
	}
}

// uncommitted returns the durable position when it is past the last
// checkpoint written, else nil: what the next lease write should carry.
func (w *shardWorker) uncommitted() *Position {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.durable.After(w.checkpoint) {
		return nil
	}
	p := w.durable
	return &p
}

// commitOnce makes one attempt of commit with the durable position as it is
// now. done is false when the write failed and may be retried.
func (w *shardWorker) commitOnce(ctx context.Context, finished, release bool) (done bool, err error) {
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	u := leases.Update{Finished: finished, Release: release, Checkpoint: w.uncommitted()}
	if u.Checkpoint == nil && !finished && !release {
		return true, nil
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	err = w.r.cfg.Leases.Update(cctx, w.lease, u)
	cancel()
	switch {
	case err == nil:
		w.r.m.checkpoint(w.r.cfg.App, "ok")
		w.mu.Lock()
		if u.Checkpoint != nil {
			w.checkpoint = *u.Checkpoint
		}
		w.lastCommit = time.Now()
		w.mu.Unlock()
		return true, nil
	case errors.Is(err, leases.ErrLeaseLost):
		w.r.m.checkpoint(w.r.cfg.App, "lease_lost")
		return true, err
	}
	w.r.m.checkpoint(w.r.cfg.App, "error")
	return false, err
}

// deadLetter stores bad records, retrying until it succeeds or the shard is
// abandoned: a checkpoint never passes a bad record that is not stored.
func (w *shardWorker) deadLetter(ctx context.Context, bad []Record) error {
	bo := retry.Backoff{Min: 100 * time.Millisecond, Max: w.r.cfg.MaxBackoff}
	var errs errLog
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := w.r.cfg.DeadLetter.Put(cctx, bad)
		cancel()
		if err == nil {
			w.r.m.deadLetter(w.r.cfg.App, "ok")
			for _, r := range bad {
				w.log.Debug("bad record dead-lettered", slog.String("position", r.Position.String()), slog.Any("reason", r.Err))
			}
			return nil
		}
		w.r.m.deadLetter(w.r.cfg.App, "error")
		errs.log(w.log, slog.LevelError, "dead-letter write failed; retrying (the shard waits)", err, slog.Int("records", len(bad)))
		if err := retry.Sleep(ctx, bo.Next()); err != nil {
			return err
		}
	}
}

// seedFromParent adds to the window the ids of a finished parent's records
// that arrived within DedupWindow of its last one (its final checkpoint).
// Reading a little more than the child needs changes no decision: entries
// older than the window are evicted before any lookup.
func (w *shardWorker) seedFromParent(dedup *DedupWindow, parent string) {
	cctx, cancel := context.WithTimeout(w.ctx, callTimeout)
	l, err := w.r.cfg.Leases.Get(cctx, w.r.cfg.App, parent)
	cancel()
	if err != nil || l.Checkpoint.IsZero() {
		if err != nil && !errors.Is(err, leases.ErrNotFound) {
			w.log.Warn("de-duplication window not seeded from a parent shard", slog.String("parent", parent), slog.Any("err", err))
		}
		return
	}
	from := w.rebuildFrom(parent, l.Checkpoint)
	if from.IsZero() {
		return
	}
	recs, _, err := readShardFrom(w.ctx, w.r.cfg.Kinesis, w.r.cfg.Stream, StreamShard{ID: parent}, from, nil)
	if err != nil {
		w.log.Warn("de-duplication window not seeded from a parent shard", slog.String("parent", parent), slog.Any("err", err))
		return
	}
	for i := range recs {
		if recs[i].Err == nil && !recs[i].Position.After(l.Checkpoint) {
			dedup.Seen(recs[i].Event.ID, recs[i].ArrivalTime)
		}
	}
}

// rebuildFrom returns where to start reading shard so the de-duplication
// window holds what it held when the checkpoint at was written: DedupWindow
// before the checkpointed record's arrival. Zero (no rebuild) when that
// record cannot be read; the window then starts empty, which is logged.
func (w *shardWorker) rebuildFrom(shard string, at Position) time.Time {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(w.r.cfg.Stream), ShardId: aws.String(shard),
		ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(at.SequenceNumber)}
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			if stopped, serr := w.sleep(w.r.cfg.PollInterval << attempt); stopped || serr != nil {
				return time.Time{}
			}
		}
		cctx, cancel := context.WithTimeout(w.ctx, callTimeout)
		var it *kinesis.GetShardIteratorOutput
		it, err = w.r.cfg.Kinesis.GetShardIterator(cctx, in)
		var out *kinesis.GetRecordsOutput
		if err == nil {
			out, err = w.r.cfg.Kinesis.GetRecords(cctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(1)}, noSDKRetries)
		}
		cancel()
		if err == nil {
			if len(out.Records) == 0 || out.Records[0].ApproximateArrivalTimestamp == nil {
				err = errors.New("the checkpointed record is gone (past retention)")
				break
			}
			return out.Records[0].ApproximateArrivalTimestamp.Add(-w.r.cfg.DedupWindow)
		}
		w.r.m.getError(w.r.cfg.App, errKind(err))
	}
	w.log.Warn("de-duplication window not rebuilt; copies of events from before the checkpoint are not recognised", slog.String("from_shard", shard), slog.Any("err", err))
	return time.Time{}
}

// iterator returns a shard iterator: after lastRead when set (a refreshed
// iterator mid-session), else at from when set (rebuilding the
// de-duplication window), else at the checkpoint (re-reading the
// checkpointed record, whose later sub-records may be pending), else at
// TRIM_HORIZON. It retries transient errors until stopped.
func (w *shardWorker) iterator(at Position, lastRead string, from time.Time) (*string, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(w.r.cfg.Stream), ShardId: aws.String(w.lease.ShardID)}
	switch {
	case lastRead != "":
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(lastRead)
	case !from.IsZero() && !at.IsZero():
		in.ShardIteratorType = types.ShardIteratorTypeAtTimestamp
		in.Timestamp = aws.Time(from)
	case at.IsZero():
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	default:
		in.ShardIteratorType = types.ShardIteratorTypeAtSequenceNumber
		in.StartingSequenceNumber = aws.String(at.SequenceNumber)
	}
	bo := retry.Backoff{Min: w.r.cfg.PollInterval, Max: w.r.cfg.MaxBackoff}
	var errs errLog
	for {
		cctx, cancel := context.WithTimeout(w.ctx, callTimeout)
		out, err := w.r.cfg.Kinesis.GetShardIterator(cctx, in)
		cancel()
		if err == nil {
			return out.ShardIterator, nil
		}
		if w.ctx.Err() != nil {
			return nil, w.ctx.Err()
		}
		kind := errKind(err)
		w.r.m.getError(w.r.cfg.App, kind)
		if kind == "not_found" && w.goneFromStream() {
			return nil, errShardGone
		}
		errs.log(w.log, slog.LevelWarn, "get shard iterator failed; backing off", err, slog.String("kind", kind))
		if stopped, err := w.sleep(bo.Next()); stopped || err != nil {
			if err == nil {
				err = errStopped
			}
			return nil, err
		}
	}
}

// goneFromStream reports whether the last listing of the stream no longer
// has this worker's shard (past retention).
func (w *shardWorker) goneFromStream() bool {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	return w.r.listed != nil && !w.r.listed[w.lease.ShardID]
}

// sleep waits d; it reports a stop request or the shard's cancellation.
func (w *shardWorker) sleep(d time.Duration) (stopped bool, err error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.ctx.Done():
		return false, w.ctx.Err()
	case <-w.stop:
		return true, nil
	case <-t.C:
		return false, nil
	}
}

// shardState is the StateStore the runtime hands processors: state lives in
// the lease item, written with the lease's fencing.
type shardState struct{ w *shardWorker }

func (s shardState) Load(ctx context.Context) ([]byte, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return slices.Clone(s.w.state), nil
}

func (s shardState) Save(ctx context.Context, state []byte) error {
	w := s.w
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	u := leases.Update{State: state, SetState: true, Checkpoint: w.uncommitted()}
	if err := w.r.cfg.Leases.Update(ctx, w.lease, u); err != nil {
		if errors.Is(err, leases.ErrLeaseLost) {
			w.r.m.checkpoint(w.r.cfg.App, "lease_lost")
		}
		return fmt.Errorf("save state of %s: %w", w.lease.ShardID, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if u.Checkpoint != nil {
		w.r.m.checkpoint(w.r.cfg.App, "ok")
		w.checkpoint = *u.Checkpoint
		w.lastCommit = time.Now()
	}
	w.state = slices.Clone(state)
	return nil
}

// errLog rate-limits repeated error logs: the first is logged, then at most
// one per errLogEvery with the count of suppressed ones.
type errLog struct {
	last       time.Time
	suppressed int
}

const errLogEvery = 30 * time.Second

func (e *errLog) log(lg *slog.Logger, level slog.Level, msg string, err error, attrs ...slog.Attr) {
	now := time.Now()
	if !e.last.IsZero() && now.Sub(e.last) < errLogEvery {
		e.suppressed++
		return
	}
	attrs = append(attrs, slog.Any("err", err))
	if e.suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", e.suppressed))
	}
	lg.LogAttrs(context.Background(), level, msg, attrs...)
	e.last, e.suppressed = now, 0
}

// recordSizer keeps a shard's mean Kinesis record size, to size GetRecords
// calls in bytes rather than records (Config.MaxBytesPerCall).
type recordSizer struct {
	mean float64 // exponentially weighted, bytes
	n    int64
}

func (s *recordSizer) add(size int) {
	s.n++
	// The first records set the mean directly; then a slow EWMA, so one
	// odd record does not swing the next call's size.
	if s.n <= 16 {
		s.mean += (float64(size) - s.mean) / float64(s.n)
		return
	}
	s.mean += (float64(size) - s.mean) / 256
}

// firstCallRecords is the Limit before a shard's record size is known: a
// first call of 10,000 KPL aggregates was the whole of a short stream
// (10 MiB, ~100 MB of decoded events per shard) and set a process's peak
// memory; 100 records of any size bound it, and plain records reach the
// full Limit from the second call.
const firstCallRecords = 100

// limit is the GetRecords Limit that holds about maxBytes of data at the
// mean size seen so far: at most firstCallRecords before any record,
// maxRecords with maxBytes 0.
func (s *recordSizer) limit(maxRecords int32, maxBytes int64) int32 {
	if maxBytes <= 0 {
		return maxRecords
	}
	if s.n == 0 || s.mean < 1 {
		return min(maxRecords, firstCallRecords)
	}
	return int32(min(float64(maxRecords), max(1, float64(maxBytes)/s.mean)))
}
