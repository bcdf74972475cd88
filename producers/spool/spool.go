package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clickstream-go/clickstream/internal/retry"
	"github.com/clickstream-go/clickstream/producers"
)

// Target is where a Spool ships records: *producers.Producer. done must be
// called once per admitted batch, with nil when every record is on the
// stream, or a *producers.BatchError naming the records that failed.
type Target interface {
	PutBatchAck(ctx context.Context, rs []producers.Record, done func(error)) error
}

var _ Target = (*producers.Producer)(nil)

// Defaults of Config.
const (
	DefaultCommitInterval = 200 * time.Millisecond
	DefaultRetryBackoff   = time.Second
)

// Config configures a Spool. Zero fields take their defaults.
type Config struct {
	// Dir holds the segment files and the committed offset. Required.
	Dir string
	// MaxBytes and SegmentBytes: see LogOptions. Defaults 1 GiB and 16 MiB.
	MaxBytes     int64
	SegmentBytes int64
	// CommitInterval is how often the shipper records its progress. After a
	// crash, what was shipped since the last commit is shipped again: the
	// interval bounds those duplicates. Default 200ms.
	CommitInterval time.Duration
	// RetryBackoff is the wait before records the target failed (expired,
	// rejected) are put again. Default 1s.
	RetryBackoff time.Duration
	// Logger receives the spool's logs. Default: discard.
	Logger *slog.Logger
}

// Stats are a spool's counters since New.
type Stats struct {
	LogStats
	Appended int64 // records appended
	Shipped  int64 // records acknowledged by the target
	Retried  int64 // records put again after the target failed them
}

// Spool is a durable queue in front of the stream: Append returns once the
// records are fsync'd to the log; a shipper goroutine reads the log in
// order, puts the records through the target, and commits the log offset
// only once the target acknowledged every record before it. Fully
// committed segments are deleted. On New, everything not committed is
// shipped again: delivery is at least once, and records shipped in the last
// CommitInterval before a crash are shipped twice (the event ids let
// consumers drop the copies).
type Spool struct {
	log    *Log
	target Target
	cfg    Config
	lg     *slog.Logger

	ctx    context.Context // the shipper's; Close cancels it
	cancel context.CancelFunc
	wg     sync.WaitGroup
	retryW chan struct{} // wakes the retrier (cap 1)

	mu       sync.Mutex
	inflight []*entry // frames put, oldest first; the done prefix is committable
	retries  []pendingRetry
	readEnd  int64 // offset after the last frame the shipper read
	closing  bool

	appended, shipped, retried atomic.Int64
}

// entry is one frame of the log being shipped.
type entry struct {
	end       int64
	remaining int // records not yet acknowledged
}

// pendingRetry is a batch of an entry's records to put again at a time.
type pendingRetry struct {
	e    *entry
	recs []producers.Record
	at   time.Time
}

// New opens the spool in cfg.Dir (recovering it, see OpenLog) and starts
// shipping whatever it holds to target. Close stops it.
func New(cfg Config, target Target) (*Spool, error) {
	if cfg.Dir == "" {
		return nil, errors.New("new spool: empty directory")
	}
	if target == nil {
		return nil, errors.New("new spool: nil target")
	}
	if cfg.CommitInterval <= 0 {
		cfg.CommitInterval = DefaultCommitInterval
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = DefaultRetryBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l, err := OpenLog(cfg.Dir, LogOptions{MaxBytes: cfg.MaxBytes, SegmentBytes: cfg.SegmentBytes, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	s := &Spool{log: l, target: target, cfg: cfg, lg: cfg.Logger, retryW: make(chan struct{}, 1)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.readEnd = l.Committed()
	if st := l.Stats(); st.End > st.Committed {
		s.lg.Info("spool: shipping what a previous run left", "bytes", st.End-st.Committed, "torn_bytes_truncated", st.TornBytes)
	}
	s.wg.Add(3)
	go s.ship()
	go s.commitLoop()
	go s.retryLoop()
	return s, nil
}

// Append makes rs durable in the spool, for shipping. It returns once they
// are fsync'd; see Log.Append for its errors (ErrFull, ErrClosed).
func (s *Spool) Append(ctx context.Context, rs []producers.Record) error {
	if len(rs) == 0 {
		return nil
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return ErrClosed
	}
	if _, err := s.log.Append(ctx, EncodeBatch(nil, rs)); err != nil {
		return err
	}
	s.appended.Add(int64(len(rs)))
	return nil
}

// Stats returns the spool's counters.
func (s *Spool) Stats() Stats {
	return Stats{LogStats: s.log.Stats(), Appended: s.appended.Load(), Shipped: s.shipped.Load(), Retried: s.retried.Load()}
}

// ship reads frames in order and puts them through the target.
func (s *Spool) ship() {
	defer s.wg.Done()
	r := s.log.NewReader(s.log.Committed())
	defer r.Close()
	var buf []byte
	backoff := 100 * time.Millisecond
	for {
		payload, end, err := r.Next(s.ctx, buf)
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return
			}
			// Disk trouble: keep the position, log, try again.
			s.lg.Error("spool: read failed; retrying", "error", err, "retry_in", backoff)
			if retry.Sleep(s.ctx, backoff) != nil {
				return
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		buf = payload
		recs, err := DecodeBatch(payload)
		e := &entry{end: end, remaining: len(recs)}
		s.mu.Lock()
		s.inflight = append(s.inflight, e)
		s.readEnd = end
		s.mu.Unlock()
		if err != nil || len(recs) == 0 {
			// A frame with a valid CRC that does not decode was written by
			// a different version: it can never ship, so it is skipped.
			s.lg.Error("spool: skipping a frame that does not decode", "end_offset", end, "error", err)
			s.acked(e, nil, nil)
			continue
		}
		if err := s.put(e, recs); err != nil {
			return
		}
	}
}

// put hands recs (all or the failed part of e's frame) to the target.
func (s *Spool) put(e *entry, recs []producers.Record) error {
	err := s.target.PutBatchAck(s.ctx, recs, func(err error) { s.acked(e, recs, err) })
	if err != nil && s.ctx.Err() == nil {
		// The target refuses for good (closed) or the records are invalid
		// for it: neither is fixed by waiting here, and the frame must not
		// be committed. It ships again at the next start.
		s.lg.Error("spool: target refused records; shipping stopped until restart", "records", len(recs), "error", err)
	}
	return err
}

// acked runs on the target's goroutine: it must not block.
func (s *Spool) acked(e *entry, recs []producers.Record, err error) {
	var failed []producers.Record
	if err != nil {
		var be *producers.BatchError
		if errors.As(err, &be) && len(be.Errs) == len(recs) {
			for i, rerr := range be.Errs {
				if rerr != nil {
					failed = append(failed, recs[i])
				}
			}
		} else {
			failed = recs
		}
	}
	s.shipped.Add(int64(len(recs) - len(failed)))
	s.mu.Lock()
	e.remaining -= len(recs) - len(failed)
	if len(failed) > 0 {
		s.retries = append(s.retries, pendingRetry{e: e, recs: failed, at: time.Now().Add(s.cfg.RetryBackoff)})
	}
	s.mu.Unlock()
	if len(failed) > 0 {
		s.retried.Add(int64(len(failed)))
		s.lg.Warn("spool: records failed on the stream; retrying", "records", len(failed), "error", err)
		signal(s.retryW)
	}
}

// retryLoop puts failed records again after the backoff. Their frame is
// not committed meanwhile, so a crash ships them again too. A retried
// record may land after newer records of its partition key.
func (s *Spool) retryLoop() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		var due []pendingRetry
		next := time.Duration(-1)
		kept := s.retries[:0]
		for _, r := range s.retries {
			if wait := time.Until(r.at); wait > 0 {
				kept = append(kept, r)
				if next < 0 || wait < next {
					next = wait
				}
				continue
			}
			due = append(due, r)
		}
		s.retries = kept
		s.mu.Unlock()
		for _, r := range due {
			if s.put(r.e, r.recs) != nil {
				return
			}
		}
		var timer <-chan time.Time
		if next >= 0 {
			timer = time.After(next)
		}
		select {
		case <-s.retryW:
		case <-timer:
		case <-s.ctx.Done():
			return
		}
	}
}

// commitLoop commits the end of the acknowledged prefix every
// CommitInterval.
func (s *Spool) commitLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.commit()
		case <-s.ctx.Done():
			return
		}
	}
}

// commit pops acknowledged frames off the front of inflight and commits
// the offset after the last.
func (s *Spool) commit() {
	s.mu.Lock()
	n := 0
	for n < len(s.inflight) && s.inflight[n].remaining == 0 {
		n++
	}
	if n == 0 {
		s.mu.Unlock()
		return
	}
	off := s.inflight[n-1].end
	s.inflight = append(s.inflight[:0], s.inflight[n:]...)
	s.mu.Unlock()
	if err := s.log.Commit(off); err != nil {
		// The frames are shipped; a later commit covers them.
		s.lg.Error("spool: commit failed", "offset", off, "error", err)
	}
}

// caughtUp reports whether everything synced was read and acknowledged.
func (s *Spool) caughtUp() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.inflight {
		if e.remaining > 0 {
			return false
		}
	}
	return s.readEnd >= s.log.Stats().End
}

// Close stops taking appends, keeps shipping until everything spooled is
// acknowledged or ctx is done, commits, and closes the log. What was not
// acknowledged stays in the spool for the next New on the directory.
// Close the target after the spool.
func (s *Spool) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	s.mu.Unlock()
	var err error
	for !s.caughtUp() {
		if retry.Sleep(ctx, 10*time.Millisecond) != nil {
			err = fmt.Errorf("close spool: %w (the rest ships at the next start)", ctx.Err())
			break
		}
	}
	s.cancel()
	s.wg.Wait()
	s.commit()
	return errors.Join(err, s.log.Close())
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Batch encoding of a frame's payload: a version byte (1), the number of
// records, then per record the partition key, the explicit hash key and
// the data, each as a uvarint length and the bytes.
const batchVersion = 1

// EncodeBatch appends the payload encoding rs to b.
func EncodeBatch(b []byte, rs []producers.Record) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, r := range rs {
		n += 3*binary.MaxVarintLen64 + len(r.PartitionKey) + len(r.ExplicitHashKey) + len(r.Data)
	}
	if cap(b)-len(b) < n {
		b = append(make([]byte, 0, len(b)+n), b...)
	}
	b = append(b, batchVersion)
	b = binary.AppendUvarint(b, uint64(len(rs)))
	for _, r := range rs {
		b = binary.AppendUvarint(b, uint64(len(r.PartitionKey)))
		b = append(b, r.PartitionKey...)
		b = binary.AppendUvarint(b, uint64(len(r.ExplicitHashKey)))
		b = append(b, r.ExplicitHashKey...)
		b = binary.AppendUvarint(b, uint64(len(r.Data)))
		b = append(b, r.Data...)
	}
	return b
}

// DecodeBatch decodes a payload of EncodeBatch. The records' data is
// copied: the payload buffer is reused.
func DecodeBatch(b []byte) ([]producers.Record, error) {
	if len(b) == 0 || b[0] != batchVersion {
		return nil, errors.New("decode batch: unknown version")
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) { // every record takes at least 3 bytes
		return nil, errors.New("decode batch: bad record count")
	}
	b = b[k:]
	field := func() ([]byte, error) {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, errors.New("decode batch: truncated field")
		}
		f := b[k : k+int(l)]
		b = b[k+int(l):]
		return f, nil
	}
	rs := make([]producers.Record, n)
	for i := range rs {
		pk, err := field()
		if err != nil {
			return nil, err
		}
		ehk, err := field()
		if err != nil {
			return nil, err
		}
		data, err := field()
		if err != nil {
			return nil, err
		}
		rs[i] = producers.Record{PartitionKey: string(pk), ExplicitHashKey: string(ehk), Data: append([]byte(nil), data...)}
	}
	if len(b) != 0 {
		return nil, errors.New("decode batch: trailing bytes")
	}
	return rs, nil
}
