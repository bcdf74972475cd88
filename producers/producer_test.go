package producers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of the SDK's shared HTTP transport
		// (integration tests) outlive the tests by design.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// testRecords returns n records over the given number of keys. Data is
// "key|index|" padded to size, so tests can check order and completeness.
func testRecords(n, keys, size int) []Record {
	rs := make([]Record, n)
	for i := range rs {
		key := fmt.Sprintf("user-%d", (i*7919)%keys)
		data := fmt.Appendf(nil, "%s|%07d|", key, i)
		if len(data) < size {
			data = append(data, bytes.Repeat([]byte("x"), size-len(data))...)
		}
		rs[i] = Record{PartitionKey: key, Data: data}
	}
	return rs
}

func recordIndex(t testing.TB, data []byte) int {
	t.Helper()
	parts := strings.SplitN(string(data), "|", 3)
	if len(parts) < 3 {
		t.Fatalf("unexpected record data %.40q", data)
	}
	i, err := strconv.Atoi(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return i
}

type deliveryCheck struct {
	allowDuplicates bool
	placedFrom      int // records with index >= this must be on the shard holding their hash; -1: none
}

// checkDelivered verifies that every record in want is stored exactly once
// (at least once with allowDuplicates), with each key's records in Put order
// (first copies, with duplicates), and on the right shard.
func checkDelivered(t *testing.T, f *fakeKinesis, want []Record, c deliveryCheck) {
	t.Helper()
	got, err := f.userRecords()
	if err != nil {
		t.Fatalf("stored records do not de-aggregate: %v", err)
	}
	seen := make([]int, len(want))
	last := map[string]int{}
	misplaced := 0
	for _, u := range got {
		i := recordIndex(t, u.Data)
		if i >= len(want) || !bytes.Equal(u.Data, want[i].Data) || u.PartitionKey != want[i].PartitionKey {
			t.Fatalf("stored record %d does not match what was put", i)
		}
		seen[i]++
		if seen[i] == 1 { // duplicates replay a lost call; first copies must be in order
			if prev, ok := last[u.PartitionKey]; ok && i < prev {
				t.Fatalf("key %s: record %d stored after record %d", u.PartitionKey, i, prev)
			}
			last[u.PartitionKey] = i
		}
		h := fakeHash(u.PartitionKey, u.ExplicitHashKey)
		if c.placedFrom >= 0 && i >= c.placedFrom && (h.Cmp(u.shard.start) < 0 || h.Cmp(u.shard.end) > 0) {
			misplaced++
		}
	}
	for i, n := range seen {
		if n == 0 || n > 1 && !c.allowDuplicates {
			t.Fatalf("record %d stored %d times", i, n)
		}
	}
	if misplaced > 0 {
		t.Fatalf("%d records on a shard whose range does not hold their hash", misplaced)
	}
	if _, _, _, _, v := f.stats(); len(v) > 0 {
		t.Fatalf("fake Kinesis saw violations: %v", v[:min(5, len(v))])
	}
}

// newTest returns a producer with fast test timings; opts override them.
func newTest(t *testing.T, client KinesisAPI, opts ...Option) *Producer {
	t.Helper()
	base := []Option{WithLinger(time.Millisecond), WithMaxRetryBackoff(5 * time.Millisecond), quiet()}
	p, err := New(client, "test-stream", append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

func putAll(t *testing.T, p *Producer, rs []Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range rs {
		if err := p.Put(ctx, r); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
}

func flush(t *testing.T, p *Producer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

var modes = []struct {
	name string
	opts []Option
}{
	{"aggregated", nil},
	{"aggregated-small", []Option{WithMaxAggregateBytes(2048)}}, // many aggregates per shard
	{"plain", []Option{WithAggregation(false)}},
}

func TestProducer_DeliversEveryRecordOnItsShardInOrder(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			f := newFake(4)
			p := newTest(t, f, m.opts...)
			want := testRecords(3000, 150, 120)
			putAll(t, p, want)
			flush(t, p)
			checkDelivered(t, f, want, deliveryCheck{placedFrom: 0})
			st := p.Stats()
			if st.RecordsSent != int64(len(want)) || st.BufferedRecords != 0 || st.RecordsFailed != 0 {
				t.Fatalf("stats %+v: want %d sent, none buffered or failed", st, len(want))
			}
			if m.name == "aggregated" && st.KinesisRecordsSent > int64(len(want))/10 {
				t.Fatalf("aggregation sent %d Kinesis records for %d user records", st.KinesisRecordsSent, len(want))
			}
		})
	}
}

func TestProducer_RetriesOnlyTheFailedEntries(t *testing.T) {
	f := newFake(4)
	attempts := map[string]int{}
	f.failEntry = func(call, i int, e types.PutRecordsRequestEntry) string {
		k := string(e.Data)
		attempts[k]++
		if attempts[k] == 1 && i%3 == 0 {
			return "InternalFailure"
		}
		return ""
	}
	p := newTest(t, f, WithAggregation(false), WithLinger(20*time.Millisecond))
	want := testRecords(1000, 1000, 50) // one record per key: nothing is held back by rule 2
	putAll(t, p, want)
	flush(t, p)
	checkDelivered(t, f, want, deliveryCheck{placedFrom: 0})
	failedFirst := 0
	for _, n := range attempts {
		switch n {
		case 1:
		case 2:
			failedFirst++
		default:
			t.Fatalf("a record was submitted %d times; only failed entries may be resent, once", n)
		}
	}
	if failedFirst == 0 || p.Stats().Retries != int64(failedFirst) {
		t.Fatalf("%d records failed once, Stats.Retries = %d", failedFirst, p.Stats().Retries)
	}
}

func TestProducer_KeepsPerKeyOrderUnderPartialFailures(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			f := newFake(4)
			rng := rand.New(rand.NewPCG(1, 2))
			f.failEntry = func(call, i int, e types.PutRecordsRequestEntry) string {
				if rng.IntN(10) < 3 {
					return "ProvisionedThroughputExceededException"
				}
				return ""
			}
			f.failCall = func(call int) error {
				switch rng.IntN(20) {
				case 0:
					return &types.ProvisionedThroughputExceededException{Message: aws.String("injected")}
				case 1:
					return &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
				}
				return nil
			}
			p := newTest(t, f, append(m.opts, WithMaxRetryBackoff(2*time.Millisecond))...)
			want := testRecords(4000, 40, 60) // few keys: many records per key per call
			putAll(t, p, want)
			flush(t, p)
			checkDelivered(t, f, want, deliveryCheck{placedFrom: 0})
			st := p.Stats()
			if st.Retries == 0 || st.Throttles == 0 || st.RecordsFailed != 0 {
				t.Fatalf("stats %+v: want retries and throttles, no failures", st)
			}
		})
	}
}

func TestProducer_BatchesWithinPutRecordsLimits(t *testing.T) {
	for _, tc := range []struct {
		name        string
		n, size     int
		opts        []Option
		wantEntries int // the largest call should be full
	}{
		{"many small records fill 500-entry calls", 2000, 100, nil, MaxRequestRecords},
		{"large records fill 5 MiB calls", 40, 900 << 10, []Option{WithMaxRequestBytes(MaxRequestBytes)}, 5},
		{"calls stop at the size target", 40, 300 << 10, []Option{WithMaxRequestBytes(1 << 20)}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(1)
			f.block = make(chan struct{})
			p := newTest(t, f, append(tc.opts, WithAggregation(false), WithLinger(time.Hour))...)
			want := testRecords(tc.n, tc.n, tc.size) // distinct keys
			putAll(t, p, want)
			close(f.block)
			flush(t, p)
			checkDelivered(t, f, want, deliveryCheck{placedFrom: 0})
			_, _, maxEntries, maxBytes, _ := f.stats()
			if maxEntries != tc.wantEntries || maxBytes > MaxRequestBytes || maxBytes > p.cfg.maxRequestBytes && tc.wantEntries > 1 {
				t.Fatalf("largest call: %d entries, %d bytes; want %d entries within %d bytes", maxEntries, maxBytes, tc.wantEntries, MaxRequestBytes)
			}
		})
	}
}

func TestProducer_FlushesOnLingerForSmallBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(2)
		p, err := New(f, "s", WithLinger(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(t.Context())
		if err := p.Put(t.Context(), Record{PartitionKey: "a", Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(99 * time.Millisecond)
		synctest.Wait()
		if calls, _, _, _, _ := f.stats(); calls != 0 {
			t.Fatalf("%d calls before the linger passed", calls)
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		if calls, _, _, _, _ := f.stats(); calls != 1 {
			t.Fatalf("%d calls after the linger passed, want 1", calls)
		}
	})
}

func TestProducer_SendsFullAggregatesWithoutWaitingForLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(1)
		p, err := New(f, "s", WithLinger(time.Hour), WithMaxAggregateBytes(4096), WithLanesPerShard(1))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(t.Context())
		for _, r := range testRecords(100, 10, 100) { // ~10 KB: two full aggregates
			if err := p.Put(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if calls, entries, _, _, _ := f.stats(); calls == 0 || entries < 2 {
			t.Fatalf("%d calls with %d aggregates; full aggregates should go at once", calls, entries)
		}
	})
}

func TestProducer_RejectsOversizedAndInvalidRecords(t *testing.T) {
	f := newFake(2)
	p := newTest(t, f)
	pk := "key"
	ok := Record{PartitionKey: pk, Data: make([]byte, MaxRecordBytes-len(pk))}
	cases := []struct {
		r    Record
		want error
	}{
		{Record{PartitionKey: pk, Data: make([]byte, MaxRecordBytes-len(pk)+1)}, ErrRecordTooLarge},
		{Record{PartitionKey: "", Data: []byte("x")}, ErrInvalidRecord},
		{Record{PartitionKey: strings.Repeat("é", 257), Data: []byte("x")}, ErrInvalidRecord},
		{Record{PartitionKey: "a", ExplicitHashKey: "12x", Data: []byte("x")}, ErrInvalidRecord},
		{Record{PartitionKey: "a", ExplicitHashKey: "340282366920938463463374607431768211456", Data: []byte("x")}, ErrInvalidRecord}, // 2^128
	}
	for _, c := range cases {
		if err := p.TryPut(c.r); !errors.Is(err, c.want) {
			t.Errorf("TryPut(pk %.10q, %d bytes, ehk %q) = %v, want %v", c.r.PartitionKey, len(c.r.Data), c.r.ExplicitHashKey, err, c.want)
		}
	}
	err := p.TryPutBatch([]Record{{PartitionKey: "a", Data: []byte("x")}, cases[0].r})
	if !errors.Is(err, ErrRecordTooLarge) || !strings.Contains(err.Error(), "record 1") {
		t.Errorf("TryPutBatch with a bad record = %v, want ErrRecordTooLarge naming record 1", err)
	}
	if st := p.Stats(); st.BufferedRecords != 0 {
		t.Fatalf("%d records buffered after rejected puts", st.BufferedRecords)
	}
	// The largest record Kinesis takes is accepted, sent un-aggregated, and
	// a 256-character key is fine.
	ok256 := Record{PartitionKey: strings.Repeat("é", 256), ExplicitHashKey: "340282366920938463463374607431768211455", Data: []byte("x")}
	putAll(t, p, []Record{ok, ok256})
	flush(t, p)
	got, err := f.userRecords()
	if err != nil || len(got) != 2 || len(got[0].Data) != len(ok.Data) && len(got[1].Data) != len(ok.Data) {
		t.Fatalf("got %d records (%v), want the two largest-allowed records", len(got), err)
	}
}

func TestProducer_ExpiredRecordsGoToTheFailureCallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(2)
		f.failEntry = func(int, int, types.PutRecordsRequestEntry) string { return "ProvisionedThroughputExceededException" }
		var mu sync.Mutex
		var failed []Record
		var errs []error
		p, err := New(f, "s", WithRecordTTL(10*time.Second), WithMaxRetryBackoff(time.Second),
			WithOnFailure(func(r Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				failed, errs = append(failed, r), append(errs, err)
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(t.Context())
		want := testRecords(50, 5, 20)
		for _, r := range want {
			if err := p.Put(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		// Flush returns once every record is reported, and says they failed.
		err = p.Flush(t.Context())
		var fe *FailedError
		if !errors.As(err, &fe) || fe.Records != len(want) || fe.ByReason["expired"] != len(want) || !errors.Is(err, ErrRecordExpired) {
			t.Fatalf("Flush = %v, want a *FailedError of %d expired records", err, len(want))
		}
		if err := p.Flush(t.Context()); err != nil {
			t.Fatalf("second Flush = %v, want nil: failures are reported once", err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("records failed after %v, past their 10s TTL", took)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(failed) != len(want) {
			t.Fatalf("failure callback got %d records, want %d", len(failed), len(want))
		}
		var pe *PutError
		for _, err := range errs {
			if !errors.Is(err, ErrRecordExpired) || !errors.As(err, &pe) || pe.Code != "ProvisionedThroughputExceededException" {
				t.Fatalf("failure reason %v: want ErrRecordExpired wrapping the throttling error", err)
			}
		}
		st := p.Stats()
		if st.RecordsFailed != int64(len(want)) || st.Retries == 0 || st.BufferedRecords != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestProducer_PermanentErrorsFailWithoutRetry(t *testing.T) {
	f := newFake(1)
	f.failCall = func(int) error { return apiError("AccessDeniedException") }
	failed := make(chan error, 10)
	p := newTest(t, f, WithOnFailure(func(_ Record, err error) { failed <- err }))
	putAll(t, p, testRecords(3, 3, 10))
	var fe *FailedError
	if err := p.Flush(t.Context()); !errors.As(err, &fe) || fe.ByReason["rejected"] != 3 {
		t.Fatalf("Flush = %v, want a *FailedError of 3 rejected records", err)
	}
	if calls, _, _, _, _ := f.stats(); calls != 1 {
		t.Fatalf("%d calls; a permanent error must not be retried", calls)
	}
	if len(failed) != 3 {
		t.Fatalf("%d failures reported, want 3", len(failed))
	}
	if _, permanent := classify(<-failed); !permanent {
		t.Fatal("reported error is not the permanent API error")
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err       error
		reason    string
		permanent bool
	}{
		{&types.ProvisionedThroughputExceededException{}, "throttled", false},
		{fmt.Errorf("wrapped: %w", &types.KMSThrottlingException{}), "throttled", false},
		{&PutError{Code: "ProvisionedThroughputExceededException"}, "throttled", false},
		{&PutError{Code: "InternalFailure"}, "error", false},
		{&types.ResourceNotFoundException{}, "error", false},
		{&types.InvalidArgumentException{}, "error", true},
		{apiError("ValidationException"), "error", true},
		{&PutError{Code: "KMSAccessDeniedException"}, "error", true},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, "error", false},
		{context.DeadlineExceeded, "error", false},
	} {
		reason, permanent := classify(tc.err)
		if reason != tc.reason || permanent != tc.permanent {
			t.Errorf("classify(%T %v) = %s, %v; want %s, %v", tc.err, tc.err, reason, permanent, tc.reason, tc.permanent)
		}
	}
}

func TestProducer_BackPressureBlocksPutAndFailsTryPut(t *testing.T) {
	f := newFake(1)
	f.block = make(chan struct{})
	p := newTest(t, f, WithMaxBufferedRecords(10), WithLinger(0))
	rs := testRecords(20, 20, 10)
	for _, r := range rs[:10] {
		if err := p.TryPut(r); err != nil {
			t.Fatalf("TryPut with room: %v", err)
		}
	}
	if err := p.TryPut(rs[10]); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("TryPut on a full buffer = %v, want ErrBufferFull", err)
	}
	if err := p.TryPutBatch(rs[10:12]); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("TryPutBatch on a full buffer = %v, want ErrBufferFull", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Put(ctx, rs[10]); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put on a full buffer = %v, want the context's error", err)
	}
	if st := p.Stats(); st.BufferedRecords != 10 {
		t.Fatalf("buffered %d, want 10", st.BufferedRecords)
	}
	done := make(chan error, 1)
	go func() { done <- p.Put(context.Background(), rs[10]) }()
	select {
	case err := <-done:
		t.Fatalf("Put returned %v while the buffer was full", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(f.block) // Kinesis answers: room frees up
	if err := <-done; err != nil {
		t.Fatalf("blocked Put: %v", err)
	}
	flush(t, p)
	checkDelivered(t, f, rs[:11], deliveryCheck{placedFrom: 0})
}

func TestProducer_TryPutBatchIsAllOrNothing(t *testing.T) {
	f := newFake(1)
	f.block = make(chan struct{})
	p := newTest(t, f, WithMaxBufferedRecords(10), WithMaxBufferedBytes(1000))
	rs := testRecords(20, 20, 50) // ~55 bytes each with key
	if err := p.TryPutBatch(rs[:8]); err != nil {
		t.Fatal(err)
	}
	if err := p.TryPutBatch(rs[8:11]); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("batch over the record limit = %v, want ErrBufferFull", err)
	}
	if err := p.TryPutBatch(rs[:11]); !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("batch larger than the buffer = %v, want ErrBatchTooLarge", err)
	}
	big := []Record{{PartitionKey: "k", Data: make([]byte, 600)}}
	if err := p.TryPutBatch(big); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("batch over the byte limit = %v, want ErrBufferFull", err)
	}
	if st := p.Stats(); st.BufferedRecords != 8 {
		t.Fatalf("buffered %d after refused batches, want 8", st.BufferedRecords)
	}
	if err := p.TryPutBatch(rs[8:10]); err != nil {
		t.Fatal(err)
	}
	close(f.block)
	flush(t, p)
	checkDelivered(t, f, rs[:10], deliveryCheck{placedFrom: 0})
	// An empty buffer admits a record larger than the byte limit.
	if err := p.TryPut(Record{PartitionKey: "k", Data: make([]byte, 5000)}); err != nil {
		t.Fatalf("empty buffer refused a large record: %v", err)
	}
}

func TestProducer_CloseDrainsAndRefusesNewRecords(t *testing.T) {
	f := newFake(4)
	p, err := New(f, "s", WithLinger(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := testRecords(500, 50, 100)
	putAll(t, p, want)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkDelivered(t, f, want, deliveryCheck{placedFrom: 0})
	if err := p.TryPut(want[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryPut after Close = %v, want ErrClosed", err)
	}
	if err := p.Put(ctx, want[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close = %v, want ErrClosed", err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

func TestProducer_CloseUnblocksWaitingPut(t *testing.T) {
	f := newFake(1)
	f.block = make(chan struct{})
	p, err := New(f, "s", WithMaxBufferedRecords(1), WithOnFailure(func(Record, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.TryPut(Record{PartitionKey: "a", Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Put(context.Background(), Record{PartitionKey: "a", Data: []byte("2")}) }()
	time.Sleep(10 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = p.Close(ctx)
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Put blocked during Close = %v, want ErrClosed", err)
	}
}

func TestProducer_CloseWithExpiredContextReportsUnsentRecords(t *testing.T) {
	f := newFake(2)
	f.block = make(chan struct{}) // Kinesis never answers
	var mu sync.Mutex
	reasons := map[string]int{}
	p, err := New(f, "s", WithLinger(0), WithAggregation(false), WithMaxInFlightRequests(1), WithOnFailure(func(_ Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		reasons[err.Error()]++
		if !errors.Is(err, ErrClosed) {
			t.Errorf("failure reason %v does not wrap ErrClosed", err)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := testRecords(1200, 10, 10) // more than one call holds
	putAll(t, p, want)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want the context's error", err)
	}
	st := p.Stats()
	if st.RecordsFailed != int64(len(want)) || st.BufferedRecords != 0 {
		t.Fatalf("stats %+v: every record should be reported failed", st)
	}
	if len(reasons) < 2 {
		t.Fatalf("want both in-flight and queued records reported, got reasons %v", reasons)
	}
}

func TestProducer_FollowsAReshard(t *testing.T) {
	f := newFake(2)
	p := newTest(t, f)
	rs := testRecords(3000, 100, 50)
	putAll(t, p, rs[:1000])
	flush(t, p)
	f.split("shardId-000000000000")
	// The next puts land on the children, not where the producer expected:
	// it notices from the ShardIds in the answers and re-reads the map.
	putAll(t, p, rs[1000:2000])
	flush(t, p)
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().ShardMapRefreshes < 2 {
		if time.Now().After(deadline) {
			t.Fatal("producer did not re-read the shard map after a reshard")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the loop apply the map
	putAll(t, p, rs[2000:])
	flush(t, p)
	// Everything arrives once, in order per key; after the new map is in
	// use every record is on its shard.
	checkDelivered(t, f, rs, deliveryCheck{placedFrom: 2000})
}

func TestProducer_WaitsForAShardMap(t *testing.T) {
	f := newFake(3)
	f.failList = func(n int) error {
		if n <= 2 {
			return apiError("LimitExceededException")
		}
		return nil
	}
	p := newTest(t, f)
	want := testRecords(300, 30, 20)
	putAll(t, p, want)
	flush(t, p)
	checkDelivered(t, f, want, deliveryCheck{placedFrom: 0})
}

func TestProducer_NamesStreamByARN(t *testing.T) {
	f := newFake(1)
	var gotARN string
	p, err := New(arnRecorder{f, &gotARN}, "arn:aws:kinesis:us-east-1:123456789012:stream/s")
	if err != nil {
		t.Fatal(err)
	}
	putAll(t, p, testRecords(1, 1, 1))
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if gotARN != "arn:aws:kinesis:us-east-1:123456789012:stream/s" {
		t.Fatalf("PutRecords StreamARN = %q", gotARN)
	}
}

type arnRecorder struct {
	*fakeKinesis
	arn *string
}

func (a arnRecorder) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, o ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	a.fakeKinesis.mu.Lock()
	*a.arn = aws.ToString(in.StreamARN)
	a.fakeKinesis.mu.Unlock()
	return a.fakeKinesis.PutRecords(ctx, in, o...)
}

func TestProducer_MetricsCountWhatWasSent(t *testing.T) {
	f := newFake(2)
	reg := prometheus.NewRegistry()
	p := newTest(t, f, WithRegisterer(reg))
	want := testRecords(200, 20, 30)
	putAll(t, p, want)
	flush(t, p)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[mf.GetName()] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[mf.GetName()] += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[mf.GetName()] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if got["clickstream_producer_records_sent_total"] != float64(len(want)) {
		t.Fatalf("records_sent_total = %v, want %d", got["clickstream_producer_records_sent_total"], len(want))
	}
	for _, name := range []string{"clickstream_producer_aggregate_records", "clickstream_producer_request_records", "clickstream_producer_kinesis_records_sent_total"} {
		if got[name] == 0 {
			t.Errorf("%s has no samples", name)
		}
	}
	if _, ok := got["clickstream_producer_buffer_fill_ratio"]; !ok {
		t.Error("no buffer fill gauge")
	}
	if _, err := New(f, "test-stream", WithRegisterer(reg)); err == nil {
		t.Fatal("a second producer for the stream registered on the same registry")
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	p2, err := New(f, "test-stream", WithRegisterer(reg))
	if err != nil {
		t.Fatalf("after Close, a new producer cannot register: %v", err)
	}
	_ = p2.Close(context.Background())
}

func TestNew_RejectsBadOptions(t *testing.T) {
	f := newFake(1)
	for _, o := range []Option{
		WithMaxBufferedRecords(0), WithMaxBufferedBytes(0), WithLinger(-1), WithMaxAggregateBytes(10),
		WithMaxAggregateBytes(MaxRecordBytes + 1), WithMaxRetryBackoff(0), WithShardRefreshInterval(0),
		WithRequestTimeout(0), WithMaxInFlightRequests(0), WithLogger(nil),
	} {
		if p, err := New(f, "s", o); err == nil {
			_ = p.Close(context.Background())
			t.Errorf("New accepted a bad option")
		}
	}
	if _, err := New(nil, "s"); err == nil {
		t.Error("New accepted a nil client")
	}
	if _, err := New(f, ""); err == nil {
		t.Error("New accepted an empty stream name")
	}
}

// BenchmarkProducer_Fake measures the producer's own CPU per event —
// validation, hashing, routing, aggregation, bookkeeping — against a fake
// that answers at once; the SDK is not involved.
func BenchmarkProducer_Fake(b *testing.B) {
	for _, m := range []struct {
		name string
		opts []Option
	}{{"Aggregated", nil}, {"Plain", []Option{WithAggregation(false)}}} {
		b.Run(m.name, func(b *testing.B) {
			f := &nullKinesis{shards: newFake(4)}
			p, err := New(f, "s", append(m.opts, WithLinger(5*time.Millisecond))...)
			if err != nil {
				b.Fatal(err)
			}
			rs := testRecords(10000, 5000, 350)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(350)
			i := 0
			for b.Loop() {
				if err := p.Put(ctx, rs[i%len(rs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if err := p.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// nullKinesis acknowledges every record without storing it.
type nullKinesis struct{ shards *fakeKinesis }

func (n *nullKinesis) ListShards(ctx context.Context, in *kinesis.ListShardsInput, o ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return n.shards.ListShards(ctx, in, o...)
}

func (n *nullKinesis) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records)), FailedRecordCount: aws.Int32(0)}
	return out, nil
}
