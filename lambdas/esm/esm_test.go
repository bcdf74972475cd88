package esm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/kpl"
	"github.com/clickstream-go/clickstream/lambdas/esm"
	"github.com/clickstream-go/clickstream/lambdas/kinesisadapter"
)

const shardID = "shardId-000000000003"

var arrival = time.Date(2026, 11, 22, 10, 0, 1, 250_000_000, time.UTC)

func click(id, user string) []byte {
	return fmt.Appendf(nil, `{"v":1,"id":%q,"type":"click","ts":"2026-11-22T10:00:00.123Z","user_id":%q,"item_id":"a-1","placement":"home"}`, id, user)
}

// stream builds the user records the runner would hand over for n Kinesis
// records: every third one a KPL aggregate of three events (one with an
// explicit hash key), one corrupt aggregate, one invalid event.
func stream(t *testing.T, n int) []consumers.Record {
	t.Helper()
	dec, err := consumers.NewRecordDecoder(shardID, consumers.HashKeyRange{})
	if err != nil {
		t.Fatal(err)
	}
	var recs []consumers.Record
	for i := range n {
		kr := consumers.KinesisRecord{SequenceNumber: fmt.Sprint(1000 + i), PartitionKey: fmt.Sprintf("u-%d", i%5),
			ArrivalTime: arrival.Add(time.Duration(i) * time.Millisecond)}
		switch {
		case i%3 == 0:
			var a kpl.Aggregator
			for j := range 3 {
				r := kpl.Record{PartitionKey: fmt.Sprintf("u-%d-%d", i, j), Data: click(fmt.Sprintf("e-%d-%d", i, j), fmt.Sprintf("u-%d", j))}
				if j == 1 {
					r.ExplicitHashKey = "170141183460469231731687303715884105728"
				}
				a.Add(r)
			}
			kr.Data, kr.PartitionKey, _ = a.Build()
			if i == 6 {
				kr.Data = append([]byte(nil), kr.Data...)
				kr.Data[len(kr.Data)-1] ^= 0xff // corrupt: MD5 mismatch
			}
		case i == 4:
			kr.Data = []byte(`{"type":"click"}`) // invalid: no ts, no user
		default:
			kr.Data = click(fmt.Sprintf("e-%d", i), kr.PartitionKey)
		}
		recs = dec.Append(recs, kr)
	}
	return recs
}

// seen is what a processor behind the adapter acts on.
type seen struct {
	Pos        consumers.Position
	PK, EHK    string
	Data       string
	Aggregated bool
	Bad        bool
	Arrival    time.Time
}

func seenOf(r consumers.Record) seen {
	return seen{Pos: r.Position, PK: r.PartitionKey, EHK: r.ExplicitHashKey, Data: string(r.Data), Aggregated: r.Aggregated,
		Bad: r.Err != nil, Arrival: r.ArrivalTime}
}

// handler is the kinesisadapter over a recording processor that can be
// told to fail once at a sequence number.
type handler struct {
	mu       sync.Mutex
	got      []seen
	events   []int // records per invocation
	failSeq  map[string]int
	adapter  *kinesisadapter.Handler
	dlq      *consumers.MemoryDeadLetter
	hardFail int // invocations to fail with an error
}

func newHandler(t *testing.T) *handler {
	h := &handler{failSeq: map[string]int{}, dlq: consumers.NewMemoryDeadLetter()}
	p := consumers.SimpleProcessor("rec", func(ctx context.Context, b consumers.Batch) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		for i, r := range b.Records {
			if h.failSeq[r.SequenceNumber] > 0 {
				h.failSeq[r.SequenceNumber]--
				return &consumers.BatchError{Index: i, Err: errors.New("injected")}
			}
			h.got = append(h.got, seenOf(r))
		}
		return nil
	})
	a, err := kinesisadapter.New(p, h.dlq)
	if err != nil {
		t.Fatal(err)
	}
	h.adapter = a
	return h
}

func (h *handler) Handle(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
	h.mu.Lock()
	h.events = append(h.events, len(ev.Records))
	if h.hardFail > 0 {
		h.hardFail--
		h.mu.Unlock()
		return events.KinesisEventResponse{}, errors.New("function crashed")
	}
	h.mu.Unlock()
	return h.adapter.Handle(ctx, ev)
}

func TestMapping_HandlerSeesTheRunnersRecords(t *testing.T) {
	recs := stream(t, 30)
	h := newHandler(t)
	m, err := esm.New("rec", h.Handle, esm.Config{BatchSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	sp, _ := m.OpenShard(context.Background(), consumers.Shard{ID: shardID})
	// The runner's reads: uneven slices, never splitting a Kinesis record.
	var durable consumers.Position
	for _, cut := range [][2]int{{0, 10}, {10, 11}, {11, len(recs)}} {
		pos, err := sp.Process(context.Background(), consumers.Batch{ShardID: shardID, Records: recs[cut[0]:cut[1]]})
		if err != nil {
			t.Fatal(err)
		}
		if pos.After(durable) {
			durable = pos
		}
	}
	pos, err := sp.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if last := recs[len(recs)-1].Position; pos != last {
		t.Fatalf("flush durable %v, want %v", pos, last)
	}
	var want []seen
	for _, r := range recs {
		want = append(want, seenOf(r))
	}
	// The corrupt aggregate is handed over as one bad record carrying its raw
	// bytes in both hosts; bad records are still handed to processors.
	if !slices.Equal(h.got, want) {
		t.Fatalf("handler saw\n%+v\nwant\n%+v", h.got, want)
	}
	// No batching window: every read is invoked at once, in batches of at
	// most 7 Kinesis records (the reads hold 6, 1 and 23).
	if want := []int{6, 1, 7, 7, 7, 2}; !slices.Equal(h.events, want) {
		t.Fatalf("invocation sizes %v, want %v", h.events, want)
	}
	if n := len(h.dlq.Entries()); n != 2 {
		t.Fatalf("%d dead letters, want 2 (invalid event, corrupt aggregate)", n)
	}
}

func TestMapping_BatchItemFailureRetriesFromTheFailedRecord(t *testing.T) {
	recs := stream(t, 12)
	h := newHandler(t)
	h.failSeq["1003"] = 2 // an aggregate: its first sub-record fails twice
	h.failSeq["1008"] = 1
	h.hardFail = 1
	m, _ := esm.New("rec", h.Handle, esm.Config{BatchSize: 100, RetryBackoff: time.Millisecond})
	sp, _ := m.OpenShard(context.Background(), consumers.Shard{ID: shardID})
	pos, err := sp.Process(context.Background(), consumers.Batch{ShardID: shardID, Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	if pos != recs[len(recs)-1].Position {
		t.Fatalf("durable %v, want the last record", pos)
	}
	// Invocations: 12 (crash), 12 (fails at 1003), 9 from 1003 (fails
	// again), 9 (fails at 1008), 4 from 1008.
	if want := []int{12, 12, 9, 9, 4}; !slices.Equal(h.events, want) {
		t.Fatalf("invocation sizes %v, want %v", h.events, want)
	}
	var ids []string
	for _, s := range h.got {
		ids = append(ids, s.Pos.String())
	}
	// Every user record reached the processor; those before a failure
	// point again on each retry from an earlier point only.
	counts := map[string]int{}
	for _, id := range ids {
		counts[id]++
	}
	for _, r := range recs {
		if counts[r.Position.String()] == 0 {
			t.Fatalf("record %v never processed", r.Position)
		}
	}
	// Records before a failed item are done: never handed again.
	for _, r := range recs {
		if c := counts[r.Position.String()]; c != 1 && r.SequenceNumber != "1003" && r.SequenceNumber != "1008" {
			t.Fatalf("record %v processed %d times, want once", r.Position, c)
		}
	}
}

func TestMapping_BatchingWindowHoldsRecordsUntilItPasses(t *testing.T) {
	recs := stream(t, 6)
	h := newHandler(t)
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	m, _ := esm.New("rec", h.Handle, esm.Config{BatchSize: 100, BatchingWindow: 10 * time.Second, Now: func() time.Time { return now }})
	sp, _ := m.OpenShard(context.Background(), consumers.Shard{ID: shardID})
	ctx := context.Background()
	pos, err := sp.Process(ctx, consumers.Batch{Records: recs[:4]})
	if err != nil || !pos.IsZero() || len(h.events) != 0 {
		t.Fatalf("pos %v err %v invocations %v: want the records held", pos, err, h.events)
	}
	now = now.Add(5 * time.Second)
	if pos, _ = sp.Process(ctx, consumers.Batch{}); !pos.IsZero() {
		t.Fatal("invoked before the window passed")
	}
	now = now.Add(5 * time.Second)
	pos, err = sp.Process(ctx, consumers.Batch{Records: recs[4:]})
	if err != nil || pos != recs[len(recs)-1].Position || !slices.Equal(h.events, []int{6}) {
		t.Fatalf("pos %v err %v invocations %v: want one invocation of all 6 Kinesis records", pos, err, h.events)
	}
}

func TestMapping_GivesUpAfterMaxRetryAttempts(t *testing.T) {
	recs := stream(t, 3)
	h := newHandler(t)
	h.hardFail = 100
	m, _ := esm.New("rec", h.Handle, esm.Config{MaxRetryAttempts: 2, RetryBackoff: time.Millisecond})
	sp, _ := m.OpenShard(context.Background(), consumers.Shard{ID: shardID})
	pos, err := sp.Process(context.Background(), consumers.Batch{Records: recs})
	if err != nil || pos != recs[len(recs)-1].Position || len(h.events) != 3 {
		t.Fatalf("pos %v err %v invocations %d: want 1 try + 2 retries, then skipped", pos, err, len(h.events))
	}
}

func TestMapping_StopsRetryingWhenTheContextEnds(t *testing.T) {
	recs := stream(t, 3)
	h := newHandler(t)
	h.hardFail = 1 << 30
	m, _ := esm.New("rec", h.Handle, esm.Config{RetryBackoff: time.Millisecond})
	sp, _ := m.OpenShard(context.Background(), consumers.Shard{ID: shardID})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	pos, err := sp.Process(ctx, consumers.Batch{Records: recs})
	if !errors.Is(err, context.DeadlineExceeded) || !pos.IsZero() {
		t.Fatalf("pos %v err %v", pos, err)
	}
}
