package consumers_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/internal/kinesiswire"
)

// putMixed puts 3 plain records (e-00..e-02), an aggregate of 4 (k-00..k-03)
// and a bad record.
func putMixed(t *testing.T, e *env) {
	t.Helper()
	putEvents(t, e, ids("e", 0, 3))
	putAggregateOf(t, e, ids("k", 0, 4))
	if _, err := e.c.Kinesis.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(e.stream),
		PartitionKey: aws.String("u1"), Data: []byte("not json")}); err != nil {
		t.Fatal(err)
	}
}

// ReadShard reads a shard as the runtime does: plain records, aggregates
// de-aggregated, bad records with their reason, in shard order.
func TestReadShard_ReadsEveryUserRecordDecodedInOrder(t *testing.T) {
	e := newEnv(t, 1)
	putMixed(t, e)
	shards, err := consumers.ListShards(context.Background(), e.c.Kinesis, e.stream)
	if err != nil || len(shards) != 1 || shards[0].Closed {
		t.Fatalf("ListShards = %+v, %v", shards, err)
	}
	recs, n, err := consumers.ReadShard(context.Background(), e.c.Kinesis, e.stream, shards[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 || len(recs) != 8 {
		t.Fatalf("%d Kinesis records, %d user records; want 5 and 8", n, len(recs))
	}
	want := []string{"e-00", "e-01", "e-02", "k-00", "k-01", "k-02", "k-03"}
	for i, id := range want {
		if recs[i].Err != nil || recs[i].Event.ID != id || recs[i].Aggregated != (i >= 3) {
			t.Fatalf("record %d: id %q err %v aggregated %v; want %s", i, recs[i].Event.ID, recs[i].Err, recs[i].Aggregated, id)
		}
	}
	if recs[7].Err == nil {
		t.Fatal("the bad record decoded")
	}
	for i := 1; i < len(recs); i++ {
		if !recs[i].Position.After(recs[i-1].Position) {
			t.Fatalf("record %d is not after record %d", i, i-1)
		}
	}
}

// The runtime reads the same with GetRecords answers decoded by
// internal/kinesiswire (consume --get-records-protocol json, the default,
// and cbor): plain records, an aggregate and a bad record, each handed
// once, in order.
func TestRunner_ReadsWithEveryWireFormat(t *testing.T) {
	for name, f := range map[string]kinesiswire.Format{"json": kinesiswire.JSON, "cbor": kinesiswire.CBOR} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 1)
			putMixed(t, e)
			rec := newRecorder("wire", "o1")
			cfg := e.config(t, rec, "o1")
			cfg.Kinesis = kinesiswire.Wrap(e.c.Kinesis, f)
			rr := start(t, cfg)
			want := append(ids("e", 0, 3), ids("k", 0, 4)...)
			waitFor(t, 30*time.Second, "every record handed", func() bool {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				return len(rec.seen) >= len(want) && len(rec.bad) >= 1
			})
			rr.stop(t)
			seen := rec.all()
			if len(seen) != len(want) {
				t.Fatalf("%d records handed, want %d", len(seen), len(want))
			}
			for i, id := range want {
				if seen[i].ID != id || rec.count(id) != 1 {
					t.Errorf("record %d: %s handed %d times; want %s once", i, seen[i].ID, rec.count(id), id)
				}
			}
		})
	}
}
