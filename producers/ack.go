package producers

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Acknowledged puts: learning when records are on the stream.
//
// Put and TryPut return once the producer owns a record; a crash of the
// process before Kinesis acknowledged it loses it. A caller that must not
// lose records — the HTTP collector answering 202, a spool committing its
// read position — puts a batch with a done callback instead (franz-go's
// promise, per batch): done runs once, when every record of the batch was
// acknowledged by PutRecords or finally failed.
//
// The cost is latency, not throughput: the caller learns the outcome after
// the linger (see WithAckLinger, which shortens it for these records) plus
// one PutRecords round trip, more when Kinesis throttles or fails entries
// and the producer retries them.

// BatchError is the outcome of an acknowledged batch of which some records
// finally failed (expired, rejected permanently, or abandoned by Close).
// The other records were acknowledged by Kinesis.
type BatchError struct {
	// Errs holds the error of each record of the batch, by index; nil for
	// records Kinesis acknowledged.
	Errs []error
	// Failed counts the non-nil entries of Errs.
	Failed int
}

func (e *BatchError) Error() string {
	first := ""
	for _, err := range e.Errs {
		if err != nil {
			first = err.Error()
			break
		}
	}
	return fmt.Sprintf("put batch: %d of %d records failed; first: %s", e.Failed, len(e.Errs), first)
}

// Unwrap returns the records' errors, so errors.Is(err, ErrRecordExpired)
// reports whether any record expired.
func (e *BatchError) Unwrap() []error {
	out := make([]error, 0, e.Failed)
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// batchAck tracks the records of one acknowledged batch still in the buffer.
type batchAck struct {
	remaining atomic.Int64
	n         int
	done      func(error)

	mu     sync.Mutex
	errs   []error // allocated on the first failure
	failed int
}

// complete records the outcome of record idx; the last one runs done.
func (a *batchAck) complete(idx int, err error) {
	if err != nil {
		a.mu.Lock()
		if a.errs == nil {
			a.errs = make([]error, a.n)
		}
		a.errs[idx] = err
		a.failed++
		a.mu.Unlock()
	}
	if a.remaining.Add(-1) != 0 {
		return
	}
	a.mu.Lock()
	var res error
	if a.failed > 0 {
		res = &BatchError{Errs: a.errs, Failed: a.failed}
	}
	a.mu.Unlock()
	a.done(res)
}

// TryPutBatchAck is TryPutBatch with an acknowledgement: when it returns
// nil, done will be called exactly once, with nil when Kinesis acknowledged
// every record of rs, else with a *BatchError holding each record's error.
// When it returns an error, nothing was buffered and done is never called.
//
// done runs on one of the producer's goroutines and holds up the sending of
// other records while it runs: it must not block, and must not call Put,
// PutBatch, Flush or Close (it may call the Try methods). Records failing
// also go to the failure callback (WithOnFailure), before done.
//
// Records of acknowledged batches linger at most WithAckLinger (default 0:
// sent as soon as their lane is idle), so a waiting caller pays about one
// PutRecords round trip; the records of other callers arriving meanwhile
// share the next call (group commit).
func (p *Producer) TryPutBatchAck(rs []Record, done func(error)) error {
	prs, size, err := p.prepareAck(rs, done)
	if err != nil {
		return err
	}
	return p.admit(context.Background(), prs, size, false)
}

// PutBatchAck is TryPutBatchAck that waits, like PutBatch, until the whole
// batch fits in the buffer, ctx is done or Close starts.
func (p *Producer) PutBatchAck(ctx context.Context, rs []Record, done func(error)) error {
	prs, size, err := p.prepareAck(rs, done)
	if err != nil {
		return err
	}
	return p.admit(ctx, prs, size, true)
}

// PutBatchWait puts rs like PutBatch and waits until every record is on the
// stream: it returns nil when Kinesis acknowledged them all, a *BatchError
// when some finally failed, or ctx's error (wrapped) when ctx ended first.
// In the last case the records admitted stay buffered and may still be
// written: the caller cannot tell, and a retry may duplicate them.
func (p *Producer) PutBatchWait(ctx context.Context, rs []Record) error {
	if len(rs) == 0 {
		return nil
	}
	res := make(chan error, 1)
	if err := p.PutBatchAck(ctx, rs, func(err error) { res <- err }); err != nil {
		return err
	}
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return fmt.Errorf("put batch: waiting for acknowledgement: %w", ctx.Err())
	}
}

func (p *Producer) prepareAck(rs []Record, done func(error)) ([]pending, int64, error) {
	if done == nil {
		return nil, 0, fmt.Errorf("%w: nil done callback", ErrInvalidRecord)
	}
	prs, size, err := prepareBatch(rs)
	if err != nil {
		return nil, 0, err
	}
	if len(prs) == 0 {
		// Nothing to wait for; admit would not buffer anything.
		done(nil)
		return nil, 0, nil
	}
	a := &batchAck{n: len(prs), done: done}
	a.remaining.Store(int64(len(prs)))
	for i := range prs {
		prs[i].ack, prs[i].idx = a, i
	}
	return prs, size, nil
}
