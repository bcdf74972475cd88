package consumers

import (
	"context"
	"log/slog"
	"runtime"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickstream-go/clickstream/internal/freelist"
	"github.com/clickstream-go/clickstream/internal/kinesiswire"
	"github.com/clickstream-go/clickstream/internal/retry"
)

// readBatch is what one read of a shard returned: GetRecords' answer when
// polling, one SubscribeToShardEvent with enhanced fan-out.
type readBatch struct {
	records  []types.Record
	behind   int64              // MillisBehindLatest
	children []types.ChildShard // at the shard's end, when the service names them
	end      bool               // the shard is closed and read to its end
}

// shardReader reads one shard for a session. next blocks until records, an
// empty answer or an error; it returns errStopped on a stop request and the
// shard's context error when it is cancelled. Both read modes start where
// the session starts and go on after the last record read.
type shardReader interface {
	next() (readBatch, error)
	close()
}

// newReader returns the session's reader in the configured mode.
// With reuse, a poll reader decodes each answer into the memory an earlier
// answer was decoded into (the processor keeps none of it:
// RecordDataReleaser).
func (w *shardWorker) newReader(start Position, from time.Time, reuse bool) (shardReader, error) {
	if w.r.cfg.ReadMode == ReadEFO {
		return w.newEFOReader(start, from), nil
	}
	iter, err := w.iterator(start, "", from)
	if err != nil {
		return nil, err
	}
	var sizer recordSizer
	p := &pollReader{w: w, start: start, from: from, iter: iter, limit: sizer.limit(w.r.cfg.MaxRecords, w.r.cfg.MaxBytesPerCall),
		bo: retry.Backoff{Min: w.r.cfg.PollInterval, Max: w.r.cfg.MaxBackoff}}
	p.opts = []func(*kinesis.Options){noSDKRetries}
	if reuse {
		p.reuse = true
		p.opts = append(p.opts, func(o *kinesis.Options) { kinesiswire.DecodeInto(p.bufs)(o) })
	}
	return p, nil
}

// answerBufs is the memory of answers whose batches have been processed,
// for the next answers of any shard of the process (see pollReader.bufs):
// at most as many as answers can be decoded at once, so that a process of
// many shards holds a few answers' memory, not one per shard.
var answerBufs = freelist.New[*kinesiswire.Buffers](runtime.GOMAXPROCS(0))

// pollReader reads with GetRecords, paced at PollInterval (IdleInterval
// while caught up), backing off on throttling and errors.
type pollReader struct {
	w        *shardWorker
	start    Position
	from     time.Time
	iter     *string
	lastRead string    // sequence number of the last Kinesis record read
	nextCall time.Time // pacing: not before this
	bo       retry.Backoff
	errs     errLog
	limit    int32
	sizer    recordSizer
	opts     []func(*kinesis.Options) // of every GetRecords call
	// With reuse, the memory the last answer was decoded into, taken from
	// answerBufs for the call and given back when next is called again:
	// the session calls it only once every batch of the last answer has
	// been processed.
	bufs  *kinesiswire.Buffers
	reuse bool
}

func (p *pollReader) close() { p.putBufs() }

// putBufs gives the last answer's memory back to answerBufs (or to the GC
// when it is full).
func (p *pollReader) putBufs() {
	if p.bufs == nil {
		return
	}
	answerBufs.Put(p.bufs)
	p.bufs = nil
}

// getBufs takes memory an earlier answer was decoded into, or new.
func (p *pollReader) getBufs() {
	var ok bool
	if p.bufs, ok = answerBufs.Get(); !ok {
		p.bufs = new(kinesiswire.Buffers)
	}
}

func (p *pollReader) next() (readBatch, error) {
	w := p.w
	p.putBufs()
	for {
		if d := time.Until(p.nextCall); d > 0 {
			if stopped, err := w.sleep(d); err != nil {
				return readBatch{}, err
			} else if stopped {
				return readBatch{}, errStopped
			}
		} else if w.stopping() {
			return readBatch{}, errStopped
		}
		called := time.Now()
		p.nextCall = called.Add(w.r.cfg.PollInterval)
		cctx, cancel := context.WithTimeout(w.ctx, callTimeout)
		if p.reuse {
			p.getBufs()
		}
		out, err := w.r.cfg.Kinesis.GetRecords(cctx, &kinesis.GetRecordsInput{ShardIterator: p.iter, Limit: aws.Int32(p.limit)}, p.opts...)
		cancel()
		if err != nil {
			p.putBufs()
			if w.ctx.Err() != nil {
				return readBatch{}, w.ctx.Err()
			}
			kind := errKind(err)
			w.r.m.getError(w.r.cfg.App, kind)
			if kind == "expired_iterator" {
				w.log.Debug("shard iterator expired; getting a new one")
				if p.iter, err = w.iterator(p.start, p.lastRead, p.from); err != nil {
					return readBatch{}, err
				}
				continue
			}
			p.errs.log(w.log, slog.LevelWarn, "get records failed; backing off", err, slog.String("kind", kind))
			p.nextCall = called.Add(p.bo.Next())
			continue
		}
		p.bo.Reset()
		for i := range out.Records {
			p.sizer.add(len(out.Records[i].Data))
		}
		p.limit = p.sizer.limit(w.r.cfg.MaxRecords, w.r.cfg.MaxBytesPerCall)
		if n := len(out.Records); n > 0 {
			p.lastRead = aws.ToString(out.Records[n-1].SequenceNumber)
		}
		behind := aws.ToInt64(out.MillisBehindLatest)
		if len(out.Records) == 0 && behind == 0 {
			p.nextCall = called.Add(w.r.cfg.IdleInterval)
		}
		p.iter = out.NextShardIterator
		return readBatch{records: out.Records, behind: behind, children: out.ChildShards, end: out.NextShardIterator == nil}, nil
	}
}
