package archive

import (
	"bytes"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	kzstd "github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

// wantSchema is the archive's file schema: a contract for Athena/Glue
// tables, Spark and DuckDB. Changing it needs a migration note.
const wantSchema = `message Row {
	required int32 v (INT(32,true));
	optional binary id (STRING);
	required binary type (STRING);
	required int64 ts (TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS));
	optional binary user_id (STRING);
	optional binary session_id (STRING);
	optional binary item_id (STRING);
	optional binary app (STRING);
	optional binary placement (STRING);
	optional int64 position (INT(64,true));
	optional group features (MAP) {
		repeated group key_value {
			required binary key (STRING);
			required double value;
		}
	}
	optional group attrs (MAP) {
		repeated group key_value {
			required binary key (STRING);
			required binary value (STRING);
		}
	}
	optional binary host (STRING);
	optional binary method (STRING);
	optional binary uri (STRING);
	optional binary route (STRING);
	optional int32 status (INT(32,true));
	optional binary cache (STRING);
	optional double request_time_ms;
	optional int64 bytes (INT(64,true));
	optional binary user_agent (STRING);
	optional int64 received_at (TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS));
	optional binary extra (STRING);
	required binary shard_id (STRING);
	required binary sequence_number (STRING);
	required int64 sub_sequence_number (INT(64,true));
	optional int64 arrival_ts (TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS));
}`

func encodeForTest(t *testing.T, cfg Config, rows []Row) *parquet.File {
	t.Helper()
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := newEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := enc.encodeBytes(rows, 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestEncode_SchemaHasMillisUTCTimestampsMapsAndStrings(t *testing.T) {
	f := encodeForTest(t, Config{}, []Row{{Type: "click", TS: 1}})
	if got := f.Schema().String(); got != wantSchema {
		t.Errorf("schema:\n%s\nwant:\n%s", got, wantSchema)
	}
	// Check the raw footer too: legacy readers (Hive, older Spark) go by the
	// converted type, newer ones by the logical type.
	for _, el := range f.Metadata().Schema {
		switch el.Name {
		case "ts", "received_at", "arrival_ts":
			ts, ok := el.LogicalType.Value.(*format.TimestampType)
			if ok {
				_, ok = ts.Unit.Value.(*format.MilliSeconds)
			}
			if !ok || !ts.IsAdjustedToUTC {
				t.Errorf("%s logical type = %v, want TIMESTAMP(MILLIS, UTC)", el.Name, &el.LogicalType)
			}
			if el.ConvertedType.V != deprecated.TimestampMillis {
				t.Errorf("%s converted type = %v, want TIMESTAMP_MILLIS", el.Name, el.ConvertedType.V)
			}
		}
	}
}

func TestEncode_CompressionIsZstdByDefaultAndSnappySelectable(t *testing.T) {
	for _, tt := range []struct {
		name string
		want format.CompressionCodec
	}{{"", format.Zstd}, {"zstd", format.Zstd}, {"snappy", format.Snappy}, {"gzip", format.Gzip}, {"none", format.Uncompressed}} {
		f := encodeForTest(t, Config{Compression: tt.name}, []Row{{Type: "click", TS: 1}})
		for _, c := range f.Metadata().RowGroups[0].Columns {
			if c.MetaData.Codec != tt.want {
				t.Errorf("Compression %q: column %v codec %v, want %v", tt.name, c.MetaData.PathInSchema, c.MetaData.Codec, tt.want)
			}
		}
	}
	if _, err := New(nopS3{}, Config{Compression: "lzo"}); err == nil || !strings.Contains(err.Error(), "lzo") {
		t.Errorf("New with an unknown codec: err = %v, want one naming it", err)
	}
}

func TestEncode_RoundTripsEveryFieldAndKeepsAbsentOnesNull(t *testing.T) {
	full, err := event.Decode([]byte(`{"v":1,"id":"01JD3","type":"click","ts":"2026-11-22T10:00:00.123Z",
		"user_id":"u-42","session_id":"s-9","item_id":"a-987","app":"ios","placement":"home_feed","position":0,
		"features":{"cat:sports":1,"tag:soccer":0.5},"attrs":{"ab_bucket":"B"},
		"host":"api-1","method":"GET","uri":"/api/items/123?x=1","route":"/api/items/:id","status":200,
		"cache":"HIT","request_time_ms":0,"bytes":5120,"user_agent":"ua","received_at":1763805600999,
		"zeta":[1,2],"alpha":{"b":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	bare, err := event.Decode([]byte(`{"type":"access","ts":1763805600123}`))
	if err != nil {
		t.Fatal(err)
	}
	arrival := time.Date(2026, 11, 22, 10, 0, 1, 500e6, time.UTC)
	recs := []consumers.Record{
		{Position: consumers.Position{SequenceNumber: seqOf(1), SubSequence: 2}, ShardID: testShard, ArrivalTime: arrival, Event: full},
		{Position: consumers.Position{SequenceNumber: seqOf(2)}, ShardID: testShard, Event: bare},
	}
	rows := []Row{RowOf(&recs[0]), RowOf(&recs[1])}
	if rows[0].Extra != `{"alpha":{"b":true},"zeta":[1,2]}` {
		t.Errorf("extra = %s, want unknown fields as a sorted JSON object", rows[0].Extra)
	}
	if rows[0].Position == nil || *rows[0].Position != 0 || rows[0].RequestTimeMS == nil || *rows[0].RequestTimeMS != 0 {
		t.Error("explicit zero position/request_time_ms lost")
	}
	f := encodeForTest(t, Config{}, rows)
	got := readFileRows(t, f)
	for i := range rows {
		if !rowsEqual(got[i], rows[i]) {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, got[i], rows[i])
		}
	}
	// Absent fields must be NULL in the file, not "" or 0: read the raw
	// values of the bare row.
	r := parquet.NewReader(f)
	defer r.Close()
	raw := make([]parquet.Row, 2)
	if n, _ := r.ReadRows(raw); n != 2 {
		t.Fatalf("read %d rows", n)
	}
	byName := map[string]parquet.Value{}
	cols := f.Schema().Columns()
	for _, v := range raw[1] {
		byName[strings.Join(cols[v.Column()], ".")] = v
	}
	for _, name := range []string{"id", "user_id", "position", "status", "request_time_ms", "bytes", "received_at", "extra", "arrival_ts", "features.key_value.key", "attrs.key_value.value"} {
		if v, ok := byName[name]; !ok || !v.IsNull() {
			t.Errorf("absent %s = %v, want NULL", name, v)
		}
	}
	if v := byName["ts"]; v.Int64() != 1763805600123 {
		t.Errorf("ts = %v, want 1763805600123 ms", v)
	}
	full0 := map[string]parquet.Value{}
	for _, v := range raw[0] {
		full0[strings.Join(cols[v.Column()], ".")] = v
	}
	if v := full0["arrival_ts"]; v.Int64() != arrival.UnixMilli() {
		t.Errorf("arrival_ts = %v, want %d", v, arrival.UnixMilli())
	}
	if v := full0["sub_sequence_number"]; v.Int64() != 2 {
		t.Errorf("sub_sequence_number = %v", v)
	}
}

func readFileRows(t *testing.T, f *parquet.File) []Row {
	t.Helper()
	r := parquet.NewGenericReader[Row](f)
	defer r.Close()
	rows := make([]Row, f.NumRows())
	n, err := r.Read(rows)
	if n != len(rows) {
		t.Fatalf("read %d of %d rows: %v", n, len(rows), err)
	}
	return rows
}

// A file's buffer is sized from the ratio of the last big file, so files
// of like traffic fit their buffer without growing (a grown buffer is
// copied, and held twice while it is); small files and outliers do not
// move the ratio out of bounds.
func TestEncode_SizesTheNextFileFromTheLastOne(t *testing.T) {
	cfg, _ := Config{}.withDefaults()
	enc, err := newEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := enc.fileSize(8<<20), (8<<20)/8*9/8+4096; got != want {
		t.Fatalf("first guess for 8 MiB of events: %d bytes, want %d (an eighth, plus an eighth of that)", got, want)
	}
	events := loadgenEvents(t, 20_000)
	raw := int64(rawBytes(events))
	out, err := enc.encodeBytes(rowsOf(recordsOf(testShard, events, 1)), 0)
	if err != nil {
		t.Fatal(err)
	}
	enc.observe(raw, len(out))
	if hint := enc.fileSize(raw); hint < len(out) || hint > len(out)*5/4+4096 {
		t.Fatalf("after a %d-byte file of %d bytes of events, the guess for the same is %d", len(out), raw, hint)
	}
	enc.observe(1000, 900_000)
	if hint := enc.fileSize(raw); hint < len(out) || hint > len(out)*5/4+4096 {
		t.Fatalf("a small file moved the guess to %d", hint)
	}
	enc.observe(1<<20, 10<<20)
	if got, want := enc.fileSize(8<<20), (8<<20)/2*9/8+4096; got != want {
		t.Fatalf("after a file larger than its events, the guess for 8 MiB is %d, want %d (at most half)", got, want)
	}
}

// With zstd, the pages of the id column and of fastCols are compressed at
// zstd's fastest level, the sequence numbers' as Huffman-coded literals,
// and every other column's at the default; the files say ZSTD for all.
func TestEncode_IDsAreCompressedAtTheFastestZstdLevel(t *testing.T) {
	cfg, _ := Config{}.withDefaults()
	enc, err := newEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, leaf := range enc.layout.leaves {
		want := kzstd.SpeedDefault
		switch {
		case i == colID || slices.Contains(fastCols, i):
			want = kzstd.SpeedFastest
		case i == colSequenceNumber:
			if l, ok := leaf.codec.(*literalsCodec); !ok || l.fallback.level != kzstd.SpeedFastest {
				t.Fatalf("column %s: codec %v, want literals with zstd fastest", pqColumnNames[i], leaf.codec)
			}
			continue
		}
		if z, ok := leaf.codec.(*zstdCodec); !ok || z.level != want {
			t.Fatalf("column %s: codec %v, want zstd at %v", pqColumnNames[i], leaf.codec, want)
		}
	}
	events := loadgenEvents(t, 2000)
	out, err := enc.encodeBytes(rowsOf(recordsOf(testShard, events, 1)), 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(out), int64(len(out)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range f.Metadata().RowGroups[0].Columns {
		if c.MetaData.Codec != format.Zstd {
			t.Fatalf("column %v: codec %v", c.MetaData.PathInSchema, c.MetaData.Codec)
		}
	}
}

// BenchmarkZstdCodec_EncoderMemory reports the heap a page codec's encoder
// holds once it has compressed a page (its tables and history), per level:
// what each file being encoded holds per codec.
func BenchmarkZstdCodec_EncoderMemory(b *testing.B) {
	page := make([]byte, DefaultPageBytes)
	for i := range page {
		page[i] = byte(i * 7 % 251)
	}
	for _, lvl := range []kzstd.EncoderLevel{kzstd.SpeedFastest, kzstd.SpeedDefault} {
		b.Run(lvl.String(), func(b *testing.B) {
			const n = 8
			var perEncoder float64
			for b.Loop() {
				c := newZstdCodec(lvl, DefaultPageBytes)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				encoders := make([]*kzstd.Encoder, 0, n)
				for range n {
					if _, err := c.Encode(nil, page); err != nil {
						b.Fatal(err)
					}
					// Taken out of the pool, so the next Encode makes another.
					e, _ := c.encoders.Get()
					encoders = append(encoders, e)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perEncoder = float64(after.HeapAlloc-before.HeapAlloc) / n
				runtime.KeepAlive(encoders)
			}
			b.ReportMetric(perEncoder/1e6, "MB/encoder")
		})
	}
}
