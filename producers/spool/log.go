// Package spool is the collector's local write-ahead log: with a spool the
// collector answers 202 once a request's events are fsync'd to disk, and a
// shipper puts them on the stream from there, so events accepted survive a
// crash of the process (SIGKILL, OOM) like the log buffers of mobile SDKs
// that persist events until sent. Log is the segment-file log with group
// commit; Spool adds the shipper and its durable committed offset.
//
// The log is hand-written on the standard library: what it needs — append
// with group commit, a committed offset, segment deletion, truncation of a
// torn tail — is a few hundred lines, while the Go WAL libraries found
// (tidwall/wal, etcd's wal) either fsync per write or carry Raft-specific
// framing and index files, and would still need the shipper around them.
package spool

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Frame layout: a record of the log is
//
//	length  uint32 little endian: bytes of payload, 1 to MaxPayloadBytes
//	crc     uint32 little endian: CRC-32C of the length bytes and the payload
//	payload
//
// A crash can leave the last frames of the last segment partly written (a
// power loss persists pages out of order; a SIGKILL does not tear a write,
// but the check is the same). Open scans the last segment and truncates it
// at the first frame whose length is impossible, that runs past the end of
// the file, or whose CRC does not match. Everything before it was fsync'd
// before it was acknowledged, so no acknowledged frame is lost: all frames
// acknowledged precede every byte written after the last completed fsync.
const (
	frameHeader = 8
	// MaxPayloadBytes bounds one frame's payload.
	MaxPayloadBytes = 64 << 20
)

// Defaults of LogOptions.
const (
	DefaultSegmentBytes = 16 << 20
	DefaultMaxBytes     = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	// ErrFull is returned by Append when the log holds MaxBytes: it frees
	// up as the shipper commits and whole segments are deleted.
	ErrFull = errors.New("spool: full")
	// ErrClosed is returned after Close started.
	ErrClosed = errors.New("spool: closed")
	// ErrCorrupt is returned by OpenLog when a frame other than the last
	// segment's tail is damaged, or the files contradict each other.
	ErrCorrupt = errors.New("spool: corrupt")
	// ErrLocked is returned by OpenLog when another process has the
	// directory open.
	ErrLocked = errors.New("spool: directory in use by another process")
)

// LogOptions configure OpenLog. Zero fields take their defaults.
type LogOptions struct {
	// SegmentBytes is the size at which the log starts a new segment file;
	// a segment is deleted once every frame in it is committed. Capped at a
	// quarter of MaxBytes so that a full log always has sealed segments to
	// free. Default 16 MiB.
	SegmentBytes int64
	// MaxBytes bounds the bytes of the segment files; Append fails with
	// ErrFull beyond. Default 1 GiB.
	MaxBytes int64
	// Logger receives recovery and I/O error logs. Default: discard.
	Logger *slog.Logger

	// syncFile makes written data durable; tests slow it down. Default
	// (*os.File).Sync.
	syncFile func(*os.File) error
}

// LogStats are a log's counters since OpenLog.
type LogStats struct {
	Appends   int64 // frames appended (acknowledged by a sync)
	Syncs     int64 // fsyncs of segment data: appends / syncs is the group commit factor
	Bytes     int64 // bytes in the segment files, including frames queued for writing
	Segments  int   // segment files
	Committed int64 // committed offset
	End       int64 // offset after the last synced frame
	TornBytes int64 // bytes truncated from the last segment's tail by OpenLog
}

// Log is a segment-file write-ahead log of byte frames. Offsets are
// logical byte positions across segments; a segment file is named after
// the offset of its first byte. Append is safe for concurrent use:
// concurrent appends share one write and one fsync (group commit).
type Log struct {
	dir  string
	opts LogOptions
	log  *slog.Logger
	lock *os.File

	mu        sync.Mutex
	cond      *sync.Cond // signals the syncer: queue not empty, or closed
	segs      []int64    // bases of the segment files, ascending
	end       int64      // offset after the last queued frame
	synced    int64      // offset after the last synced frame
	committed int64
	queue     []byte // frames waiting for the syncer
	spare     []byte
	batch     *syncBatch    // the appends in queue
	grew      chan struct{} // closed (and replaced) when synced advances
	failed    error         // a write or sync failed: the log takes no more
	closed    bool
	appends   int64
	syncs     int64
	torn      int64

	// Owned by the syncer goroutine (and OpenLog, before it starts).
	f          *os.File // the last segment, for appending
	activeBase int64
	written    int64

	commitMu sync.Mutex // serialises Commit
	syncDone chan struct{}
}

type syncBatch struct {
	done chan struct{}
	err  error
	n    int64
}

func segName(base int64) string { return fmt.Sprintf("%020d.seg", base) }

// OpenLog opens (creating if needed) the log in dir, recovers it — deletes
// fully committed segments, truncates a torn tail — and starts its syncer.
// Only one process may have a directory open (flock); Close releases it,
// and so does the death of the process.
func OpenLog(dir string, o LogOptions) (*Log, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	o.SegmentBytes = max(1, min(o.SegmentBytes, o.MaxBytes/4))
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.syncFile == nil {
		o.syncFile = (*os.File).Sync
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("open spool %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("open spool: lock %s: %w", dir, err)
	}
	l := &Log{dir: dir, opts: o, log: o.Logger.With("spool", dir), lock: lock, grew: make(chan struct{}), syncDone: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	l.batch = &syncBatch{done: make(chan struct{})}
	if err := l.recover(); err != nil {
		if l.f != nil {
			l.f.Close()
		}
		lock.Close()
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	go l.syncLoop()
	return l, nil
}

// recover reads the committed offset and the segments and makes them
// consistent.
func (l *Log) recover() error {
	committed, haveCommitted, err := readCommitted(l.dir)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return err
	}
	var segs []int64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok {
			continue
		}
		base, err := strconv.ParseInt(name, 10, 64)
		if err != nil || base < 0 {
			return fmt.Errorf("%w: unexpected file %s", ErrCorrupt, e.Name())
		}
		segs = append(segs, base)
	}
	slices.Sort(segs)
	if len(segs) == 0 {
		base := committed
		f, err := os.OpenFile(filepath.Join(l.dir, segName(base)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		if err := syncDir(l.dir); err != nil {
			f.Close()
			return err
		}
		l.f, l.segs, l.activeBase = f, []int64{base}, base
		l.end, l.synced, l.written, l.committed = base, base, base, base
		return nil
	}
	// Segments wholly below the committed offset were shipped; a crash
	// came between the commit and their deletion.
	for len(segs) > 1 && segs[1] <= committed {
		if err := os.Remove(filepath.Join(l.dir, segName(segs[0]))); err != nil {
			return err
		}
		segs = segs[1:]
	}
	if !haveCommitted {
		committed = segs[0]
	}
	if committed < segs[0] {
		return fmt.Errorf("%w: committed offset %d precedes the first segment %s", ErrCorrupt, committed, segName(segs[0]))
	}
	var end int64
	for i, base := range segs {
		path := filepath.Join(l.dir, segName(base))
		valid, size, err := scanSegment(path)
		if err != nil {
			return err
		}
		last := i == len(segs)-1
		if !last {
			if valid != size || base+size != segs[i+1] {
				return fmt.Errorf("%w: segment %s: %d valid bytes of %d, next segment at offset %d", ErrCorrupt, segName(base), valid, size, segs[i+1])
			}
			continue
		}
		if valid < size {
			if err := os.Truncate(path, valid); err != nil {
				return err
			}
			l.torn = size - valid
			l.log.Warn("spool: truncated a torn tail left by a crash", "segment", segName(base), "valid_bytes", valid, "truncated_bytes", size-valid)
		}
		end = base + valid
	}
	if committed > end {
		return fmt.Errorf("%w: committed offset %d beyond the end of the log %d", ErrCorrupt, committed, end)
	}
	last := segs[len(segs)-1]
	f, err := os.OpenFile(filepath.Join(l.dir, segName(last)), os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if l.torn > 0 {
		if err := l.opts.syncFile(f); err != nil {
			f.Close()
			return err
		}
	}
	l.f, l.segs, l.activeBase = f, segs, last
	l.end, l.synced, l.written, l.committed = end, end, end, committed
	return nil
}

// scanSegment returns how many leading bytes of the file are whole, valid
// frames, and the file's size.
func scanSegment(path string) (valid, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size = st.Size()
	br := bufio.NewReaderSize(f, 1<<16)
	var hdr [frameHeader]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return valid, size, nil // EOF or a partial header
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:4]))
		if n == 0 || n > MaxPayloadBytes || valid+frameHeader+n > size {
			return valid, size, nil
		}
		buf = slices.Grow(buf[:0], int(n))[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return valid, size, nil
		}
		if frameCRC(hdr[:4], buf) != binary.LittleEndian.Uint32(hdr[4:]) {
			return valid, size, nil
		}
		valid += frameHeader + n
	}
}

func frameCRC(length, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(length, castagnoli), castagnoli, payload)
}

// appendFrame appends payload's frame to b.
func appendFrame(b, payload []byte) []byte {
	var hdr [frameHeader]byte
	binary.LittleEndian.PutUint32(hdr[:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(hdr[4:], frameCRC(hdr[:4], payload))
	return append(append(b, hdr[:]...), payload...)
}

// Append writes payload as one frame and returns, once it is fsync'd, the
// offset after it. Concurrent appends share a write and an fsync. It fails
// with ErrFull when the log holds MaxBytes, ErrClosed after Close, and
// with the I/O error once a write or fsync has failed (the log then takes
// nothing more: after a failed fsync the state of the file is unknown;
// reopening recovers). When ctx ends first, ctx's error is returned but
// the frame may still be written, and shipped.
func (l *Log) Append(ctx context.Context, payload []byte) (int64, error) {
	if len(payload) == 0 || len(payload) > MaxPayloadBytes {
		return 0, fmt.Errorf("spool append: payload of %d bytes, must be 1 to %d", len(payload), MaxPayloadBytes)
	}
	n := int64(frameHeader + len(payload))
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return 0, ErrClosed
	case l.failed != nil:
		err := l.failed
		l.mu.Unlock()
		return 0, err
	case l.end-l.segs[0]+n > l.opts.MaxBytes:
		l.mu.Unlock()
		return 0, ErrFull
	}
	l.queue = appendFrame(l.queue, payload)
	l.end += n
	end := l.end
	b := l.batch
	b.n++
	l.mu.Unlock()
	l.cond.Signal()
	select {
	case <-b.done:
		if b.err != nil {
			return 0, b.err
		}
		return end, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// syncLoop writes and fsyncs queued frames, one batch at a time: appends
// arriving during an fsync wait for the next, and share it.
func (l *Log) syncLoop() {
	defer close(l.syncDone)
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closed {
			l.cond.Wait()
		}
		if len(l.queue) == 0 {
			l.mu.Unlock()
			return
		}
		buf, b, failed := l.queue, l.batch, l.failed
		l.queue, l.batch = l.spare[:0], &syncBatch{done: make(chan struct{})}
		l.mu.Unlock()

		err := failed
		if err == nil && l.written-l.activeBase >= l.opts.SegmentBytes {
			err = l.rotate()
		}
		if err == nil {
			if _, err = l.f.Write(buf); err == nil {
				err = l.opts.syncFile(l.f)
			}
			if err != nil {
				err = fmt.Errorf("spool: write segment %s: %w", segName(l.activeBase), err)
				l.log.Error("spool write failed; refusing appends until restarted", "error", err)
			}
		}
		l.mu.Lock()
		if err != nil {
			l.failed = err
		} else {
			l.written += int64(len(buf))
			l.synced = l.written
			l.syncs++
			l.appends += b.n
			close(l.grew)
			l.grew = make(chan struct{})
		}
		b.err = err
		close(b.done)
		if cap(buf) <= 4<<20 {
			l.spare = buf
		}
		l.mu.Unlock()
	}
}

// rotate starts a new segment at the current end. The old one was fsync'd
// after its last write.
func (l *Log) rotate() error {
	base := l.written
	f, err := os.OpenFile(filepath.Join(l.dir, segName(base)), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("spool: new segment: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		f.Close()
		return fmt.Errorf("spool: new segment: %w", err)
	}
	old := l.f
	l.mu.Lock()
	l.f, l.activeBase = f, base
	l.segs = append(l.segs, base)
	l.mu.Unlock()
	return old.Close()
}

// Committed returns the committed offset: frames before it were shipped.
func (l *Log) Committed() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.committed
}

// Commit durably records that every frame before off was shipped, and
// deletes the segments that holds wholly. off must be a frame boundary
// returned by Append or a Reader; a lower offset than the committed one is
// ignored.
func (l *Log) Commit(off int64) error {
	l.commitMu.Lock()
	defer l.commitMu.Unlock()
	l.mu.Lock()
	if off <= l.committed {
		l.mu.Unlock()
		return nil
	}
	if off > l.synced {
		l.mu.Unlock()
		return fmt.Errorf("spool commit: offset %d beyond the synced end %d", off, l.synced)
	}
	l.mu.Unlock()
	if err := writeCommitted(l.dir, off, l.opts.syncFile); err != nil {
		return fmt.Errorf("spool commit: %w", err)
	}
	l.mu.Lock()
	l.committed = off
	var drop []int64
	for len(l.segs) > 1 && l.segs[1] <= off {
		drop = append(drop, l.segs[0])
		l.segs = l.segs[1:]
	}
	l.mu.Unlock()
	for _, base := range drop {
		if err := os.Remove(filepath.Join(l.dir, segName(base))); err != nil {
			return fmt.Errorf("spool commit: %w", err)
		}
	}
	if len(drop) > 0 {
		return syncDir(l.dir)
	}
	return nil
}

// Stats returns the log's counters.
func (l *Log) Stats() LogStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LogStats{
		Appends: l.appends, Syncs: l.syncs, Bytes: l.end - l.segs[0], Segments: len(l.segs),
		Committed: l.committed, End: l.synced, TornBytes: l.torn,
	}
}

// Close waits for queued appends to be written, then closes the files and
// releases the directory. Appends after Close fail with ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.syncDone
		return nil
	}
	l.closed = true
	close(l.grew) // wake readers
	l.grew = make(chan struct{})
	l.mu.Unlock()
	l.cond.Broadcast()
	<-l.syncDone
	err := l.f.Close()
	return errors.Join(err, l.lock.Close())
}

// Reader reads frames in order from an offset. It sees a frame once it is
// synced. One goroutine may use a Reader.
type Reader struct {
	l    *Log
	pos  int64
	base int64 // segment of f
	f    *os.File
	hdr  [frameHeader]byte
}

// NewReader returns a Reader positioned at off, a frame boundary at or
// after the committed offset (normally Committed()).
func (l *Log) NewReader(off int64) *Reader { return &Reader{l: l, pos: off, base: -1} }

// Next returns the next frame's payload and the offset after it, waiting
// until one is synced, ctx is done or the log is closed (ErrClosed). The
// payload is valid until the next call.
func (r *Reader) Next(ctx context.Context, buf []byte) (payload []byte, end int64, err error) {
	for {
		r.l.mu.Lock()
		synced, grew, closed := r.l.synced, r.l.grew, r.l.closed
		i, _ := slices.BinarySearch(r.l.segs, r.pos+1)
		base := int64(-1)
		if i > 0 {
			base = r.l.segs[i-1]
		}
		r.l.mu.Unlock()
		if r.pos < synced && base >= 0 {
			return r.read(base, synced, buf)
		}
		if closed {
			return nil, 0, ErrClosed
		}
		select {
		case <-grew:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}

func (r *Reader) read(base, synced int64, buf []byte) ([]byte, int64, error) {
	if r.base != base {
		if r.f != nil {
			r.f.Close()
		}
		f, err := os.Open(filepath.Join(r.l.dir, segName(base)))
		if err != nil {
			r.f, r.base = nil, -1
			return nil, 0, fmt.Errorf("spool read: %w", err)
		}
		r.f, r.base = f, base
	}
	at := r.pos - base
	if _, err := r.f.ReadAt(r.hdr[:], at); err != nil {
		return nil, 0, fmt.Errorf("spool read at offset %d: %w", r.pos, err)
	}
	n := int64(binary.LittleEndian.Uint32(r.hdr[:4]))
	if n == 0 || n > MaxPayloadBytes || r.pos+frameHeader+n > synced {
		return nil, 0, fmt.Errorf("%w: frame at offset %d has length %d", ErrCorrupt, r.pos, n)
	}
	buf = slices.Grow(buf[:0], int(n))[:n]
	if _, err := r.f.ReadAt(buf, at+frameHeader); err != nil {
		return nil, 0, fmt.Errorf("spool read at offset %d: %w", r.pos, err)
	}
	if frameCRC(r.hdr[:4], buf) != binary.LittleEndian.Uint32(r.hdr[4:]) {
		return nil, 0, fmt.Errorf("%w: frame at offset %d fails its CRC", ErrCorrupt, r.pos)
	}
	r.pos += frameHeader + n
	return buf, r.pos, nil
}

// Close closes the Reader's file.
func (r *Reader) Close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// The committed offset lives in its own small file, replaced atomically
// (write, fsync, rename, fsync the directory), so it is never torn.
const committedFile = "committed"

func readCommitted(dir string) (off int64, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, committedFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
		return 0, false, fmt.Errorf("%w: committed offset file", ErrCorrupt)
	}
	return int64(binary.LittleEndian.Uint64(b[:8])), true, nil
}

func writeCommitted(dir string, off int64, syncFile func(*os.File) error) error {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(off))
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	tmp := filepath.Join(dir, committedFile+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b[:]); err != nil {
		f.Close()
		return err
	}
	if err := syncFile(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, committedFile)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
