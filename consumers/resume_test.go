package consumers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/kpl"
)

// putAggregate puts one aggregate of n events (ids prefix-0..n-1) and returns its sequence number.
func putAggregate(t *testing.T, e *env, prefix string, n int) string {
	t.Helper()
	var a kpl.Aggregator
	for i := range n {
		a.Add(kpl.Record{PartitionKey: "u", Data: eventJSON(fmt.Sprintf("%s-%d", prefix, i), "u", i)})
	}
	data, pk, _ := a.Build()
	return putRaw(t, e.c.Kinesis, e.stream, kpl.Record{PartitionKey: pk, Data: data})
}

// scripted is a processor whose shard processors are driven by a function
// and which logs every session's checkpoint and handed positions.
type scripted struct {
	name    string
	process func(session int, b consumers.Batch) (consumers.Position, error)
	flush   func(session int, last consumers.Position) (consumers.Position, error)

	mu       sync.Mutex
	sessions []consumers.Shard
	handed   [][]consumers.Position // per session
	closed   int
	flushes  int
	states   [][]byte // state loaded at each open
}

func (s *scripted) Name() string { return s.name }

func (s *scripted) OpenShard(ctx context.Context, sh consumers.Shard) (consumers.ShardProcessor, error) {
	st, err := sh.State.Load(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions = append(s.sessions, sh)
	s.handed = append(s.handed, nil)
	s.states = append(s.states, st)
	return &scriptedShard{s: s, n: len(s.sessions) - 1, shard: sh}, nil
}

type scriptedShard struct {
	s     *scripted
	n     int
	shard consumers.Shard
	last  consumers.Position
}

func (p *scriptedShard) Process(ctx context.Context, b consumers.Batch) (consumers.Position, error) {
	p.s.mu.Lock()
	for _, r := range b.Records {
		p.s.handed[p.n] = append(p.s.handed[p.n], r.Position)
	}
	p.s.mu.Unlock()
	if b.Last().After(p.last) {
		p.last = b.Last()
	}
	if p.s.process == nil {
		return b.Last(), nil
	}
	return p.s.process(p.n, b)
}

func (p *scriptedShard) Flush(ctx context.Context) (consumers.Position, error) {
	p.s.mu.Lock()
	p.s.flushes++
	p.s.mu.Unlock()
	if p.s.flush == nil {
		return p.last, nil
	}
	return p.s.flush(p.n, p.last)
}

func (p *scriptedShard) Close() {
	p.s.mu.Lock()
	p.s.closed++
	p.s.mu.Unlock()
}

func (s *scripted) handedIn(session int) []consumers.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	if session >= len(s.handed) {
		return nil
	}
	return slices.Clone(s.handed[session])
}

func (s *scripted) numSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func pos(seq string, sub int64) consumers.Position {
	return consumers.Position{SequenceNumber: seq, SubSequence: sub}
}

func TestRunner_BatchErrorCheckpointsTheGoodPrefixAndReplaysFromTheFailedSubRecord(t *testing.T) {
	e := newEnv(t, 1)
	seq := putAggregate(t, e, "agg", 10)
	p := &scripted{name: "resume"}
	p.process = func(session int, b consumers.Batch) (consumers.Position, error) {
		if session == 0 && len(b.Records) > 0 {
			return consumers.Position{}, &consumers.BatchError{Index: 4, Err: errors.New("downstream refused record 4")}
		}
		return b.Last(), nil
	}
	run := start(t, e.config(t, p, "r"))
	waitFor(t, 20*time.Second, "a second session to process the rest", func() bool { return len(p.handedIn(1)) == 6 })
	run.stop(t)

	if got := p.sessions[1].Checkpoint; got != pos(seq, 3) {
		t.Fatalf("second session opened at %v, want %v (records before the failed one are durable)", got, pos(seq, 3))
	}
	var want []consumers.Position
	for i := int64(4); i < 10; i++ {
		want = append(want, pos(seq, i))
	}
	if got := p.handedIn(1); !slices.Equal(got, want) {
		t.Fatalf("second session got %v, want sub-records 4..9", got)
	}
	if p.closed < 2 {
		t.Fatalf("Close called %d times, want the failed session closed", p.closed)
	}
	l, err := e.store.Get(context.Background(), "resume", p.sessions[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if l.Checkpoint != pos(seq, 9) || !l.Free() {
		t.Fatalf("lease after shutdown = %+v, want checkpoint %v and released", l, pos(seq, 9))
	}
}

func TestRunner_NewOwnerResumesMidAggregateAfterACrash(t *testing.T) {
	e := newEnv(t, 1)
	seq := putAggregate(t, e, "agg", 10)
	// The first process makes sub-records 0..6 durable, then crashes.
	first := &scripted{name: "resume"}
	first.process = func(_ int, b consumers.Batch) (consumers.Position, error) {
		for _, r := range b.Records {
			if r.Position == pos(seq, 6) {
				return r.Position, nil
			}
		}
		return consumers.Position{}, nil
	}
	a := start(t, e.config(t, first, "a"))
	waitFor(t, 20*time.Second, "the checkpoint at sub-record 6", func() bool {
		l, err := e.store.Get(context.Background(), "resume", "shardId-000000000000")
		return err == nil && l.Checkpoint == pos(seq, 6)
	})
	consumers.Abandon(a.r)

	second := &scripted{name: "resume"}
	b := start(t, e.config(t, second, "b"))
	waitFor(t, 20*time.Second, "the new owner to read the rest", func() bool { return len(second.handedIn(0)) >= 3 })
	b.stop(t)
	if got := second.sessions[0].Checkpoint; got != pos(seq, 6) {
		t.Fatalf("new owner opened at %v, want %v", got, pos(seq, 6))
	}
	want := []consumers.Position{pos(seq, 7), pos(seq, 8), pos(seq, 9)}
	if got := second.handedIn(0); !slices.Equal(got, want) {
		t.Fatalf("new owner got %v, want exactly %v: sub-records after the checkpoint, none before", got, want)
	}
}

func TestRunner_GracefulStopFlushesCheckpointsReleasesAndKeepsState(t *testing.T) {
	e := newEnv(t, 1)
	seq := putAggregate(t, e, "buf", 5)
	// A buffering processor: nothing is durable until Flush; it saves its
	// pending range in the shard state like archive does.
	p := &scripted{name: "buffer"}
	p.process = func(_ int, b consumers.Batch) (consumers.Position, error) { return consumers.Position{}, nil }
	var stateErr error
	p.flush = func(session int, last consumers.Position) (consumers.Position, error) {
		st := p.sessions[session].State
		stateErr = errors.Join(stateErr, st.Save(context.Background(), []byte("flushed "+last.String())))
		return last, nil
	}
	a := start(t, e.config(t, p, "a"))
	waitFor(t, 20*time.Second, "the records", func() bool { return len(p.handedIn(0)) == 5 })
	l, _ := e.store.Get(context.Background(), "buffer", "shardId-000000000000")
	if !l.Checkpoint.IsZero() {
		t.Fatalf("checkpoint %v before anything was durable", l.Checkpoint)
	}
	a.stop(t)
	if stateErr != nil {
		t.Fatal(stateErr)
	}
	if p.flushes != 1 {
		t.Fatalf("Flush called %d times, want once at shutdown", p.flushes)
	}
	l, err := e.store.Get(context.Background(), "buffer", "shardId-000000000000")
	if err != nil {
		t.Fatal(err)
	}
	if l.Checkpoint != pos(seq, 4) || !l.Free() || string(l.State) != "flushed "+pos(seq, 4).String() {
		t.Fatalf("lease after graceful stop = %+v", l)
	}

	// The next process starts at once (released, no expiry wait), after the
	// checkpoint, with the state.
	next := &scripted{name: "buffer"}
	b := start(t, e.config(t, next, "b"))
	waitFor(t, 5*time.Second, "the next process to open the shard", func() bool { return next.numSessions() == 1 })
	time.Sleep(500 * time.Millisecond)
	b.stop(t)
	if got := next.sessions[0].Checkpoint; got != pos(seq, 4) {
		t.Fatalf("next process opened at %v", got)
	}
	if got := string(next.states[0]); got != "flushed "+pos(seq, 4).String() {
		t.Fatalf("next process loaded state %q", got)
	}
	if got := next.handedIn(0); len(got) != 0 {
		t.Fatalf("next process was handed %v again", got)
	}
}

func TestRunner_PanickingProcessorReplaysInsteadOfCrashing(t *testing.T) {
	e := newEnv(t, 1)
	seq := putAggregate(t, e, "p", 3)
	p := &scripted{name: "panic"}
	p.process = func(session int, b consumers.Batch) (consumers.Position, error) {
		if session == 0 && len(b.Records) > 0 {
			panic("processor bug")
		}
		return b.Last(), nil
	}
	run := start(t, e.config(t, p, "r"))
	waitFor(t, 20*time.Second, "the replay after the panic", func() bool { return len(p.handedIn(1)) == 3 })
	run.stop(t)
	if got := p.handedIn(1); !slices.Equal(got, []consumers.Position{pos(seq, 0), pos(seq, 1), pos(seq, 2)}) {
		t.Fatalf("replay handed %v", got)
	}
}
