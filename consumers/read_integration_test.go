package consumers_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickstream-go/clickstream/consumers"
)

// ReadShard reads a shard as the runtime does: plain records, aggregates
// de-aggregated, bad records with their reason, in shard order.
func TestReadShard_ReadsEveryUserRecordDecodedInOrder(t *testing.T) {
	e := newEnv(t, 1)
	putEvents(t, e, ids("e", 0, 3))
	putAggregateOf(t, e, ids("k", 0, 4))
	if _, err := e.c.Kinesis.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(e.stream),
		PartitionKey: aws.String("u1"), Data: []byte("not json")}); err != nil {
		t.Fatal(err)
	}
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
