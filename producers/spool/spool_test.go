package spool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/producers"
)

// fakeTarget acknowledges batches from its own goroutine, like the
// producer; hold keeps acknowledgements back, fail fails records.
type fakeTarget struct {
	mu    sync.Mutex
	got   map[string]int // data → times acknowledged
	held  []func()
	hold  bool
	fail  func(r producers.Record) error
	wg    sync.WaitGroup
	calls int
}

func newFakeTarget() *fakeTarget { return &fakeTarget{got: map[string]int{}} }

func (f *fakeTarget) PutBatchAck(ctx context.Context, rs []producers.Record, done func(error)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	ack := func() {
		f.mu.Lock()
		var be producers.BatchError
		for _, r := range rs {
			var err error
			if f.fail != nil {
				err = f.fail(r)
			}
			be.Errs = append(be.Errs, err)
			if err != nil {
				be.Failed++
			} else {
				f.got[string(r.Data)]++
			}
		}
		f.mu.Unlock()
		if be.Failed > 0 {
			done(&be)
		} else {
			done(nil)
		}
	}
	if f.hold {
		f.held = append(f.held, ack)
		return nil
	}
	f.wg.Go(ack)
	return nil
}

func (f *fakeTarget) release() {
	f.mu.Lock()
	held := f.held
	f.held, f.hold = nil, false
	f.mu.Unlock()
	for _, a := range held {
		f.wg.Go(a)
	}
}

func (f *fakeTarget) count(data string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got[data]
}

func recs(batch, n int) []producers.Record {
	rs := make([]producers.Record, n)
	for i := range rs {
		rs[i] = producers.Record{PartitionKey: fmt.Sprint("u-", i%3), Data: fmt.Appendf(nil, "b%d-e%d", batch, i)}
	}
	return rs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSpool_ShipsEverythingAppendedAndCommitsIt(t *testing.T) {
	dir := t.TempDir()
	target := newFakeTarget()
	s, err := New(Config{Dir: dir, MaxBytes: 8000, SegmentBytes: 1000, CommitInterval: 10 * time.Millisecond}, target)
	if err != nil {
		t.Fatal(err)
	}
	for b := range 50 {
		if err := s.Append(t.Context(), recs(b, 4)); err != nil {
			t.Fatalf("Append %d: %v", b, err)
		}
	}
	waitFor(t, "commit of everything", func() bool { st := s.Stats(); return st.Committed == st.End })
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	target.wg.Wait()
	for b := range 50 {
		for _, r := range recs(b, 4) {
			if n := target.count(string(r.Data)); n != 1 {
				t.Fatalf("%s shipped %d times", r.Data, n)
			}
		}
	}
	st := s.Stats()
	if st.Shipped != 200 || st.Appended != 200 || st.Segments != 1 {
		t.Fatalf("stats %+v: want 200 appended and shipped, one segment left", st)
	}
}

func TestSpool_UnacknowledgedFramesAreShippedAgainAfterRestart(t *testing.T) {
	dir := t.TempDir()
	target := newFakeTarget()
	cfg := Config{Dir: dir, CommitInterval: 5 * time.Millisecond}
	s, err := New(cfg, target)
	if err != nil {
		t.Fatal(err)
	}
	for b := range 3 {
		if err := s.Append(t.Context(), recs(b, 2)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the first frames shipped and committed", func() bool { st := s.Stats(); return st.Committed == st.End })
	target.mu.Lock()
	target.hold = true
	target.mu.Unlock()
	for b := 3; b < 6; b++ {
		if err := s.Append(t.Context(), recs(b, 2)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the held frames put", func() bool { target.mu.Lock(); defer target.mu.Unlock(); return len(target.held) == 3 })
	// Close gives up on the held frames: as a crash would, it leaves them
	// uncommitted.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	target.release() // acknowledged after the spool stopped: not committed
	target.wg.Wait()

	target2 := newFakeTarget()
	s2, err := New(cfg, target2)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replay committed", func() bool { st := s2.Stats(); return st.Committed == st.End && st.Shipped == 6 })
	if err := s2.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	target2.wg.Wait()
	for b := range 6 {
		for _, r := range recs(b, 2) {
			want := 0
			if b >= 3 {
				want = 1
			}
			if n := target2.count(string(r.Data)); n != want {
				t.Fatalf("%s shipped %d times after restart, want %d", r.Data, n, want)
			}
		}
	}
}

func TestSpool_FailedRecordsAreRetriedBeforeTheirFrameIsCommitted(t *testing.T) {
	dir := t.TempDir()
	target := newFakeTarget()
	var mu sync.Mutex
	failures := 0
	target.fail = func(r producers.Record) error {
		mu.Lock()
		defer mu.Unlock()
		if string(r.Data) == "b0-e1" && failures < 2 {
			failures++
			return producers.ErrRecordExpired
		}
		return nil
	}
	s, err := New(Config{Dir: dir, CommitInterval: 5 * time.Millisecond, RetryBackoff: 20 * time.Millisecond}, target)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(t.Context(), recs(0, 3)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(25 * time.Millisecond)
	if st := s.Stats(); st.Committed != 0 {
		t.Fatalf("committed %d while a record of the frame was failing", st.Committed)
	}
	waitFor(t, "commit after retries", func() bool { st := s.Stats(); return st.Committed == st.End })
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	target.wg.Wait()
	if st := s.Stats(); st.Retried != 2 || st.Shipped != 3 {
		t.Fatalf("stats %+v: want 2 retried and 3 shipped", st)
	}
	for _, r := range recs(0, 3) {
		if n := target.count(string(r.Data)); n != 1 {
			t.Fatalf("%s shipped %d times", r.Data, n)
		}
	}
}

func TestSpool_AppendAfterCloseFails(t *testing.T) {
	s, err := New(Config{Dir: t.TempDir()}, newFakeTarget())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(t.Context(), recs(0, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append = %v, want ErrClosed", err)
	}
}
