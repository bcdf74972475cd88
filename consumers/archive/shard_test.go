package archive

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
)

const testShard = "shardId-000000000007"

// crashHost plays the runtime around one shard with crashes: it keeps the
// checkpoint and the state store, checkpoints reported positions either at
// once or later (as the runtime's CheckpointInterval does; a state Save
// writes the pending one, as consumers.StateStore promises), and at a chosen
// operation (object upload or state save) "dies": that operation may or may
// not take effect, and nothing after it does.
type crashHost struct {
	mu         sync.Mutex
	rng        *rand.Rand
	state      []byte
	checkpoint consumers.Position
	unckpt     consumers.Position // reported, not yet checkpointed
	ops        int
	crashAt    int // 0: never
	dead       bool
	crashes    int
}

// tick counts an operation and reports whether it must fail.
func (h *crashHost) tick() bool {
	h.ops++
	if h.dead {
		return true
	}
	if h.crashAt > 0 && h.ops >= h.crashAt {
		h.dead = true
		h.crashes++
		return h.rng.IntN(2) == 0 // the fatal operation itself may or may not land
	}
	return false
}

func (h *crashHost) Load(ctx context.Context) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return bytes.Clone(h.state), nil
}

func (h *crashHost) Save(ctx context.Context, b []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tick() {
		return errCrash
	}
	h.state = bytes.Clone(b)
	if h.unckpt.After(h.checkpoint) {
		h.checkpoint = h.unckpt
	}
	return nil
}

func (h *crashHost) put(string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tick() {
		return errCrash
	}
	return nil
}

// reported handles a position returned by Process or Flush.
func (h *crashHost) reported(p consumers.Position, now bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p.IsZero() || h.dead {
		return
	}
	if p.Compare(h.checkpoint) < 0 {
		panic(fmt.Sprintf("reported position %s is before the checkpoint %s", p, h.checkpoint))
	}
	if now || h.rng.IntN(2) == 0 {
		h.checkpoint = p
	} else {
		h.unckpt = p
	}
}

// runWithCrashes archives recs through cfg with `crashes` simulated crashes
// at random operations, each followed by a restart from the checkpoint with
// different batch boundaries; lambdaLike hosts also end early (Flush, then
// a fresh OpenShard) at random points, as Lambda invocations do.
func runWithCrashes(t *testing.T, cfg Config, recs []consumers.Record, seed uint64, crashes int, lambdaLike bool) (*memStore, *crashHost, *Archive) {
	t.Helper()
	ctx := context.Background()
	a, store := testArchive(t, cfg)
	h := &crashHost{rng: rand.New(rand.NewPCG(seed, 3))}
	store.failPut = h.put
	rng := rand.New(rand.NewPCG(seed, 5))
	clock := epoch.Add(time.Hour)
	for round := 0; ; round++ {
		if round > 200 {
			t.Fatal("no progress after 200 restarts")
		}
		h.mu.Lock()
		h.dead, h.unckpt = false, consumers.Position{}
		h.crashAt = 0
		if h.crashes < crashes {
			h.crashAt = h.ops + 1 + h.rng.IntN(12)
		}
		ckpt := h.checkpoint
		h.mu.Unlock()

		sp, err := a.OpenShard(ctx, consumers.Shard{ID: testShard, Checkpoint: ckpt, State: h})
		if err != nil {
			t.Fatalf("OpenShard: %v", err)
		}
		i := 0
		for i < len(recs) && !recs[i].Position.After(ckpt) {
			i++
		}
		failed, ended := false, false
		for i < len(recs) && !failed {
			n := 1 + rng.IntN(40)
			if rng.IntN(4) == 0 {
				n = 0 // an idle poll
			}
			end := min(i+n, len(recs))
			clock = clock.Add(time.Duration(rng.IntN(8000)) * time.Millisecond)
			d, err := sp.Process(ctx, consumers.Batch{ShardID: testShard, Records: recs[i:end], Now: clock})
			if err != nil {
				failed = true
				break
			}
			h.reported(d, false)
			i = end
			if lambdaLike && rng.IntN(6) == 0 {
				ended = true
				break
			}
		}
		if !failed {
			d, err := sp.Flush(ctx)
			if err == nil {
				h.reported(d, true)
			}
			failed = err != nil
		}
		sp.Close()
		if !failed && !ended && i == len(recs) {
			return store, h, a
		}
	}
}

// crashSeeds is how many random crash schedules each crash test runs; the
// property has held for 200 seeds (go test -run Crash -args -crash-seeds=200).
func crashSeeds() uint64 {
	if testing.Short() || raceEnabled {
		return 4
	}
	return uint64(*flagCrashSeeds)
}

var flagCrashSeeds = flag.Int("crash-seeds", 12, "random crash schedules per simulated-crash test")

func TestShard_ExactlyOnceWithoutCrashes(t *testing.T) {
	recs := recordsOf(testShard, genEvents(1000, 1), 1)
	store, _, a := runWithCrashes(t, Config{MaxAge: 20 * time.Second}, recs, 1, 0, false)
	objects := readObjects(t, store, "")
	checkExactlyOnce(t, "", objects, recs)
	if len(objects) < 10 {
		t.Errorf("only %d objects: want age flushes over several partitions", len(objects))
	}
	if got := metricValue(a.m.badRecords); got == 0 {
		t.Error("bad records were not counted")
	}
	if got := a.buffered.Load(); got != 0 {
		t.Errorf("memory budget still holds %d bytes after every shard closed", got)
	}
}

func TestShard_ReplayAfterCrashWritesSameObjects(t *testing.T) {
	recs := recordsOf(testShard, genEvents(600, 2), 2)
	for seed := uint64(1); seed <= crashSeeds(); seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			store, h, _ := runWithCrashes(t, Config{MaxAge: 20 * time.Second, MaxPartitions: 8}, recs, seed, 6, false)
			checkExactlyOnce(t, "", readObjects(t, store, ""), recs)
			if h.crashes < 6 {
				t.Errorf("only %d crashes happened", h.crashes)
			}
		})
	}
}

func TestShard_ReplayAfterCrashWithLambdaLikeInvocations(t *testing.T) {
	recs := recordsOf(testShard, genEvents(500, 3), 3)
	for seed := uint64(1); seed <= crashSeeds(); seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			store, _, _ := runWithCrashes(t, Config{MaxAge: time.Hour}, recs, seed, 5, true)
			checkExactlyOnce(t, "", readObjects(t, store, ""), recs)
		})
	}
}

func TestShard_RedoIsExercised(t *testing.T) {
	// Across the seeds above some crash must land between "pending saved"
	// and "written saved"; make sure the redo path really runs.
	recs := recordsOf(testShard, genEvents(300, 4), 4)
	redos := 0.0
	for seed := uint64(1); seed <= 10; seed++ {
		_, _, a := runWithCrashes(t, Config{MaxAge: 20 * time.Second}, recs, seed, 4, false)
		redos += metricValue(a.m.flushes.WithLabelValues(reasonRedo))
	}
	if redos == 0 {
		t.Fatal("no interrupted flush was redone in 10 crashy runs")
	}
}

func TestShard_ReportsDurablePositionBeforeTheOldestBufferedRecord(t *testing.T) {
	ctx := context.Background()
	a, _ := testArchive(t, Config{MaxAge: time.Minute})
	st := &memState{}
	sp, err := a.OpenShard(ctx, consumers.Shard{ID: testShard, State: st})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	events := [][]byte{
		[]byte(`not json`),
		[]byte(`{"type":"access","ts":1763805600123}`),
		[]byte(`{"type":"access","ts":1763805600124}`),
	}
	recs := recordsOf(testShard, events, 9)
	// Only a bad record: durable at once.
	d, err := sp.Process(ctx, consumers.Batch{Records: recs[:1], Now: epoch})
	if err != nil || d != recs[0].Position {
		t.Fatalf("after a bad record: %s, %v; want %s", d, err, recs[0].Position)
	}
	// A good record is buffered: nothing new is durable.
	d, err = sp.Process(ctx, consumers.Batch{Records: recs[1:2], Now: epoch.Add(time.Second)})
	if err != nil || !d.IsZero() {
		t.Fatalf("after buffering: %s, %v; want zero", d, err)
	}
	// Age flush: everything handed is durable.
	d, err = sp.Process(ctx, consumers.Batch{Records: recs[2:], Now: epoch.Add(time.Minute + time.Second)})
	if err != nil || d != recs[2].Position {
		t.Fatalf("after the age flush: %s, %v; want %s", d, err, recs[2].Position)
	}
	if st.saves != 2 {
		t.Errorf("state saved %d times per flush; want 2 (pending, then written)", st.saves)
	}
	saved, _ := unmarshalState(st.state)
	if saved.Written != recs[2].Position || saved.Pending != nil {
		t.Errorf("state after flush = %+v", saved)
	}
	// Nothing buffered: Flush has nothing to write and reports the same.
	if d, err := sp.Flush(ctx); err != nil || d != recs[2].Position {
		t.Errorf("Flush = %s, %v", d, err)
	}
}

func TestShard_FlushesOnSizeRowsAndPartitions(t *testing.T) {
	ctx := context.Background()
	recs := recordsOf(testShard, genEvents(2000, 5), 5)
	tests := []struct {
		name   string
		cfg    Config
		reason string
	}{
		{"bytes", Config{FlushBytes: 20_000}, reasonSize},
		{"rows", Config{FlushRows: 40}, reasonSize},
		{"partitions", Config{MaxPartitions: 5}, reasonPartitions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, store := testArchive(t, tt.cfg)
			sp, _ := a.OpenShard(ctx, consumers.Shard{ID: testShard, State: &memState{}})
			defer sp.Close()
			for i := 0; i < len(recs); i += 100 {
				if _, err := sp.Process(ctx, consumers.Batch{Records: recs[i:min(i+100, len(recs))], Now: epoch}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := sp.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if n := metricValue(a.m.flushes.WithLabelValues(tt.reason)); n < 2 {
				t.Errorf("%s flushes = %v, want several", tt.reason, n)
			}
			objects := readObjects(t, store, "")
			checkExactlyOnce(t, "", objects, recs)
			for k, rows := range objects {
				if tt.name == "rows" && len(rows) > 40 {
					t.Errorf("%s has %d rows > FlushRows", k, len(rows))
				}
			}
		})
	}
}

func TestShard_PartitionLimitBoundsPendingKeys(t *testing.T) {
	ctx := context.Background()
	a, _ := testArchive(t, Config{MaxPartitions: 5})
	st := &maxState{}
	sp, _ := a.OpenShard(ctx, consumers.Shard{ID: testShard, State: st})
	defer sp.Close()
	var events [][]byte
	for h := range 40 { // 40 hours of one type: 40 partitions
		events = append(events, fmt.Appendf(nil, `{"type":"access","ts":%d}`, epoch.Add(time.Duration(h)*time.Hour).UnixMilli()))
	}
	recs := recordsOf(testShard, events, 6)
	if _, err := sp.Process(ctx, consumers.Batch{Records: recs, Now: epoch}); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st.maxKeys > 5 {
		t.Errorf("a pending flush listed %d keys; MaxPartitions is 5", st.maxKeys)
	}
}

// maxState records the largest pending key list saved.
type maxState struct {
	memState
	maxKeys int
}

func (m *maxState) Save(ctx context.Context, b []byte) error {
	st, err := unmarshalState(b)
	if err != nil {
		return err
	}
	if st.Pending != nil {
		m.maxKeys = max(m.maxKeys, len(st.Pending.Keys))
	}
	return m.memState.Save(ctx, b)
}

func TestShard_MemoryBudgetFlushesTheLargestShard(t *testing.T) {
	ctx := context.Background()
	recs := recordsOf(testShard, genEvents(20_000, 7), 7)
	// A partition's file being written holds a writer (~20 KB) besides its
	// pages: the budget is well above the small shard's few partitions.
	// Small pages keep each step of the estimate small.
	budget := int64(1_000_000)
	a, store := testArchive(t, Config{MemoryBudget: budget, PageBytes: 8 << 10})
	big, _ := a.OpenShard(ctx, consumers.Shard{ID: testShard, State: &memState{}})
	small, _ := a.OpenShard(ctx, consumers.Shard{ID: "shardId-000000000008", State: &memState{}})
	defer big.Close()
	defer small.Close()
	smallRecs := recordsOf("shardId-000000000008", genEvents(10, 8), 8)
	if _, err := small.Process(ctx, consumers.Batch{Records: smallRecs, Now: epoch}); err != nil {
		t.Fatal(err)
	}
	peak := int64(0)
	for i := 0; i < len(recs); i += 50 {
		if _, err := big.Process(ctx, consumers.Batch{Records: recs[i:min(i+50, len(recs))], Now: epoch}); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, a.buffered.Load())
	}
	t.Logf("peak %d, small shard %d, memory flushes %v", peak, small.(*shardProc).mem, metricValue(a.m.flushes.WithLabelValues(reasonMemory)))
	if n := metricValue(a.m.flushes.WithLabelValues(reasonMemory)); n < 3 {
		t.Errorf("memory flushes = %v, want several", n)
	}
	if peak > budget+64<<10 {
		t.Errorf("buffered memory peaked at %d, budget %d", peak, budget)
	}
	// The small shard stays buffered: it is under its fair share.
	for k := range store.objects {
		if bytes.Contains([]byte(k), []byte("shardId-000000000008")) {
			t.Errorf("the small shard was flushed: %s", k)
		}
	}
}

func TestShard_UploadFailureFailsTheBatchAndTheNextOwnerRedoesIt(t *testing.T) {
	ctx := context.Background()
	recs := recordsOf(testShard, genEvents(300, 9), 9)
	a, store := testArchive(t, Config{UploadConcurrency: 2})
	st := &memState{}
	calls := 0
	store.failPut = func(key string) error {
		calls++
		if calls == 3 {
			return fmt.Errorf("injected upload failure")
		}
		return nil
	}
	sp, _ := a.OpenShard(ctx, consumers.Shard{ID: testShard, State: st})
	if _, err := sp.Process(ctx, consumers.Batch{Records: recs, Now: epoch}); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Flush(ctx); err == nil {
		t.Fatal("Flush succeeded although an upload failed")
	}
	if _, err := sp.Process(ctx, consumers.Batch{Now: epoch}); err == nil {
		t.Error("Process after a failed flush succeeded; the processor must be closed")
	}
	sp.Close()
	saved, _ := unmarshalState(st.state)
	if saved.Pending == nil {
		t.Fatal("no pending flush recorded before uploading")
	}
	// The next owner starts from the old checkpoint (zero) and redoes it.
	sp2, err := a.OpenShard(ctx, consumers.Shard{ID: testShard, State: st})
	if err != nil {
		t.Fatal(err)
	}
	defer sp2.Close()
	for i := 0; i < len(recs); i += 7 { // different batch boundaries
		if _, err := sp2.Process(ctx, consumers.Batch{Records: recs[i:min(i+7, len(recs))], Now: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sp2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, "", readObjects(t, store, ""), recs)
	if n := metricValue(a.m.flushes.WithLabelValues(reasonRedo)); n != 1 {
		t.Errorf("redo flushes = %v, want 1", n)
	}
}

func TestShard_RedoWhenTheInterruptedRangeWasTrimmed(t *testing.T) {
	ctx := context.Background()
	recs := recordsOf(testShard, genEvents(200, 10), 10)
	a, store := testArchive(t, Config{})
	st := &memState{}
	store.failPut = func(key string) error { return errCrash }
	sp, _ := a.OpenShard(ctx, consumers.Shard{ID: testShard, State: st})
	_, _ = sp.Process(ctx, consumers.Batch{Records: recs, Now: epoch})
	if _, err := sp.Flush(ctx); err == nil {
		t.Fatal("flush should fail")
	}
	sp.Close()
	// Pretend half of one object was uploaded by a previous attempt, under
	// a pending key, then lose the middle of the range to retention.
	saved, _ := unmarshalState(st.state)
	store.failPut = nil
	for _, k := range saved.Pending.Keys {
		store.objects[k] = []byte("partial garbage from the crashed run")
	}
	kept := append(append([]consumers.Record{}, recs[:50]...), recs[120:]...)
	sp2, _ := a.OpenShard(ctx, consumers.Shard{ID: testShard, State: st})
	defer sp2.Close()
	if _, err := sp2.Process(ctx, consumers.Batch{Records: kept, Now: epoch}); err != nil {
		t.Fatal(err)
	}
	if _, err := sp2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	objects := readObjects(t, store, "") // fails on any leftover garbage object
	checkExactlyOnce(t, "", objects, kept)
}

// TestShard_APartitionsNextFileReusesItsWriter: after a flush, a partition
// that gets rows again writes its next file with the writer of its last
// one (its buffers already grown), and that file is byte for byte what a
// fresh writer makes; writers no partition took again are given back at
// the next flush; the buffers' memory returns to zero when the shard
// closes.
func TestShard_APartitionsNextFileReusesItsWriter(t *testing.T) {
	ctx := context.Background()
	recs := recordsOf(testShard, genEvents(6000, 21), 21)
	first, second := recs[:3000], recs[3000:]
	a, store := testArchive(t, Config{})
	sp, _ := a.OpenShard(ctx, consumers.Shard{ID: testShard, State: &memState{}})
	s := sp.(*shardProc)
	if _, err := sp.Process(ctx, consumers.Batch{Records: first, Now: epoch}); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	spares := maps.Clone(s.spare)
	if len(spares) == 0 || len(spares) != len(store.objects) {
		t.Fatalf("%d spare writers after a flush of %d objects", len(spares), len(store.objects))
	}
	if a.buffered.Load() != s.spareMem || s.spareMem <= 0 {
		t.Fatalf("buffered %d, spares hold %d", a.buffered.Load(), s.spareMem)
	}
	if _, err := sp.Process(ctx, consumers.Batch{Records: second, Now: epoch}); err != nil {
		t.Fatal(err)
	}
	reused := 0
	for pk, pb := range s.parts {
		if w := spares[pk]; w != nil {
			if pb.w != w {
				t.Errorf("partition %v: a new writer, not its last file's", pk)
			}
			reused++
		}
	}
	if reused == 0 {
		t.Fatal("no partition got rows again: the test needs some")
	}
	firstKeys := maps.Clone(store.objects)
	secondParts := maps.Clone(s.parts)
	if _, err := sp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for pk := range s.spare {
		if secondParts[pk] == nil {
			t.Errorf("partition %v: a spare writer kept two flushes without rows", pk)
		}
	}
	// The same rows through fresh writers make the same files.
	b, fresh := testArchive(t, Config{})
	fsp, _ := b.OpenShard(ctx, consumers.Shard{ID: testShard, State: &memState{}})
	if _, err := fsp.Process(ctx, consumers.Batch{Records: second, Now: epoch}); err != nil {
		t.Fatal(err)
	}
	if _, err := fsp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	fsp.Close()
	n := 0
	for k, body := range store.objects {
		if _, ok := firstKeys[k]; ok {
			continue
		}
		n++
		if !bytes.Equal(body, fresh.objects[k]) {
			t.Errorf("%s: %d bytes with a reused writer, %d with a fresh one", k, len(body), len(fresh.objects[k]))
		}
	}
	if n == 0 || n != len(fresh.objects) {
		t.Errorf("second flush: %d objects, fresh writers %d", n, len(fresh.objects))
	}
	sp.Close()
	if got := a.buffered.Load(); got != 0 {
		t.Errorf("buffered %d bytes after Close, want 0", got)
	}
}
