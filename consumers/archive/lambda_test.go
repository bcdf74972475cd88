package archive

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/lambdas/kinesisadapter"
)

// noStateStore is a host without per-shard state, as the Lambda adapter
// is by default.
type noStateStore struct{}

func (noStateStore) Load(context.Context) ([]byte, error) { return nil, nil }
func (noStateStore) Save(context.Context, []byte) error {
	return fmt.Errorf("save: %w", consumers.ErrNoStateStore)
}

// lambdaRecords gives every event its own Kinesis record (no aggregation),
// as Lambda would deliver them.
func lambdaRecords(events [][]byte) []consumers.Record {
	recs := recordsOf(testShard, events, 21)
	for i := range recs {
		recs[i].Position = consumers.Position{SequenceNumber: seqOf(i + 1)}
		recs[i].ArrivalTime = epoch.Add(time.Duration(i) * time.Second)
		recs[i].Aggregated = false
	}
	return recs
}

// runLambda feeds recs through the Lambda adapter in invocations of random
// size, retrying from the first failed record as the event source mapping
// does with ReportBatchItemFailures.
func runLambda(t *testing.T, h *kinesisadapter.Handler, recs []consumers.Record, seed uint64) (invocations, retries int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < len(recs); {
		n := 1 + rng.IntN(120)
		var ev events.KinesisEvent
		for _, r := range recs[i:min(i+n, len(recs))] {
			ev.Records = append(ev.Records, events.KinesisEventRecord{
				EventID: testShard + ":" + r.SequenceNumber,
				Kinesis: events.KinesisRecord{
					SequenceNumber: r.SequenceNumber, PartitionKey: "pk", Data: r.Data,
					ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: r.ArrivalTime},
				},
			})
		}
		resp, err := h.Handle(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		invocations++
		if len(resp.BatchItemFailures) == 0 {
			i += len(ev.Records)
			continue
		}
		retries++
		failed := resp.BatchItemFailures[0].ItemIdentifier
		for i < len(recs) && recs[i].SequenceNumber != failed {
			i++
		}
		if invocations > 10*len(recs) {
			t.Fatal("no progress")
		}
	}
	return invocations, retries
}

func TestLambda_ArchivesTheSameRowsAsTheRuntime(t *testing.T) {
	recs := lambdaRecords(genEvents(800, 12))
	for _, tt := range []struct {
		name  string
		state func() consumers.StateStore
	}{
		{"with a state store", func() consumers.StateStore { return &memState{} }},
		{"without a state store", func() consumers.StateStore { return noStateStore{} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, store := testArchive(t, Config{})
			// Uploads fail now and then: the invocation reports the first
			// record not durable and Lambda retries from there, cut
			// differently.
			rng := rand.New(rand.NewPCG(5, 5))
			store.failPut = func(string) error {
				if rng.IntN(25) == 0 {
					return errors.New("injected S3 error")
				}
				return nil
			}
			st := tt.state()
			h, err := kinesisadapter.New(a, consumers.NewMemoryDeadLetter(),
				kinesisadapter.WithStateStore(func(string) consumers.StateStore { return st }))
			if err != nil {
				t.Fatal(err)
			}
			inv, retries := runLambda(t, h, recs, 9)
			if retries == 0 {
				t.Fatal("no invocation failed; the test proves nothing")
			}
			t.Logf("%d invocations, %d retried", inv, retries)
			checkExactlyOnce(t, "", readObjects(t, store, ""), recs)
		})
	}
}
