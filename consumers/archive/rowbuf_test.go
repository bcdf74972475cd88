package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/clickstream-go/clickstream/event"
)

// TestBufferedRow_RoundTrip: a row read back from its buffered form is the
// row RowOf made, for every kind of event the generator makes (unknown
// fields, empty and absent maps, optional numbers present and absent).
func TestBufferedRow_RoundTrip(t *testing.T) {
	extra := [][]byte{
		[]byte(`{"type":"click","ts":1,"user_id":"u","features":{},"attrs":{}}`),
		[]byte(`{"type":"access","ts":-5,"position":0,"bytes":0,"request_time_ms":0,"status":599,"route":"/é/ü"}`),
		[]byte(`{"type":"x","ts":"1970-01-01T00:00:00Z","user_id":"` + string(make([]byte, 200)) + `"}`),
	}
	recs := recordsOf(testShard, append(genEvents(3000, 5), extra...), 5)
	var buf []byte
	var got Row
	var sc rowScratch
	n := 0
	for i := range recs {
		r := &recs[i]
		if r.Err != nil {
			continue
		}
		want := RowOf(r)
		buf = appendRow(buf[:0], &want)
		if err := readRow(buf, &got, &sc); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		got.ShardID = want.ShardID
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("record %d (%s):\n got %+v\nwant %+v", i, r.Data, got, want)
		}
		n++
	}
	if n < 2500 {
		t.Fatalf("only %d good records compared", n)
	}
}

// TestBufferedRow_Corrupt: a cut or damaged buffered row is an error, never
// a panic or a wrong row.
func TestBufferedRow_Corrupt(t *testing.T) {
	ev, err := event.Decode([]byte(`{"type":"click","ts":1,"user_id":"u","position":3,"features":{"a":1},"attrs":{"b":"c"}}`))
	if err != nil {
		t.Fatal(err)
	}
	row := Row{Type: ev.Type, TS: ev.TS.UnixMilli(), UserID: ev.UserID, Features: ev.Features, Attrs: ev.Attrs}
	b := appendRow(nil, &row)
	var got Row
	var sc rowScratch
	for cut := range len(b) {
		if err := readRow(b[:cut], &got, &sc); err == nil {
			t.Errorf("row cut to %d of %d bytes read without error", cut, len(b))
		}
	}
	if err := readRow(append(b, 0), &got, &sc); err == nil {
		t.Error("row with a trailing byte read without error")
	}
	// A huge map count must not loop or allocate.
	huge := make([]byte, 4+14) // flags, ts, received_at, status, 14 empty strings
	huge = binary.AppendUvarint(huge, 1<<62)
	if err := readRow(huge, &got, &sc); err == nil {
		t.Error("row with a huge feature count read without error")
	}
}

// TestPartBuf_RowsAreReadOnceAndDroppedAsRead: rows hands every buffered
// row in order, drops each compressed block once it is decompressed (so a
// flush frees a partition's rows while its file is encoded), and refuses a
// second read instead of writing an empty file.
func TestPartBuf_RowsAreReadOnceAndDroppedAsRead(t *testing.T) {
	want := append(edgeRows(3_000), rowsOf(recordsOf(testShard, benchEvents(3_000), 3))...)
	var pb partBuf
	var enc, b []byte
	for i := range want {
		b = appendRow(b[:0], &want[i])
		pb.keep(b, &enc)
	}
	if len(pb.blocks) < 3 {
		t.Fatalf("%d blocks: the test needs several", len(pb.blocks))
	}
	src, release := pb.rows(testShard)
	defer release()
	var gotB, wantB []byte
	for i := 0; i < len(want); {
		rows, err := src(i, min(writeChunk, len(want)-i))
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		for _, r := range rows {
			if r.ShardID != testShard {
				t.Fatalf("row %d: shard %q", i, r.ShardID)
			}
			gotB, wantB = appendRow(gotB[:0], &r), appendRow(wantB[:0], &want[i])
			if !bytes.Equal(gotB, wantB) {
				t.Fatalf("row %d read back differs", i)
			}
			i++
		}
		// Every block before the one being read is gone already.
		for k, blk := range pb.blocks {
			if blk != nil && k+1 < len(pb.blocks) && pb.blocks[k+1] == nil {
				t.Fatalf("row %d: block %d kept after block %d was read", i, k, k+1)
			}
		}
	}
	for k, blk := range pb.blocks {
		if blk != nil {
			t.Fatalf("block %d of %d kept after the rows were read", k, len(pb.blocks))
		}
	}
	again, release2 := pb.rows(testShard)
	defer release2()
	if _, err := again(0, 1); !errors.Is(err, errDrained) {
		t.Fatalf("second read: %v, want errDrained", err)
	}
}
