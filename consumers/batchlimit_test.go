package consumers_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/kpl"
)

// limited is a scripted processor whose shard processors are
// consumers.BatchLimiters, and which logs the size of every batch.
type limited struct {
	*scripted
	max int

	mu    sync.Mutex
	sizes []int // records of each batch, idle polls included
}

func newLimited(name string, max int) *limited {
	l := &limited{scripted: &scripted{name: name}, max: max}
	l.process = func(_ int, b consumers.Batch) (consumers.Position, error) {
		l.mu.Lock()
		l.sizes = append(l.sizes, len(b.Records))
		l.mu.Unlock()
		return b.Last(), nil
	}
	return l
}

func (l *limited) OpenShard(ctx context.Context, sh consumers.Shard) (consumers.ShardProcessor, error) {
	sp, err := l.scripted.OpenShard(ctx, sh)
	if err != nil {
		return nil, err
	}
	return limitedShard{sp.(*scriptedShard), l.max}, nil
}

type limitedShard struct {
	*scriptedShard
	max int
}

func (l limitedShard) MaxBatchRecords() int { return l.max }

func (l *limited) batchSizes() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sizes)
}

// putPlainAggregatePlain puts plain events, then an aggregate of aggN, then more plain
// events, and returns every user record's position in stream order.
func putPlainAggregatePlain(t *testing.T, e *env, before, aggN, after int) []consumers.Position {
	t.Helper()
	var want []consumers.Position
	plain := func(n int, prefix string) {
		for i := range n {
			seq := putRaw(t, e.c.Kinesis, e.stream, kpl.Record{PartitionKey: "u", Data: eventJSON(fmt.Sprintf("%s-%d", prefix, i), "u", i)})
			want = append(want, pos(seq, 0))
		}
	}
	plain(before, "before")
	seq := putAggregate(t, e, "agg", aggN)
	for i := range aggN {
		want = append(want, pos(seq, int64(i)))
	}
	plain(after, "after")
	return want
}

func TestRunner_BatchLimiterGetsAnAnswerInSmallBatches(t *testing.T) {
	e := newEnv(t, 1)
	// All on the shard before the runner starts: its first GetRecords
	// answer holds them all.
	want := putPlainAggregatePlain(t, e, 9, 10, 6)
	p := newLimited("limited", 4)
	cfg := e.config(t, p, "r")
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	run := start(t, cfg)
	waitFor(t, 20*time.Second, "every record", func() bool { return len(p.handedIn(0)) >= len(want) })
	run.stop(t)

	if got := p.handedIn(0); !slices.Equal(got, want) {
		t.Fatalf("handed %v,\nwant each record once, in order: %v", got, want)
	}
	// At most 4 records a batch, but for the batch with the aggregate:
	// never split, it comes whole with what precedes it in its batch.
	nonEmpty := 0
	for _, n := range p.batchSizes() {
		switch {
		case n == 0:
		case n > 4 && (n < 10 || n > 13):
			t.Errorf("a batch of %d records; want at most 4, or the aggregate (10) with at most 3 before it", n)
		}
		if n > 0 {
			nonEmpty++
		}
	}
	if nonEmpty < 5 {
		t.Errorf("%d batches with records, want at least 5 (15 plain records by 4, and the aggregate)", nonEmpty)
	}
	// The GetRecords counter counts calls, not the batches an answer makes.
	if calls, batches := counterSum(t, reg, "clickstream_consumer_get_records_total"), len(p.batchSizes()); calls < 1 || int(calls) >= batches {
		t.Errorf("get_records_total = %v after %d batches (idle polls included); want fewer: an answer made several", calls, batches)
	}
	if got := counterSum(t, reg, "clickstream_consumer_records_total"); int(got) != len(want) {
		t.Errorf("records counter = %v, want %d", got, len(want))
	}
}

// A new owner resumes mid-aggregate when the answer is cut into batches:
// the records before the checkpoint (read again to rebuild the
// de-duplication window) span several batches, and none is handed.
func TestRunner_BatchLimiterResumesMidAggregateAfterACrash(t *testing.T) {
	e := newEnv(t, 1)
	want := putPlainAggregatePlain(t, e, 9, 10, 5)
	cut := want[9+6] // sub-record 6 of the aggregate
	first := newLimited("resume-limited", 3)
	first.process = func(_ int, b consumers.Batch) (consumers.Position, error) {
		for _, r := range b.Records {
			if r.Position == cut {
				return r.Position, nil
			}
		}
		return consumers.Position{}, nil
	}
	a := start(t, e.config(t, first, "a"))
	waitFor(t, 20*time.Second, "the checkpoint at sub-record 6", func() bool {
		l, err := e.store.Get(context.Background(), "resume-limited", "shardId-000000000000")
		return err == nil && l.Checkpoint == cut
	})
	consumers.Abandon(a.r)

	second := newLimited("resume-limited", 3)
	b := start(t, e.config(t, second, "b"))
	rest := want[9+7:]
	waitFor(t, 20*time.Second, "the new owner to read the rest", func() bool { return len(second.handedIn(0)) >= len(rest) })
	b.stop(t)
	if got := second.handedIn(0); !slices.Equal(got, rest) {
		t.Fatalf("new owner got %v,\nwant exactly %v: the records after the checkpoint, none before", got, rest)
	}
}
