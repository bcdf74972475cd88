package consumers_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/kpl"
	"github.com/clickstream-go/clickstream/producers"
)

// refRecord is a user record in the reference aggregator's JSON.
type refRecord struct {
	PartitionKey    string `json:"partitionKey"`
	ExplicitHashKey string `json:"explicitHashKey,omitempty"`
	Data            string `json:"data"` // base64
}

// referenceAggregate builds aggregates with npm aws-kinesis-agg (the KPL
// reference), one per inner slice.
func referenceAggregate(t testing.TB, aggregates [][]kpl.Record) []kpl.Record {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: cannot build reference aggregates (make test installs it)")
	}
	mod, err := filepath.Abs("../localstack/node_modules/aws-kinesis-agg")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mod, "package.json")); err != nil {
		t.Skipf("npm aws-kinesis-agg not installed at %s: run `make up`", mod)
	}
	var req [][]refRecord
	for _, recs := range aggregates {
		var rs []refRecord
		for _, r := range recs {
			rs = append(rs, refRecord{PartitionKey: r.PartitionKey, ExplicitHashKey: r.ExplicitHashKey, Data: base64.StdEncoding.EncodeToString(r.Data)})
		}
		req = append(req, rs)
	}
	in, _ := json.Marshal(req)
	dir, _ := os.Getwd()
	cmd := exec.Command(node, filepath.Join(dir, "testdata", "aggregate.js"), mod)
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
		data, err := base64.StdEncoding.DecodeString(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, kpl.Record{PartitionKey: r.PartitionKey, ExplicitHashKey: r.ExplicitHashKey, Data: data})
	}
	return recs
}

func putRaw(t *testing.T, kc *kinesis.Client, stream string, r kpl.Record) string {
	t.Helper()
	in := &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String(r.PartitionKey), Data: r.Data}
	if r.ExplicitHashKey != "" {
		in.ExplicitHashKey = aws.String(r.ExplicitHashKey)
	}
	out, err := kc.PutRecord(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.SequenceNumber)
}

func TestRunner_DeaggregatesKPLAndReferenceAggregatesAndDeadLettersBadRecords(t *testing.T) {
	e := newEnv(t, 2)
	want := map[string]bool{} // ids of good user records

	outOfRange := 0
	// 1. The project's aggregator (kpl, what producers uses).
	var agg kpl.Aggregator
	for i := range 200 {
		u := fmt.Sprintf("p-user-%d", i%17)
		id := fmt.Sprintf("producer-%d", i)
		want[id] = true
		agg.Add(kpl.Record{PartitionKey: u, Data: eventJSON(id, u, i)})
		if agg.Len() == 50 {
			data, pk, ehk := agg.Build()
			outOfRange += countOutOfRange(t, pk, ehk, data)
			putRaw(t, e.c.Kinesis, e.stream, kpl.Record{PartitionKey: pk, ExplicitHashKey: ehk, Data: data})
		}
	}

	// 2. The reference aggregator; one aggregate routed to the lower shard by
	// its explicit hash key holds sub-records whose keys hash to the upper
	// one: processed and counted as out of range.
	var refAggs [][]kpl.Record
	for a := range 2 {
		var recs []kpl.Record
		for i := range 30 {
			u := fmt.Sprintf("r-user-%d", i%5)
			id := fmt.Sprintf("reference-%d-%d", a, i)
			want[id] = true
			recs = append(recs, kpl.Record{PartitionKey: u, Data: eventJSON(id, u, i)})
		}
		refAggs = append(refAggs, recs)
	}
	var mixed []kpl.Record
	for i := range 10 {
		u := keyIn(i%2 == 0, i)
		id := fmt.Sprintf("mixed-%d", i)
		want[id] = true
		mixed = append(mixed, kpl.Record{PartitionKey: u, Data: eventJSON(id, u, i)})
	}
	refAggs = append(refAggs, mixed)
	ref := referenceAggregate(t, refAggs)
	ref[2].ExplicitHashKey = "0" // the whole aggregate goes to the lower shard
	for _, r := range ref {
		outOfRange += countOutOfRange(t, r.PartitionKey, r.ExplicitHashKey, r.Data)
		putRaw(t, e.c.Kinesis, e.stream, r)
	}
	if outOfRange < 5 {
		t.Fatalf("only %d out-of-range sub-records: the test proves nothing", outOfRange)
	}

	// 3. Bad records: a corrupt aggregate and an invalid event.
	var a kpl.Aggregator
	a.Add(kpl.Record{PartitionKey: "x", Data: eventJSON("lost-1", "x", 0)})
	a.Add(kpl.Record{PartitionKey: "x", Data: eventJSON("lost-2", "x", 1)})
	corrupt, _, _ := a.Build()
	corrupt[len(corrupt)-1] ^= 1
	corruptSeq := putRaw(t, e.c.Kinesis, e.stream, kpl.Record{PartitionKey: "x", Data: corrupt})
	invalidSeq := putRaw(t, e.c.Kinesis, e.stream, kpl.Record{PartitionKey: "y", Data: []byte(`{"type":"click","ts":"yesterday"}`)})

	rec := newRecorder("agg", "r")
	cfg := e.config(t, rec, "r")
	dlq := consumers.NewMemoryDeadLetter()
	cfg.DeadLetter = dlq
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	run := start(t, cfg)
	waitFor(t, 30*time.Second, "every user record", func() bool {
		for id := range want {
			if rec.count(id) == 0 {
				return false
			}
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.bad) == 2
	})
	run.stop(t)

	for _, s := range rec.all() {
		if !want[s.ID] {
			t.Errorf("unexpected record %q", s.ID)
		}
		if rec.count(s.ID) != 1 {
			t.Errorf("record %q processed %d times", s.ID, rec.count(s.ID))
		}
	}
	// Sub-records of one aggregate carry contiguous sub-sequences.
	subs := map[string][]int64{}
	for _, s := range rec.all() {
		subs[s.Position.SequenceNumber] = append(subs[s.Position.SequenceNumber], s.Position.SubSequence)
	}
	for seq, ss := range subs {
		for i, sub := range ss {
			if sub != int64(i) {
				t.Fatalf("record %s: sub-sequences %v, want 0..%d", seq, ss, len(ss)-1)
			}
		}
	}
	entries := dlq.Entries()
	if len(entries) != 2 {
		t.Fatalf("%d dead letters, want 2: %+v", len(entries), entries)
	}
	for _, en := range entries {
		switch en.SequenceNumber {
		case corruptSeq:
			if !strings.Contains(en.Reason, "MD5") || !bytes.Equal(en.Data, corrupt) || !en.Aggregated {
				t.Errorf("corrupt aggregate dead letter = %+v", en)
			}
		case invalidSeq:
			if !strings.Contains(en.Reason, "ts") || en.PartitionKey != "y" {
				t.Errorf("invalid event dead letter = %+v", en)
			}
		default:
			t.Errorf("unexpected dead letter %+v", en)
		}
	}
	for _, b := range rec.bad {
		if !errors.Is(b.Err, kpl.ErrCorrupt) && b.SequenceNumber != invalidSeq {
			t.Errorf("bad record %v: %v", b.Position, b.Err)
		}
	}
	oor := (counterSum(t, reg, "clickstream_consumer_out_of_range_records_total"))
	if int(oor) != outOfRange {
		t.Errorf("out-of-range counter = %v, want %d", oor, outOfRange)
	}
	if got := (counterSum(t, reg, "clickstream_consumer_bad_records_total")); got != 2 {
		t.Errorf("bad records counter = %v, want 2", got)
	}
	if got := (counterSum(t, reg, "clickstream_consumer_records_total")); int(got) != len(want)+2 {
		t.Errorf("records counter = %v, want %d", got, len(want)+2)
	}
}

// inLower reports whether a record routes to the lower half of the hash key space.
func inLower(pk, ehk string) bool {
	h := hashKeyOf(pk)
	if ehk != "" {
		h, _ = new(big.Int).SetString(ehk, 10)
	}
	return h.Cmp(mid) <= 0
}

// countOutOfRange counts the sub-records of an aggregate that route to the
// other half of a two-shard stream than the aggregate itself.
func countOutOfRange(t *testing.T, pk, ehk string, data []byte) int {
	t.Helper()
	subs, err := kpl.Deaggregate(data, pk)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range subs {
		if inLower(s.PartitionKey, s.ExplicitHashKey) != inLower(pk, ehk) {
			n++
		}
	}
	return n
}

// counterSum sums every series of a counter family.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func TestRunner_DeaggregatesWhatTheProjectsProducerAggregates(t *testing.T) {
	e := newEnv(t, 2)
	prod, err := producers.New(e.c.Kinesis, e.stream, producers.WithAggregation(true), producers.WithLinger(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := map[string]bool{}
	for i := range 300 {
		u := fmt.Sprintf("user-%d", i%20)
		id := fmt.Sprintf("prod-%d", i)
		want[id] = true
		if err := prod.Put(ctx, producers.Record{PartitionKey: u, Data: eventJSON(id, u, i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder("producer", "r")
	cfg := e.config(t, rec, "r")
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	run := start(t, cfg)
	waitFor(t, 30*time.Second, "every produced record", func() bool {
		for id := range want {
			if rec.count(id) == 0 {
				return false
			}
		}
		return true
	})
	run.stop(t)
	aggregated := 0
	for _, s := range rec.all() {
		if rec.count(s.ID) != 1 {
			t.Errorf("%s processed %d times", s.ID, rec.count(s.ID))
		}
		if s.Position.SubSequence > 0 {
			aggregated++
		}
	}
	if aggregated == 0 {
		t.Fatal("no record came out of an aggregate: the producer did not aggregate")
	}
	if n := counterSum(t, reg, "clickstream_consumer_out_of_range_records_total"); n != 0 {
		t.Errorf("%v out-of-range sub-records from a shard-aware producer", n)
	}
	if len(rec.bad) != 0 {
		t.Errorf("bad records: %v", rec.bad)
	}
}
