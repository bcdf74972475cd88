package kinesisadapter_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/kpl"
	"github.com/clickstream-go/clickstream/lambdas/kinesisadapter"
)

var (
	update     = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")
	regenerate = flag.Bool("regenerate-events", false, "rewrite the input events testdata/*.event.json (needs node and npm aws-kinesis-agg)")
)

var now = time.Date(2026, 11, 22, 10, 0, 5, 0, time.UTC)

// seen is what the golden files record of each record a processor was handed.
type seen struct {
	Shard           string `json:"shard_id"`
	Seq             string `json:"sequence_number"`
	Sub             int64  `json:"sub_sequence_number"`
	PartitionKey    string `json:"partition_key"`
	ExplicitHashKey string `json:"explicit_hash_key,omitempty"`
	Aggregated      bool   `json:"aggregated"`
	ArrivalTime     string `json:"arrival_ts"`
	EventID         string `json:"event_id,omitempty"`
	EventType       string `json:"event_type,omitempty"`
	UserID          string `json:"user_id,omitempty"`
	Err             string `json:"err,omitempty"`
}

// recorder is a buffering processor: nothing is durable until Flush, like archive.
type recorder struct {
	mu       sync.Mutex
	batches  [][]seen
	failAt   int   // >0: Process returns a BatchError at this index
	failErr  error // Process returns it (no record durable)
	flushErr error
	openErr  error
	flushed  int
	closed   int
	saveErr  error
}

func (r *recorder) Name() string { return "recorder" }

func (r *recorder) OpenShard(ctx context.Context, s consumers.Shard) (consumers.ShardProcessor, error) {
	if r.openErr != nil {
		return nil, r.openErr
	}
	r.saveErr = s.State.Save(ctx, []byte("x"))
	return &recorderShard{r: r}, nil
}

type recorderShard struct {
	r    *recorder
	last consumers.Position
}

func (s *recorderShard) Process(ctx context.Context, b consumers.Batch) (consumers.Position, error) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	var out []seen
	for _, rec := range b.Records {
		v := seen{Shard: rec.ShardID, Seq: rec.SequenceNumber, Sub: rec.SubSequence, PartitionKey: rec.PartitionKey,
			ExplicitHashKey: rec.ExplicitHashKey, Aggregated: rec.Aggregated, ArrivalTime: rec.ArrivalTime.Format(time.RFC3339Nano)}
		if rec.Err != nil {
			v.Err = rec.Err.Error()
		} else {
			v.EventID, v.EventType, v.UserID = rec.Event.ID, rec.Event.Type, rec.Event.UserID
		}
		out = append(out, v)
	}
	s.r.batches = append(s.r.batches, out)
	if !b.Now.Equal(now) {
		return consumers.Position{}, fmt.Errorf("batch time %v, want the injected clock", b.Now)
	}
	if s.r.failErr != nil {
		return consumers.Position{}, s.r.failErr
	}
	if s.r.failAt > 0 {
		return consumers.Position{}, &consumers.BatchError{Index: s.r.failAt, Err: errors.New("downstream refused")}
	}
	s.last = b.Last()
	return consumers.Position{}, nil // buffered: durable only on Flush
}

func (s *recorderShard) Flush(ctx context.Context) (consumers.Position, error) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.flushed++
	if s.r.flushErr != nil {
		return consumers.Position{}, s.r.flushErr
	}
	return s.last, nil
}

func (s *recorderShard) Close() {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.closed++
}

type golden struct {
	Batches     [][]seen                    `json:"batches"`
	DeadLetters []consumers.DeadLetterEntry `json:"dead_letters"`
	Response    events.KinesisEventResponse `json:"response"`
}

func readEvent(t *testing.T, name string) events.KinesisEvent {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".event.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.KinesisEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func run(t *testing.T, p *recorder, ev events.KinesisEvent) (events.KinesisEventResponse, *consumers.MemoryDeadLetter) {
	t.Helper()
	dlq := consumers.NewMemoryDeadLetter()
	h, err := kinesisadapter.New(p, dlq, kinesisadapter.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	return resp, dlq
}

func TestHandle_Golden(t *testing.T) {
	if *regenerate {
		writeEvents(t)
	}
	for _, name := range []string{"plain", "aggregated", "corrupt-aggregate", "invalid-event"} {
		t.Run(name, func(t *testing.T) {
			p := &recorder{}
			resp, dlq := run(t, p, readEvent(t, name))
			got := golden{Batches: p.batches, DeadLetters: dlq.Entries(), Response: resp}
			if got.Response.BatchItemFailures == nil {
				got.Response.BatchItemFailures = []events.KinesisBatchItemFailure{}
			}
			out, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, '\n')
			path := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(path, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("output differs from %s (run with -update after checking):\n%s", path, out)
			}
			if len(resp.BatchItemFailures) != 0 || p.flushed != 1 || p.closed != 1 {
				t.Errorf("failures %v, flushed %d, closed %d: want a clean invocation", resp.BatchItemFailures, p.flushed, p.closed)
			}
			if !errors.Is(p.saveErr, consumers.ErrNoStateStore) {
				t.Errorf("State.Save without a store = %v, want ErrNoStateStore", p.saveErr)
			}
		})
	}
}

// TestHandle_AggregatesMatchTheirSources checks the aggregated event against
// what was aggregated: every user record, in order, from both aggregators.
func TestHandle_AggregatesMatchTheirSources(t *testing.T) {
	p := &recorder{}
	run(t, p, readEvent(t, "aggregated"))
	var ids []string
	for _, s := range p.batches[0] {
		ids = append(ids, s.EventID)
	}
	want := []string{"kpl-0", "kpl-1", "kpl-2", "kpl-3", "ref-0", "ref-1", "ref-2", "plain-0"}
	if !slices.Equal(ids, want) {
		t.Fatalf("ids %v, want %v", ids, want)
	}
}

// TestHandle_DeaggregatesReferenceAggregatesLive aggregates fresh records with
// npm aws-kinesis-agg and runs them through the adapter.
func TestHandle_DeaggregatesReferenceAggregatesLive(t *testing.T) {
	var recs []kpl.Record
	for i := range 40 {
		u := fmt.Sprintf("user-%d", i%7)
		r := kpl.Record{PartitionKey: u, Data: clickJSON(fmt.Sprintf("live-%d", i), u)}
		if i%5 == 0 {
			r.ExplicitHashKey = fmt.Sprint(uint64(i) * 1e15)
		}
		recs = append(recs, r)
	}
	agg := referenceAggregate(t, [][]kpl.Record{recs[:25], recs[25:]})
	ev := events.KinesisEvent{}
	for i, a := range agg {
		ev.Records = append(ev.Records, eventRecord("shardId-000000000001", fmt.Sprint(100+i), a.PartitionKey, a.Data))
	}
	p := &recorder{}
	resp, dlq := run(t, p, ev)
	if len(resp.BatchItemFailures) != 0 || len(dlq.Entries()) != 0 {
		t.Fatalf("failures %v, dead letters %v", resp.BatchItemFailures, dlq.Entries())
	}
	got := p.batches[0]
	if len(got) != len(recs) {
		t.Fatalf("%d records, want %d", len(got), len(recs))
	}
	for i, s := range got {
		if s.EventID != fmt.Sprintf("live-%d", i) || s.PartitionKey != recs[i].PartitionKey || s.ExplicitHashKey != recs[i].ExplicitHashKey {
			t.Fatalf("record %d = %+v, want %+v", i, s, recs[i])
		}
		wantSub := int64(i)
		if i >= 25 {
			wantSub -= 25
		}
		if s.Sub != wantSub {
			t.Fatalf("record %d: sub-sequence %d, want %d", i, s.Sub, wantSub)
		}
	}
}

func TestHandle_ProcessFailureNamesTheFirstRecordNotDurable(t *testing.T) {
	ev := readEvent(t, "aggregated") // records: kpl aggregate (4), reference aggregate (3), plain (1)
	tests := []struct {
		name string
		p    *recorder
		want string // sequence number of the first failed Kinesis record
	}{
		{"plain error fails from the first record", &recorder{failErr: errors.New("dynamodb down")}, ev.Records[0].Kinesis.SequenceNumber},
		{"batch error inside the first aggregate", &recorder{failAt: 2}, ev.Records[0].Kinesis.SequenceNumber},
		{"batch error at the second aggregate's first sub-record", &recorder{failAt: 4}, ev.Records[1].Kinesis.SequenceNumber},
		{"batch error at the last record", &recorder{failAt: 7}, ev.Records[2].Kinesis.SequenceNumber},
		{"flush error", &recorder{flushErr: errors.New("s3 down")}, ev.Records[0].Kinesis.SequenceNumber},
		{"open error", &recorder{openErr: errors.New("no table")}, ev.Records[0].Kinesis.SequenceNumber},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := run(t, tc.p, ev)
			if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != tc.want {
				t.Fatalf("failures = %+v, want one naming %s", resp.BatchItemFailures, tc.want)
			}
			if tc.p.openErr == nil && tc.p.closed != 1 {
				t.Fatalf("Close called %d times, want once", tc.p.closed)
			}
		})
	}
}

func TestHandle_DeadLetterFailureRetriesTheWholeBatch(t *testing.T) {
	ev := readEvent(t, "invalid-event")
	dlq := consumers.NewMemoryDeadLetter()
	dlq.Fail = errors.New("s3 down")
	p := &recorder{}
	h, _ := kinesisadapter.New(p, dlq, kinesisadapter.WithClock(func() time.Time { return now }))
	resp, err := h.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != ev.Records[0].Kinesis.SequenceNumber {
		t.Fatalf("failures = %+v", resp.BatchItemFailures)
	}
	if len(p.batches) != 0 {
		t.Fatal("records were processed although their dead letters were not stored")
	}
}

func TestHandle_SeveralShardsFailIndependently(t *testing.T) {
	ev := events.KinesisEvent{Records: []events.KinesisEventRecord{
		eventRecord("shardId-000000000001", "10", "a", clickJSON("a", "a")),
		eventRecord("shardId-000000000002", "20", "b", clickJSON("b", "b")),
		eventRecord("shardId-000000000001", "11", "c", clickJSON("c", "c")),
	}}
	p := &recorder{failAt: 1}
	resp, _ := run(t, p, ev)
	var got []string
	for _, f := range resp.BatchItemFailures {
		got = append(got, f.ItemIdentifier)
	}
	if !slices.Equal(got, []string{"11"}) {
		t.Fatalf("failures %v, want [11]: shard 1 failed at its second record, shard 2 is fine", got)
	}
	if len(p.batches) != 2 || len(p.batches[0]) != 2 || len(p.batches[1]) != 1 {
		t.Fatalf("batches %v, want one per shard", p.batches)
	}
}

func TestHandle_RejectsEventsWithoutShardIds(t *testing.T) {
	h, _ := kinesisadapter.New(&recorder{}, consumers.NewMemoryDeadLetter())
	ev := events.KinesisEvent{Records: []events.KinesisEventRecord{{EventID: "garbage", Kinesis: events.KinesisRecord{SequenceNumber: "1"}}}}
	if _, err := h.Handle(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "garbage") {
		t.Fatalf("err = %v", err)
	}
	if _, err := kinesisadapter.New(nil, nil); err == nil {
		t.Fatal("New without processor accepted")
	}
}

func TestHandle_EmptyEventIsANoOp(t *testing.T) {
	p := &recorder{}
	resp, _ := run(t, p, events.KinesisEvent{})
	if len(resp.BatchItemFailures) != 0 || len(p.batches) != 0 {
		t.Fatalf("resp %v, batches %v", resp, p.batches)
	}
}

// ---- test data ----

func clickJSON(id, user string) []byte {
	return fmt.Appendf(nil, `{"v":1,"id":%q,"type":"click","ts":"2026-11-22T10:00:00.123Z","user_id":%q,"item_id":"a-1","placement":"home_feed"}`, id, user)
}

const streamARN = "arn:aws:kinesis:us-east-1:123456789012:stream/clickstream-events"

func eventRecord(shard, seq, pk string, data []byte) events.KinesisEventRecord {
	return events.KinesisEventRecord{
		AwsRegion: "us-east-1", EventID: shard + ":" + seq, EventName: "aws:kinesis:record", EventSource: "aws:kinesis",
		EventSourceArn: streamARN, EventVersion: "1.0",
		InvokeIdentityArn: "arn:aws:iam::123456789012:role/clickstream-archive",
		Kinesis: events.KinesisRecord{
			ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: time.Date(2026, 11, 22, 10, 0, 1, 250_000_000, time.UTC)},
			Data:                        data, PartitionKey: pk, SequenceNumber: seq, KinesisSchemaVersion: "1.0",
		},
	}
}

const (
	shard = "shardId-000000000006"
	seq0  = "49590338271490256608559692538361571095921575989136588898"
	seq1  = "49590338271490256608559692540925702759324208523137515618"
	seq2  = "49590338271490256608559692541101111111111111111111111111"
	seq3  = "49590338271490256608559692541222222222222222222222222222"
)

// writeEvents regenerates the input events (-regenerate-events).
func writeEvents(t *testing.T) {
	var a kpl.Aggregator
	for i := range 4 {
		r := kpl.Record{PartitionKey: fmt.Sprintf("user-%d", i), Data: clickJSON(fmt.Sprintf("kpl-%d", i), fmt.Sprintf("user-%d", i))}
		if i == 3 {
			r.ExplicitHashKey = "170141183460469231731687303715884105728"
		}
		a.Add(r)
	}
	kplAgg, kplPK, _ := a.Build()
	var refRecs []kpl.Record
	for i := range 3 {
		refRecs = append(refRecs, kpl.Record{PartitionKey: "user-r", Data: clickJSON(fmt.Sprintf("ref-%d", i), "user-r")})
	}
	ref := referenceAggregate(t, [][]kpl.Record{refRecs})[0]

	a.Add(kpl.Record{PartitionKey: "user-c", Data: clickJSON("lost-0", "user-c")})
	a.Add(kpl.Record{PartitionKey: "user-c", Data: clickJSON("lost-1", "user-c")})
	corrupt, _, _ := a.Build()
	corrupt[len(corrupt)-3] ^= 0x55 // MD5 mismatch
	a.Add(kpl.Record{PartitionKey: "user-d", Data: clickJSON("fine-in-agg", "user-d")})
	a.Add(kpl.Record{PartitionKey: "user-d", Data: []byte(`{"type":"click","ts":"2026-11-22T10:00:00Z"}`)})
	mixed, mixedPK, _ := a.Build()

	evs := map[string][]events.KinesisEventRecord{
		"plain": {
			eventRecord(shard, seq0, "user-1", clickJSON("e-1", "user-1")),
			eventRecord(shard, seq1, "user-2", clickJSON("e-2", "user-2")),
			eventRecord(shard, seq2, "e-3", []byte(`{"type":"access","ts":1763805600123,"host":"api-1","method":"GET","uri":"/api/items/123?x=1","route":"/api/items/:id","status":200,"cache":"HIT","request_time_ms":12.5,"bytes":5120,"id":"e-3"}`)),
		},
		"aggregated": {
			eventRecord(shard, seq0, kplPK, kplAgg),
			eventRecord(shard, seq1, ref.PartitionKey, ref.Data),
			eventRecord(shard, seq2, "user-p", clickJSON("plain-0", "user-p")),
		},
		"corrupt-aggregate": {
			eventRecord(shard, seq0, "user-1", clickJSON("before", "user-1")),
			eventRecord(shard, seq1, "user-c", corrupt),
			eventRecord(shard, seq2, "user-2", clickJSON("after", "user-2")),
		},
		"invalid-event": {
			eventRecord(shard, seq0, "user-1", []byte("this is not json")),
			eventRecord(shard, seq1, "user-2", []byte(`{"v":1,"id":"no-user","type":"click","ts":"2026-11-22T10:00:00Z"}`)),
			eventRecord(shard, seq2, mixedPK, mixed),
			eventRecord(shard, seq3, "user-3", clickJSON("valid", "user-3")),
		},
	}
	for name, recs := range evs {
		b, err := json.MarshalIndent(events.KinesisEvent{Records: recs}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", name+".event.json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type refRecord struct {
	PartitionKey    string `json:"partitionKey"`
	ExplicitHashKey string `json:"explicitHashKey,omitempty"`
	Data            string `json:"data"`
}

// referenceAggregate aggregates with npm aws-kinesis-agg via the consumer
// runtime's script (consumers/testdata/aggregate.js).
func referenceAggregate(t *testing.T, aggregates [][]kpl.Record) []kpl.Record {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: cannot build reference aggregates (make test installs it)")
	}
	mod, _ := filepath.Abs("../../localstack/node_modules/aws-kinesis-agg")
	if _, err := os.Stat(filepath.Join(mod, "package.json")); err != nil {
		t.Skipf("npm aws-kinesis-agg not installed at %s: run `make up`", mod)
	}
	var req [][]refRecord
	for _, recs := range aggregates {
		var rs []refRecord
		for _, r := range recs {
			rs = append(rs, refRecord{r.PartitionKey, r.ExplicitHashKey, base64.StdEncoding.EncodeToString(r.Data)})
		}
		req = append(req, rs)
	}
	in, _ := json.Marshal(req)
	script, _ := filepath.Abs("../../consumers/testdata/aggregate.js")
	cmd := exec.Command(node, script, mod)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node aggregate.js: %v: %s", err, stderr.String())
	}
	var resp []refRecord
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	var recs []kpl.Record
	for _, r := range resp {
		data, _ := base64.StdEncoding.DecodeString(r.Data)
		recs = append(recs, kpl.Record{PartitionKey: r.PartitionKey, ExplicitHashKey: r.ExplicitHashKey, Data: data})
	}
	return recs
}
