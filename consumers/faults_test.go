package consumers_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers"
)

// faultyKinesis injects errors into a real client: emulators enforce no
// throughput limits and keep iterators valid, so throttling and expiry are
// injected here.
type faultyKinesis struct {
	consumers.KinesisAPI
	mu    sync.Mutex
	calls int
	fault func(call int) error
}

func (f *faultyKinesis) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	if err := f.fault(n); err != nil {
		return nil, err
	}
	return f.KinesisAPI.GetRecords(ctx, in, opts...)
}

func TestRunner_RidesOutThrottlingExpiredIteratorsAndTransientErrors(t *testing.T) {
	e := newEnv(t, 1)
	p := newProducer(e.c, e.stream)
	us := users(5)
	stopProducing := background(50*time.Millisecond, func(ctx context.Context) error { return p.put(ctx, us) })
	defer func() { _ = stopProducing() }()

	fk := &faultyKinesis{KinesisAPI: e.c.Kinesis, fault: func(n int) error {
		switch {
		case n%3 == 0:
			return &types.ProvisionedThroughputExceededException{Message: ptr("Rate exceeded for shard")}
		case n%7 == 0:
			return &types.ExpiredIteratorException{Message: ptr("Iterator expired")}
		case n%11 == 0:
			return errors.New("connection reset by peer")
		}
		return nil
	}}
	rec := newRecorder("faults", "r")
	cfg := e.config(t, rec, "r")
	cfg.Kinesis = fk
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	run := start(t, cfg)
	time.Sleep(3 * time.Second)
	if err := stopProducing(); err != nil {
		t.Fatal(err)
	}
	want := p.produced()
	waitFor(t, 30*time.Second, "every record despite the faults", func() bool {
		fk.mu.Lock()
		calls := fk.calls
		fk.mu.Unlock()
		if calls < 25 { // enough calls to have hit every kind of fault
			return false
		}
		for _, id := range want {
			if rec.count(id) == 0 {
				return false
			}
		}
		return true
	})
	run.stop(t)
	for _, id := range want {
		if n := rec.count(id); n != 1 {
			t.Errorf("record %s processed %d times, want once (faults never replay)", id, n)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "clickstream_consumer_get_records_errors_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "kind" {
						kinds[l.GetValue()] += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	if kinds["throttled"] == 0 || kinds["expired_iterator"] == 0 || kinds["other"] == 0 {
		t.Fatalf("error kinds counted: %v", kinds)
	}
	t.Logf("%d records, errors %v", len(want), kinds)
}

func ptr[T any](v T) *T { return &v }

func TestRunner_DeadLetterOutageBlocksTheShardWithoutLosingAnything(t *testing.T) {
	e := newEnv(t, 1)
	p := newProducer(e.c, e.stream)
	if err := p.put(context.Background(), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	badSeq := putRaw(t, e.c.Kinesis, e.stream, kplRecord("k", []byte("not json")))
	if err := p.put(context.Background(), []string{"b"}); err != nil {
		t.Fatal(err)
	}
	dlq := consumers.NewMemoryDeadLetter()
	dlq.Fail = errors.New("s3 unavailable")
	rec := newRecorder("dlq", "r")
	cfg := e.config(t, rec, "r")
	cfg.DeadLetter = failing{dlq}
	run := start(t, cfg)
	time.Sleep(1500 * time.Millisecond)
	if rec.count("a-0")+rec.count("b-0") != 0 {
		t.Fatal("the batch with a bad record was processed while the dead letter could not be stored")
	}
	setFail(dlq, nil)
	waitFor(t, 10*time.Second, "the shard to move on once the sink is back", func() bool { return rec.count("b-0") == 1 })
	run.stop(t)
	entries := dlq.Entries()
	if len(entries) != 1 || entries[0].SequenceNumber != badSeq || !strings.Contains(entries[0].Reason, "JSON") {
		t.Fatalf("dead letters = %+v", entries)
	}
}

// failing wraps a MemoryDeadLetter so its Fail field can change under a lock.
type failing struct{ m *consumers.MemoryDeadLetter }

var failMu sync.Mutex

func (f failing) Put(ctx context.Context, recs []consumers.Record) error {
	failMu.Lock()
	defer failMu.Unlock()
	return f.m.Put(ctx, recs)
}

func setFail(m *consumers.MemoryDeadLetter, err error) {
	failMu.Lock()
	defer failMu.Unlock()
	m.Fail = err
}

// limitRecordingKinesis records each GetRecords call's Limit and the data
// bytes of its response.
type limitRecordingKinesis struct {
	consumers.KinesisAPI
	mu     sync.Mutex
	limits []int32
	sizes  []int
}

func (k *limitRecordingKinesis) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	out, err := k.KinesisAPI.GetRecords(ctx, in, opts...)
	if err != nil {
		return out, err
	}
	n := 0
	for _, r := range out.Records {
		n += len(r.Data)
	}
	k.mu.Lock()
	k.limits = append(k.limits, *in.Limit)
	k.sizes = append(k.sizes, n)
	k.mu.Unlock()
	return out, nil
}

func TestRunner_SizesGetRecordsCallsByBytes(t *testing.T) {
	e := newEnv(t, 1)
	p := newProducer(e.c, e.stream)
	us := users(10)
	ctx := context.Background()
	if err := p.put(ctx, us); err != nil { // 10 records of ~190 bytes
		t.Fatal(err)
	}
	k := &limitRecordingKinesis{KinesisAPI: e.c.Kinesis}
	rec := newRecorder("sized", "r")
	cfg := e.config(t, rec, "r")
	cfg.Kinesis, cfg.MaxBytesPerCall = k, 1000
	run := start(t, cfg)
	waitFor(t, 30*time.Second, "the first records", func() bool { return rec.count(p.produced()[0]) > 0 })
	for range 9 { // a backlog of 90 more, read ~1000 bytes at a time
		if err := p.put(ctx, us); err != nil {
			t.Fatal(err)
		}
	}
	want := p.produced()
	waitFor(t, 30*time.Second, "every record", func() bool {
		for _, id := range want {
			if rec.count(id) == 0 {
				return false
			}
		}
		return true
	})
	run.stop(t)
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.limits) < 2 || k.limits[0] != consumers.FirstCallRecords {
		t.Fatalf("limits %v: want the first call at %d records, then sized", k.limits, consumers.FirstCallRecords)
	}
	// The first call knows no record size and asks for a few records; once
	// records were seen, every call asks for about 1000 bytes: 5 records.
	first := 0
	for first < len(k.sizes) && k.sizes[first] == 0 {
		first++
	}
	full := 0
	for i := first + 1; i < len(k.limits); i++ {
		if l := k.limits[i]; l < 4 || l > 6 {
			t.Errorf("call %d: Limit %d, want ~5 (1000 bytes of ~190-byte records)", i, l)
		}
		if k.sizes[i] > 1300 {
			t.Errorf("call %d: %d bytes of data, want ≤ ~1000", i, k.sizes[i])
		}
		if k.sizes[i] >= 700 {
			full++
		}
	}
	if full < 5 {
		t.Errorf("only %d calls read a full ~1000 bytes (sizes %v): the backlog was not read in sized calls", full, k.sizes)
	}
}
