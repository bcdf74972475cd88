package archive

import (
	"context"
	"runtime"
	"testing"
	"weak"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

// The runtime's events point into the read buffer of their batch
// (event.DecodeShared): the rows a partition buffers, and the partition
// itself, must not keep that buffer alive until the partition's flush.
func TestShard_BufferedRowsDoNotKeepTheirReadBuffer(t *testing.T) {
	ctx := context.Background()
	a, _ := testArchive(t, Config{})
	sp, err := a.OpenShard(ctx, consumers.Shard{ID: testShard})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	batch := func(first int, buf []byte) []consumers.Record {
		var recs []consumers.Record
		for i, data := range [][]byte{
			[]byte(`{"v":1,"id":"e1","type":"impression","ts":"2026-11-22T10:00:00Z","user_id":"u-1","session_id":"s-1","item_id":"a-1","app":"ios","features":{"cat:x":1},"attrs":{"k":"v"}}`),
			[]byte(`{"v":1,"id":"e2","type":"access","ts":"2026-11-22T10:00:01Z","host":"h","method":"GET","uri":"/a","route":"/a","status":200,"cache":"HIT"}`),
		} {
			n := copy(buf[first*1024+i*512:], data) // the records lie in one shared buffer, as GetRecords' do
			r := consumers.Record{Position: consumers.Position{SequenceNumber: seqOf(first + i + 1)}, ShardID: testShard,
				ArrivalTime: epoch, Data: buf[first*1024+i*512 : first*1024+i*512+n]}
			if err := event.DecodeShared(r.Data, &r.Event); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		return recs
	}
	buf := make([]byte, 64<<10)
	freed := weak.Make(&buf[0])
	if _, err := sp.Process(ctx, consumers.Batch{Records: batch(0, buf), Now: epoch}); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Process(ctx, consumers.Batch{Records: batch(2, make([]byte, 64<<10)), Now: epoch}); err != nil {
		t.Fatal(err)
	}
	buf = nil
	runtime.GC()
	runtime.GC()
	if freed.Value() != nil {
		t.Fatal("the buffered partitions keep the first batch's 64 KiB read buffer alive")
	}
	if got := sp.(*shardProc).rows; got != 4 {
		t.Fatalf("%d rows buffered, want 4 (nothing flushed yet)", got)
	}
	runtime.KeepAlive(sp)
}
