package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openLog(t *testing.T, dir string, o LogOptions) *Log {
	t.Helper()
	l, err := OpenLog(dir, o)
	if err != nil {
		t.Fatalf("OpenLog: %v", err)
	}
	return l
}

func payload(i int) []byte {
	return fmt.Appendf(nil, "payload-%05d-%s", i, bytes.Repeat([]byte{'x'}, i%50))
}

func appendAll(t *testing.T, l *Log, from, to int) []int64 {
	t.Helper()
	var ends []int64
	for i := from; i < to; i++ {
		end, err := l.Append(t.Context(), payload(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		ends = append(ends, end)
	}
	return ends
}

// readAll reads every synced frame from off and checks they are payloads
// from..to-1 in order.
func readFrom(t *testing.T, l *Log, off int64, from, to int) {
	t.Helper()
	r := l.NewReader(off)
	defer r.Close()
	for i := from; i < to; i++ {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		p, _, err := r.Next(ctx, nil)
		cancel()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(p, payload(i)) {
			t.Fatalf("frame %d = %q, want %q", i, p, payload(i))
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if p, _, err := r.Next(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after frame %d: %q, %v; want no more frames", to-1, p, err)
	}
}

func TestLog_AppendedFramesReadBackInOrderAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, LogOptions{})
	ends := appendAll(t, l, 0, 100)
	readFrom(t, l, 0, 0, 100)
	readFrom(t, l, ends[49], 50, 100)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, LogOptions{})
	defer l.Close()
	if st := l.Stats(); st.End != ends[99] || st.Committed != 0 || st.TornBytes != 0 {
		t.Fatalf("reopened stats %+v, want end %d", st, ends[99])
	}
	readFrom(t, l, 0, 0, 100)
	appendAll(t, l, 100, 110)
	readFrom(t, l, 0, 0, 110)
}

func TestLog_TornTailIsTruncatedAtEveryCutAndAppendsContinue(t *testing.T) {
	src := t.TempDir()
	l := openLog(t, src, LogOptions{})
	ends := appendAll(t, l, 0, 5)
	l.Close()
	seg := filepath.Join(src, segName(0))
	full, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	lastStart := ends[3]
	type damage struct {
		name string
		data []byte
	}
	var cases []damage
	for cut := lastStart; cut < int64(len(full)); cut++ {
		cases = append(cases, damage{fmt.Sprintf("cut-at-%d", cut), full[:cut]})
	}
	flipped := bytes.Clone(full)
	flipped[len(flipped)-3] ^= 0x40
	cases = append(cases,
		damage{"payload-bit-flip", flipped},
		damage{"zeroes-after-tail", append(bytes.Clone(full[:lastStart]), make([]byte, 300)...)},
		damage{"huge-length", append(bytes.Clone(full[:lastStart]), 0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5)},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, segName(0)), c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			l := openLog(t, dir, LogOptions{})
			defer l.Close()
			st := l.Stats()
			if st.End != lastStart || st.TornBytes != int64(len(c.data))-lastStart {
				t.Fatalf("stats %+v, want end %d and %d torn bytes", st, lastStart, int64(len(c.data))-lastStart)
			}
			if fi, _ := os.Stat(filepath.Join(dir, segName(0))); fi.Size() != lastStart {
				t.Fatalf("segment is %d bytes after recovery, want %d", fi.Size(), lastStart)
			}
			end, err := l.Append(t.Context(), payload(4))
			if err != nil || end != ends[4] {
				t.Fatalf("Append after recovery: %d, %v; want %d", end, err, ends[4])
			}
			readFrom(t, l, 0, 0, 5)
		})
	}
}

func TestLog_DamageBeforeTheLastSegmentIsAnError(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, LogOptions{MaxBytes: 4000, SegmentBytes: 1000})
	appendAll(t, l, 0, 60)
	if st := l.Stats(); st.Segments < 2 {
		t.Fatalf("%d segments, want several", st.Segments)
	}
	l.Close()
	seg := filepath.Join(dir, segName(0))
	b, _ := os.ReadFile(seg)
	b[20] ^= 1
	os.WriteFile(seg, b, 0o644)
	if _, err := OpenLog(dir, LogOptions{MaxBytes: 4000, SegmentBytes: 1000}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenLog = %v, want ErrCorrupt", err)
	}
}

func TestLog_SegmentsRotateAndAreDeletedOnceCommitted(t *testing.T) {
	dir := t.TempDir()
	o := LogOptions{MaxBytes: 4000, SegmentBytes: 1000}
	l := openLog(t, dir, o)
	defer func() { l.Close() }()
	ends := appendAll(t, l, 0, 40)
	st := l.Stats()
	if st.Segments < 2 {
		t.Fatalf("%d segments after %d bytes with 1000-byte segments", st.Segments, st.End)
	}
	// Full: appends fail until commits free whole segments.
	n := 40
	for ; ; n++ {
		_, err := l.Append(t.Context(), payload(n))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, end(l))
	}
	if st := l.Stats(); st.Bytes > o.MaxBytes {
		t.Fatalf("log holds %d bytes, over MaxBytes %d", st.Bytes, o.MaxBytes)
	}
	segsBefore := l.Stats().Segments
	if err := l.Commit(ends[n/2]); err != nil {
		t.Fatal(err)
	}
	st = l.Stats()
	if st.Segments >= segsBefore || st.Committed != ends[n/2] {
		t.Fatalf("after commit: %+v (segments before %d)", st, segsBefore)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(files) != st.Segments {
		t.Fatalf("%d segment files, stats say %d", len(files), st.Segments)
	}
	if _, err := l.Append(t.Context(), payload(n)); err != nil {
		t.Fatalf("Append after commit freed space: %v", err)
	}
	// Replay after reopening starts at the committed offset.
	l.Close()
	l = openLog(t, dir, o)
	if got := l.Committed(); got != ends[n/2] {
		t.Fatalf("committed %d after reopen, want %d", got, ends[n/2])
	}
	readFrom(t, l, l.Committed(), n/2+1, n+1)
}

func end(l *Log) int64 { return l.Stats().End }

func TestLog_CrashBetweenCommitAndDeletionDeletesOnOpen(t *testing.T) {
	dir := t.TempDir()
	o := LogOptions{MaxBytes: 4000, SegmentBytes: 1000}
	l := openLog(t, dir, o)
	ends := appendAll(t, l, 0, 40)
	l.Close()
	// As if the process died right after writing the committed offset.
	if err := writeCommitted(dir, ends[30], (*os.File).Sync); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, o)
	defer l.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if first := filepath.Base(files[0]); first == segName(0) {
		t.Fatalf("fully committed segment %s not deleted", first)
	}
	readFrom(t, l, l.Committed(), 31, 40)
}

func TestLog_ConcurrentAppendsShareOneFsync(t *testing.T) {
	dir := t.TempDir()
	gate := make(chan struct{})
	var mu sync.Mutex
	syncs := 0
	o := LogOptions{syncFile: func(f *os.File) error {
		mu.Lock()
		syncs++
		first := syncs == 1
		mu.Unlock()
		if first {
			<-gate // hold the first fsync until every other append is queued
		}
		return f.Sync()
	}}
	l := openLog(t, dir, o)
	defer l.Close()
	const writers = 50
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	wg.Go(func() { _, err := l.Append(t.Context(), payload(0)); errs <- err })
	for {
		mu.Lock()
		s := syncs
		mu.Unlock()
		if s == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i <= writers; i++ {
		wg.Go(func() { _, err := l.Append(t.Context(), payload(i)); errs <- err })
	}
	for {
		l.mu.Lock()
		queued := l.batch.n
		l.mu.Unlock()
		if queued == writers {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := l.Stats()
	if st.Appends != writers+1 || st.Syncs != 2 {
		t.Fatalf("%d appends in %d fsyncs, want %d in 2 (group commit)", st.Appends, st.Syncs, writers+1)
	}
}

func TestLog_FailedFsyncRefusesAppendsUntilReopened(t *testing.T) {
	dir := t.TempDir()
	fail := errors.New("injected EIO")
	o := LogOptions{syncFile: func(f *os.File) error { return fail }}
	l := openLog(t, dir, o)
	if _, err := l.Append(t.Context(), payload(0)); !errors.Is(err, fail) {
		t.Fatalf("Append = %v, want the fsync error", err)
	}
	if _, err := l.Append(t.Context(), payload(1)); !errors.Is(err, fail) {
		t.Fatalf("second Append = %v, want the fsync error", err)
	}
	l.Close()
}

func TestLog_SecondOpenOfADirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, LogOptions{})
	if _, err := OpenLog(dir, LogOptions{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second OpenLog = %v, want ErrLocked", err)
	}
	l.Close()
	if _, err := l.Append(t.Context(), payload(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	l2 := openLog(t, dir, LogOptions{})
	l2.Close()
}

func FuzzScanSegment(f *testing.F) {
	f.Add(appendFrame(appendFrame(nil, []byte("a")), []byte("bc")))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, segName(0))
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		valid, size, err := scanSegment(path)
		if err != nil || valid > size || size != int64(len(b)) {
			t.Fatalf("scan: %d of %d, %v", valid, size, err)
		}
		l, err := OpenLog(dir, LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		r := l.NewReader(0)
		defer r.Close()
		var got int64
		for got < valid {
			_, end, err := r.Next(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			got = end
		}
		if got != valid {
			t.Fatalf("frames end at %d, scan said %d", got, valid)
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(EncodeBatch(nil, nil))
	f.Add([]byte{1, 1, 1, 'k', 0, 2, 'h', 'i'})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := DecodeBatch(b)
		if err != nil {
			return
		}
		again, err := DecodeBatch(EncodeBatch(nil, rs))
		if err != nil || !reflect.DeepEqual(again, rs) {
			t.Fatalf("round trip of %x: %v", b, err)
		}
	})
}
