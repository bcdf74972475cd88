package kinesisadapter_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/internal/testenv"
)

// TestHandle_SameRecordsAsTheLongRunningRuntime puts the golden events'
// records on a real stream, reads them with the long-running runtime, and
// checks that a processor is handed the same records in both hosts.
func TestHandle_SameRecordsAsTheLongRunningRuntime(t *testing.T) {
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 1)
	table := testenv.Table(t, c, setup.LeasesTable)

	var fromLambda []seen
	var lambdaDLQ, runtimeDLQ int
	ctx := context.Background()
	for _, name := range []string{"plain", "aggregated", "corrupt-aggregate", "invalid-event"} {
		ev := readEvent(t, name)
		p := &recorder{}
		_, dlq := run(t, p, ev)
		lambdaDLQ += len(dlq.Entries())
		fromLambda = append(fromLambda, p.batches[0]...)
		for _, r := range ev.Records {
			_, err := c.Kinesis.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream),
				PartitionKey: aws.String(r.Kinesis.PartitionKey), Data: r.Kinesis.Data})
			if err != nil {
				t.Fatal(err)
			}
		}
	}

	var mu sync.Mutex
	var fromRuntime []seen
	proc := consumers.SimpleProcessor("same", func(ctx context.Context, b consumers.Batch) error {
		mu.Lock()
		defer mu.Unlock()
		for _, rec := range b.Records {
			v := seen{Sub: rec.SubSequence, PartitionKey: rec.PartitionKey, ExplicitHashKey: rec.ExplicitHashKey, Aggregated: rec.Aggregated}
			if rec.Err != nil {
				v.Err = rec.Err.Error()
			} else {
				v.EventID, v.EventType, v.UserID = rec.Event.ID, rec.Event.Type, rec.Event.UserID
			}
			fromRuntime = append(fromRuntime, v)
		}
		return nil
	})
	dlq := consumers.NewMemoryDeadLetter()
	r, err := consumers.NewRunner(consumers.Config{
		Stream: stream, Processor: proc, Kinesis: c.Kinesis, Leases: leases.NewDynamoStore(c.DynamoDB, table),
		DeadLetter: dlq, LeaseDuration: 1500 * time.Millisecond, PollInterval: 50 * time.Millisecond, IdleInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(fromRuntime)
		mu.Unlock()
		if n >= len(fromLambda) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	runtimeDLQ = len(dlq.Entries())

	// Sequence numbers, shard ids and arrival times differ between the two
	// streams; everything a processor acts on must not.
	for i := range fromLambda {
		fromLambda[i].Shard, fromLambda[i].Seq, fromLambda[i].ArrivalTime = "", "", ""
	}
	for i := range fromRuntime {
		// The runtime names the batch's decode error with the record's own
		// sequence number; blank it like the Lambda side's.
		fromRuntime[i].Err = blankSeq(fromRuntime[i].Err)
		fromLambda[i].Err = blankSeq(fromLambda[i].Err)
	}
	if !slices.Equal(fromLambda, fromRuntime) {
		t.Fatalf("hosts disagree:\nlambda  %+v\nruntime %+v", fromLambda, fromRuntime)
	}
	if lambdaDLQ != runtimeDLQ || lambdaDLQ == 0 {
		t.Fatalf("dead letters: lambda %d, runtime %d", lambdaDLQ, runtimeDLQ)
	}
}

// blankSeq removes the "de-aggregate record SEQ" prefix's number.
func blankSeq(s string) string {
	const p = "de-aggregate record "
	if len(s) > len(p) && s[:len(p)] == p {
		for i := len(p); i < len(s); i++ {
			if s[i] == ':' {
				return p + "N" + s[i:]
			}
		}
	}
	return s
}
