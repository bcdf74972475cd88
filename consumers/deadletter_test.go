package consumers_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/testenv"
)

func badRecord(seq string, sub int64, data string, err error) consumers.Record {
	return consumers.Record{
		Position: consumers.Position{SequenceNumber: seq, SubSequence: sub}, ShardID: "shardId-000000000003",
		PartitionKey: "u-1", ArrivalTime: time.Date(2026, 11, 22, 23, 59, 59, 0, time.FixedZone("x", 3600)),
		Data: []byte(data), Err: err,
	}
}

func TestDeadLetterKey_IsDatedByArrivalAndNamedByPosition(t *testing.T) {
	r := badRecord("4967", 12, "x", errors.New("bad"))
	for prefix, want := range map[string]string{
		"":         "errors/dt=2026-11-22/shardId-000000000003/4967-12.json",
		"prod":     "prod/errors/dt=2026-11-22/shardId-000000000003/4967-12.json",
		"/prod/a/": "prod/a/errors/dt=2026-11-22/shardId-000000000003/4967-12.json",
	} {
		if got := consumers.DeadLetterKey(prefix, r); got != want {
			t.Errorf("prefix %q: key %q, want %q", prefix, got, want)
		}
	}
}

func TestMemoryDeadLetter_ReplaysOverwriteTheSameEntry(t *testing.T) {
	m := consumers.NewMemoryDeadLetter()
	r := badRecord("1", 0, "x", errors.New("bad"))
	for range 3 {
		if err := m.Put(context.Background(), []consumers.Record{r}); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Entries(); len(got) != 1 || got[0].Reason != "bad" {
		t.Fatalf("entries = %+v", got)
	}
}

func TestS3DeadLetter_WritesOneIdempotentObjectPerBadRecord(t *testing.T) {
	c := testenv.Clients(t)
	bucket := testenv.Bucket(t, c)
	dlq := consumers.NewS3DeadLetter(c.S3, bucket, "pre")
	recs := []consumers.Record{
		badRecord("100", 0, "not json\x00\xff", &event.Error{Reason: "invalid JSON"}),
		badRecord("101", 3, `{"type":"click"}`, &event.Error{Field: "user_id", Reason: "required for type click"}),
	}
	ctx := context.Background()
	for range 2 { // a replay writes the same objects
		if err := dlq.Put(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	out, err := c.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 2 {
		t.Fatalf("%d objects, want 2", len(out.Contents))
	}
	for _, r := range recs {
		key := consumers.DeadLetterKey("pre", r)
		obj, err := c.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		body, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		var e consumers.DeadLetterEntry
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if string(e.Data) != string(r.Data) || e.Reason != r.Err.Error() || e.SequenceNumber != r.SequenceNumber ||
			e.SubSequenceNumber != r.SubSequence || e.ShardID != r.ShardID || e.PartitionKey != "u-1" || !e.ArrivalTime.Equal(r.ArrivalTime) {
			t.Errorf("%s = %+v", key, e)
		}
	}
}

func TestS3DeadLetter_ReportsFailures(t *testing.T) {
	c := testenv.Clients(t)
	dlq := consumers.NewS3DeadLetter(c.S3, "no-such-bucket-"+testenv.Name("x"), "")
	err := dlq.Put(context.Background(), []consumers.Record{badRecord("1", 0, "x", errors.New("bad"))})
	if err == nil {
		t.Fatal("Put to a missing bucket succeeded")
	}
}
