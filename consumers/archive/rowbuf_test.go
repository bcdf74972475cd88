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

// TestPartBuf_RowsAreReadOnceAndDroppedAsRead: packed hands every row in
// order, drops each compressed block once it is decompressed (so a flush
// frees a partition's rows while its file is encoded), and refuses a
// second read instead of writing an empty file.
func TestPartBuf_RowsAreReadOnceAndDroppedAsRead(t *testing.T) {
	var pb partBuf
	var enc []byte
	var want [][]byte
	for i := range 5000 {
		row := make([]byte, 40+i%200)
		binary.LittleEndian.PutUint64(row, uint64(i))
		want = append(want, row)
		pb.keep(row, &enc)
	}
	if len(pb.blocks) < 3 {
		t.Fatalf("%d blocks: the test needs several", len(pb.blocks))
	}
	i := 0
	err := pb.packed(func(b []byte) error {
		if !bytes.Equal(b, want[i]) {
			t.Fatalf("row %d: %d bytes, first %d; want %d bytes", i, len(b), binary.LittleEndian.Uint64(b), len(want[i]))
		}
		// Every block before the one being read is gone already.
		for k, blk := range pb.blocks {
			if blk != nil && k+1 < len(pb.blocks) && pb.blocks[k+1] == nil {
				t.Fatalf("row %d: block %d kept after block %d was read", i, k, k+1)
			}
		}
		i++
		return nil
	})
	if err != nil || i != len(want) {
		t.Fatalf("packed: %v after %d of %d rows", err, i, len(want))
	}
	for k, blk := range pb.blocks {
		if blk != nil {
			t.Fatalf("block %d of %d kept after the rows were read", k, len(pb.blocks))
		}
	}
	if err := pb.packed(func([]byte) error { return nil }); !errors.Is(err, errDrained) {
		t.Fatalf("second read: %v, want errDrained", err)
	}
}
