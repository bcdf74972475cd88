package consumers_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/kpl"
)

// applier records what a processor honouring Record.Applies would apply.
type applier struct {
	mu      sync.Mutex
	applied map[string]int
	dups    []string
	last    consumers.Position
}

func newApplier() *applier { return &applier{applied: map[string]int{}} }

func (a *applier) Name() string { return "dedup-test" }

func (a *applier) OpenShard(ctx context.Context, s consumers.Shard) (consumers.ShardProcessor, error) {
	return consumers.SimpleProcessor(a.Name(), func(ctx context.Context, b consumers.Batch) error {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, r := range b.Records {
			a.last = r.Position
			switch {
			case r.Duplicate:
				a.dups = append(a.dups, r.Event.ID)
			case r.Applies():
				a.applied[r.Event.ID]++
			}
		}
		return nil
	}).OpenShard(ctx, s)
}

func (a *applier) counts() (applied, twice, dups int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range a.applied {
		applied++
		if n > 1 {
			twice++
		}
	}
	return applied, twice, len(a.dups)
}

// putEvents puts one plain record per id, in order, on partition key u.
func putEvents(t *testing.T, e *env, ids []string) {
	t.Helper()
	var entries []types.PutRecordsRequestEntry
	for _, id := range ids {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String("u1"), Data: eventJSON(id, "u1", 0)})
	}
	out, err := e.c.Kinesis.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(e.stream), Records: entries})
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("put records: %v (%d failed)", err, aws.ToInt32(out.FailedRecordCount))
	}
}

// putAggregateOf puts the ids as one KPL aggregate, as the producer does.
func putAggregateOf(t *testing.T, e *env, ids []string) {
	t.Helper()
	var a kpl.Aggregator
	for _, id := range ids {
		a.Add(kpl.Record{PartitionKey: "u1", Data: eventJSON(id, "u1", 0)})
	}
	data, pk, _ := a.Build()
	if _, err := e.c.Kinesis.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(e.stream), PartitionKey: aws.String(pk), Data: data}); err != nil {
		t.Fatal(err)
	}
}

func ids(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%02d", prefix, i))
	}
	return out
}

// A retried PutRecords (plain records, or a whole KPL aggregate) writes
// events twice, each copy with its own sequence number: the runtime hands
// the later copies marked Duplicate, counts them, and a processor that
// skips them applies every event once.
func TestRunner_CopiesOfAnEventAreHandedAsDuplicatesAndCounted(t *testing.T) {
	e := newEnv(t, 1)
	putEvents(t, e, ids("e", 0, 10))
	putAggregateOf(t, e, ids("k", 0, 5))
	putEvents(t, e, ids("e", 3, 7)) // the retry of a call whose answer was lost
	putAggregateOf(t, e, ids("k", 0, 5))
	putEvents(t, e, ids("e", 10, 15))

	a := newApplier()
	reg := prometheus.NewRegistry()
	cfg := e.config(t, a, "owner-1")
	cfg.Registerer = reg
	rr := start(t, cfg)
	waitFor(t, 30*time.Second, "every record handed", func() bool {
		applied, _, dups := a.counts()
		return applied+dups >= 15+5+4+5
	})
	rr.stop(t)
	applied, twice, dups := a.counts()
	if applied != 20 || twice != 0 || dups != 9 {
		t.Fatalf("applied %d events (%d twice), %d duplicates; want 20 once each and 9 duplicates", applied, twice, dups)
	}
	if got := duplicatesTotal(t, reg); got != 9 {
		t.Fatalf("clickstream_consumer_duplicate_events_total = %v, want 9", got)
	}
}

// duplicatesTotal sums clickstream_consumer_duplicate_events_total.
func duplicatesTotal(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "clickstream_consumer_duplicate_events_total" {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

// The copy of an event can land after a checkpoint that its original is
// before (the consumer stopped or crashed in between). The next owner
// rebuilds the window from the shard (AT_TIMESTAMP, the window before the
// checkpoint), so it still recognises the copy.
func TestRunner_CopyAfterTheCheckpointIsRecognisedByTheNextOwner(t *testing.T) {
	e := newEnv(t, 1)
	putEvents(t, e, ids("e", 0, 10))

	first := newApplier()
	rr := start(t, e.config(t, first, "owner-1"))
	waitFor(t, 30*time.Second, "the first owner to apply 10 events", func() bool {
		applied, _, _ := first.counts()
		return applied == 10
	})
	rr.stop(t) // flushes, checkpoints after e-09 and releases

	putEvents(t, e, ids("e", 5, 10)) // copies, after the checkpoint
	putAggregateOf(t, e, ids("e", 8, 12))

	second := newApplier()
	rr2 := start(t, e.config(t, second, "owner-2"))
	waitFor(t, 30*time.Second, "the second owner to hand every new record", func() bool {
		applied, _, dups := second.counts()
		return applied+dups >= 5+4
	})
	rr2.stop(t)
	applied, twice, dups := second.counts()
	if applied != 2 || twice != 0 || dups != 7 || second.applied["e-10"] != 1 || second.applied["e-11"] != 1 {
		t.Fatalf("second owner applied %v and %d duplicates; want only e-10 and e-11, and 7 duplicates", second.applied, dups)
	}
}

// A producer's retry across a reshard: the original went to the parent, the
// copy (same partition key) lands on a child. The child's window is seeded
// with the parent's last records, so the copy is still recognised.
func TestRunner_CopyOnAChildShardOfItsOriginalIsRecognised(t *testing.T) {
	e := newEnv(t, 1)
	putEvents(t, e, ids("e", 0, 10))
	reshard(t, e, 2)
	putEvents(t, e, ids("e", 6, 10)) // the retry, now routed to a child
	putEvents(t, e, ids("e", 10, 12))

	a := newApplier()
	rr := start(t, e.config(t, a, "owner-1"))
	waitFor(t, 30*time.Second, "every record handed", func() bool {
		applied, _, dups := a.counts()
		return applied+dups >= 12+4
	})
	rr.stop(t)
	applied, twice, dups := a.counts()
	if applied != 12 || twice != 0 || dups != 4 {
		t.Fatalf("applied %d events (%d twice), %d duplicates; want 12 once each and the 4 copies on the child skipped", applied, twice, dups)
	}
}
