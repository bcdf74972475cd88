package producers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// slowKinesis takes a fixed time per PutRecords call: a stream that absorbs
// less than the producer is fed (a busy emulator, a shard at its limit).
type slowKinesis struct {
	*fakeKinesis
	perCall time.Duration
}

func (s slowKinesis) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, o ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	t := time.NewTimer(s.perCall)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.fakeKinesis.PutRecords(ctx, in, o...)
}

func quiet() Option { return WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))) }

func TestProducer_SlowStreamMakesPutWaitInsteadOfExpiring(t *testing.T) {
	// 500 records/s acknowledged, 5,000 Put as fast as possible, a 4 s TTL:
	// without back-pressure tied to the drain rate the buffer (50,000)
	// would take them all and most would expire after 4 s.
	synctest.Test(t, func(t *testing.T) {
		f := slowKinesis{newFake(1), time.Second}
		p, err := New(f, "s", quiet(), WithAggregation(false), WithLanesPerShard(1), WithMaxInFlightRequests(1),
			WithMaxRequestBytes(MaxRequestBytes), WithRecordTTL(4*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		recs := testRecords(5000, 100, 20)
		for _, r := range recs {
			if err := p.Put(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		if took := time.Since(start); took < 5*time.Second {
			t.Fatalf("Put took %v for 5,000 records at 500/s: it did not wait for the stream", took)
		}
		if err := p.Close(t.Context()); err != nil {
			t.Fatalf("Close = %v, want nil: no record may expire when Put waits", err)
		}
		st := p.Stats()
		if st.RecordsSent != int64(len(recs)) || st.RecordsFailed != 0 {
			t.Fatalf("sent %d, failed %d of %d", st.RecordsSent, st.RecordsFailed, len(recs))
		}
		got, _ := f.userRecords()
		if len(got) != len(recs) {
			t.Fatalf("stream holds %d records, want %d", len(got), len(recs))
		}
	})
}

func TestProducer_WithoutTTLASlowStreamFillsTheBufferAndPutWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := slowKinesis{newFake(1), time.Second}
		p, err := New(f, "s", quiet(), WithAggregation(false), WithLanesPerShard(1), WithMaxInFlightRequests(1),
			WithMaxBufferedRecords(1000))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.TryPutBatch(testRecords(1000, 10, 20)); err != nil {
			t.Fatal(err)
		}
		if err := p.TryPut(testRecords(1, 1, 20)[0]); !errors.Is(err, ErrBufferFull) {
			t.Fatalf("TryPut on a full buffer = %v, want ErrBufferFull", err)
		}
		time.Sleep(10 * time.Minute) // far past any TTL: nothing expires without one
		if err := p.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if st := p.Stats(); st.RecordsSent != 1000 || st.RecordsFailed != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestProducer_CloseReportsAbandonedRecords(t *testing.T) {
	f := newFake(2)
	f.block = make(chan struct{}) // Kinesis never answers
	defer close(f.block)
	p := newTest(t, f, quiet())
	putAll(t, p, testRecords(20, 5, 20))
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := p.Close(ctx)
	var fe *FailedError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &fe) || fe.Records != 20 || fe.ByReason["closed"] != 20 || !errors.Is(err, ErrClosed) {
		t.Fatalf("Close = %v, want the deadline joined with a *FailedError of 20 closed records", err)
	}
}

func TestProducer_FailuresOfAcknowledgedBatchesAreReportedToTheirCallerOnly(t *testing.T) {
	f := newFake(1)
	f.failCall = func(int) error { return apiError("AccessDeniedException") }
	p := newTest(t, f, quiet())
	var be *BatchError
	if err := p.PutBatchWait(t.Context(), testRecords(3, 3, 10)); !errors.As(err, &be) || be.Failed != 3 {
		t.Fatalf("PutBatchWait = %v, want a *BatchError of 3", err)
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatalf("Flush = %v, want nil: the batch's caller was told", err)
	}
	putAll(t, p, testRecords(2, 2, 10))
	var fe *FailedError
	if err := p.Flush(t.Context()); !errors.As(err, &fe) || fe.Records != 2 {
		t.Fatalf("Flush = %v, want a *FailedError of the 2 plain Puts", err)
	}
}

func TestProducer_DefaultLoggerIsNotADiscard(t *testing.T) {
	cfg := defaultConfig()
	if cfg.logger.Handler() == slog.DiscardHandler {
		t.Fatal("the default logger discards: failures would go unseen")
	}
	if cfg.recordTTL != 0 {
		t.Fatalf("default TTL %v: a slow stream would drop records instead of making Put wait", cfg.recordTTL)
	}
}
