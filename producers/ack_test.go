package producers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestProducer_PutBatchWaitReturnsOnlyOnceEveryRecordIsStored(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			f := newFake(4)
			p := newTest(t, f, m.opts...)
			want := testRecords(2000, 100, 80)
			var wg sync.WaitGroup
			for b := range 20 {
				wg.Go(func() {
					batch := want[b*100 : (b+1)*100]
					if err := p.PutBatchWait(t.Context(), batch); err != nil {
						t.Errorf("batch %d: %v", b, err)
						return
					}
					// Acknowledged means stored: every record is in the fake now.
					got, err := f.userRecords()
					if err != nil {
						t.Error(err)
						return
					}
					stored := map[string]bool{}
					for _, u := range got {
						stored[string(u.Data)] = true
					}
					for i, r := range batch {
						if !stored[string(r.Data)] {
							t.Errorf("batch %d record %d acknowledged but not stored", b, i)
							return
						}
					}
				})
			}
			wg.Wait()
			// Batches were put concurrently, so only completeness is checked:
			// records of one key from different batches may be in any order.
			got, err := f.userRecords()
			if err != nil {
				t.Fatal(err)
			}
			seen := make([]int, len(want))
			for _, u := range got {
				seen[recordIndex(t, u.Data)]++
			}
			for i, n := range seen {
				if n != 1 {
					t.Fatalf("record %d stored %d times", i, n)
				}
			}
		})
	}
}

func TestProducer_AckedBatchesDoNotWaitForTheLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(2)
		p, err := New(f, "s", WithLinger(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(t.Context())
		// A plain Put lingers for the full second.
		if err := p.Put(t.Context(), Record{PartitionKey: "a", Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		if calls, _, _, _, _ := f.stats(); calls != 0 {
			t.Fatalf("%d calls before the linger passed", calls)
		}
		// An acknowledged batch goes at once, taking the lingering record along.
		start := time.Now()
		if err := p.PutBatchWait(t.Context(), testRecords(10, 10, 20)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 0 {
			t.Fatalf("PutBatchWait took %v of fake time; want no linger", d)
		}
		if _, entries, _, _, _ := f.stats(); entries < 2 {
			t.Fatalf("%d entries sent; the lingering record should have gone too", entries)
		}
	})
}

func TestProducer_AckLingerDelaysAckedBatchesUpToIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(1)
		p, err := New(f, "s", WithLinger(time.Second), WithAckLinger(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(t.Context())
		start := time.Now()
		if err := p.PutBatchWait(t.Context(), testRecords(5, 5, 20)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 20*time.Millisecond {
			t.Fatalf("PutBatchWait took %v of fake time, want the ack linger of 20ms", d)
		}
	})
}

func TestProducer_AckReportsTheErrorOfEachFailedRecord(t *testing.T) {
	f := newFake(2)
	// Records of key user-3 are rejected permanently, the others throttled
	// once and then written.
	var throttled sync.Map
	f.failEntry = func(_, _ int, e types.PutRecordsRequestEntry) string {
		if string(e.Data[:7]) == "user-3|" {
			return "InvalidArgumentException"
		}
		if _, again := throttled.LoadOrStore(string(e.Data), true); !again {
			return "ProvisionedThroughputExceededException"
		}
		return ""
	}
	p := newTest(t, f, WithAggregation(false))
	rs := testRecords(40, 8, 30)
	err := p.PutBatchWait(t.Context(), rs)
	var be *BatchError
	if !errors.As(err, &be) {
		t.Fatalf("PutBatchWait = %v, want a *BatchError", err)
	}
	if len(be.Errs) != len(rs) {
		t.Fatalf("%d errors for %d records", len(be.Errs), len(rs))
	}
	failed := 0
	for i, r := range rs {
		rejected := r.PartitionKey == "user-3"
		var pe *PutError
		switch {
		case rejected && (!errors.As(be.Errs[i], &pe) || pe.Code != "InvalidArgumentException"):
			t.Errorf("record %d (%s): error %v, want the rejection", i, r.PartitionKey, be.Errs[i])
		case !rejected && be.Errs[i] != nil:
			t.Errorf("record %d (%s): error %v, want nil (retried and written)", i, r.PartitionKey, be.Errs[i])
		}
		if rejected {
			failed++
		}
	}
	if be.Failed != failed || failed == 0 {
		t.Fatalf("Failed = %d, want %d", be.Failed, failed)
	}
}

func TestProducer_AckOfExpiredRecordsWrapsErrRecordExpired(t *testing.T) {
	f := newFake(1)
	f.failCall = func(int) error { return apiError("InternalFailure") }
	p := newTest(t, f, WithRecordTTL(50*time.Millisecond))
	err := p.PutBatchWait(t.Context(), testRecords(3, 3, 10))
	if !errors.Is(err, ErrRecordExpired) {
		t.Fatalf("PutBatchWait = %v, want ErrRecordExpired", err)
	}
}

func TestProducer_PutBatchWaitGivesUpWithItsContextAndTheRecordsStillGo(t *testing.T) {
	f := newFake(1)
	f.block = make(chan struct{})
	p := newTest(t, f)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	rs := testRecords(5, 5, 10)
	if err := p.PutBatchWait(ctx, rs); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PutBatchWait = %v, want DeadlineExceeded", err)
	}
	f.mu.Lock()
	close(f.block)
	f.block = nil
	f.mu.Unlock()
	flush(t, p)
	checkDelivered(t, f, rs, deliveryCheck{placedFrom: 0})
}

func TestProducer_TryPutBatchAckCallsDoneExactlyOncePerBatch(t *testing.T) {
	f := newFake(4)
	f.failEntry = func(call, i int, _ types.PutRecordsRequestEntry) string {
		if (call+i)%5 == 0 {
			return "ProvisionedThroughputExceededException"
		}
		return ""
	}
	p := newTest(t, f, WithMaxAggregateBytes(1024))
	const batches = 200
	var calls [batches]atomic.Int32
	var wg sync.WaitGroup
	wg.Add(batches)
	rs := testRecords(batches*10, 50, 40)
	for b := range batches {
		for {
			err := p.TryPutBatchAck(rs[b*10:(b+1)*10], func(err error) {
				if err != nil {
					t.Errorf("batch %d: %v", b, err)
				}
				if calls[b].Add(1) == 1 {
					wg.Done()
				}
			})
			if errors.Is(err, ErrBufferFull) {
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	wg.Wait()
	flush(t, p)
	// Retries of a throttled entry may overtake nothing of its key (rule 3),
	// and batches were put in index order: the full check applies.
	for b := range batches {
		if n := calls[b].Load(); n != 1 {
			t.Fatalf("batch %d: done called %d times", b, n)
		}
	}
	checkDelivered(t, f, rs, deliveryCheck{placedFrom: 0})
}

func TestProducer_TryPutBatchAckRefusesWithoutCallingDone(t *testing.T) {
	f := newFake(1)
	f.block = make(chan struct{})
	defer func() { f.mu.Lock(); close(f.block); f.block = nil; f.mu.Unlock() }()
	p := newTest(t, f, WithMaxBufferedRecords(10))
	called := atomic.Int32{}
	done := func(error) { called.Add(1) }
	if err := p.TryPutBatchAck(testRecords(8, 8, 10), done); err != nil {
		t.Fatal(err)
	}
	if err := p.TryPutBatchAck(testRecords(8, 8, 10), done); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("second batch: %v, want ErrBufferFull", err)
	}
	if err := p.TryPutBatchAck([]Record{{PartitionKey: ""}}, done); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("invalid batch: %v, want ErrInvalidRecord", err)
	}
	if err := p.TryPutBatchAck(testRecords(1, 1, 1), nil); err == nil {
		t.Fatal("nil done accepted")
	}
	if n := called.Load(); n != 0 {
		t.Fatalf("done called %d times for batches not admitted or not yet sent", n)
	}
}

func TestProducer_CloseAbandoningAckedRecordsReportsErrClosed(t *testing.T) {
	f := newFake(1)
	f.block = make(chan struct{})
	p, err := New(f, "s", WithLinger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	if err := p.TryPutBatchAck(testRecords(3, 3, 10), func(err error) { res <- err }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); err == nil {
		t.Fatal("Close with a blocked call and an expired context returned nil")
	}
	select {
	case err := <-res:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("done(%v), want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("done not called after Close")
	}
	close(f.block)
}

func ExampleProducer_PutBatchWait() {
	var p *Producer // from New
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.PutBatchWait(ctx, []Record{{PartitionKey: "u-42", Data: []byte(`{"type":"click"}`)}})
	var be *BatchError
	switch {
	case err == nil:
		fmt.Println("on the stream")
	case errors.As(err, &be):
		fmt.Println(be.Failed, "records failed")
	default:
		fmt.Println("unknown: retry with the same event ids", err)
	}
}
