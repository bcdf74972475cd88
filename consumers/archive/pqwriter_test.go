package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/clickstream-go/clickstream/event"
)

// genericFile is the reference: parquet-go's GenericWriter over the same
// rows with the encoder's options.
func genericFile(t *testing.T, e *encoder, rows []Row) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := e.encodeGeneric(&buf, len(rows), sliceSource(rows)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openBytes(t *testing.T, b []byte) *parquet.File {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// readRows reads a file back with parquet-go's reader.
func readRows(t *testing.T, b []byte) []Row {
	t.Helper()
	r := parquet.NewGenericReader[Row](bytes.NewReader(b))
	defer r.Close()
	out := make([]Row, r.NumRows())
	n, err := r.Read(out)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return out[:n]
}

// edgeRows are rows whose every optional field is null in turn, maps nil,
// empty and of several entries, and strings empty, long and shared.
func edgeRows(n int) []Row {
	rows := make([]Row, n)
	for i := range rows {
		r := &rows[i]
		r.V = 1
		r.Type = []string{"click", "impression", "access"}[i%3]
		r.TS = int64(1_700_000_000_000 + i*7 - (i%5)*1000)
		r.ShardID = testShard
		r.SequenceNumber = fmt.Sprintf("4959033827149025660855969253836157109592157598%010d", i)
		r.SubSequenceNumber = int64(i % 3)
		if i%4 != 0 {
			r.ID = fmt.Sprintf("id-%d", i)
			r.UserID = fmt.Sprintf("u-%d", i%97)
			r.ArrivalTS = r.TS + 5
		}
		if i%3 == 0 {
			r.SessionID = strings.Repeat("s", i%40)
			r.ItemID = fmt.Sprintf("item-%d", i%13)
			r.App, r.Placement = "ios", "home"
			p := int64(i % 10)
			r.Position = &p
		}
		switch i % 5 {
		case 0:
			r.Features = map[string]float64{"b": float64(i), "a": -1.5, "c": 0}
		case 1:
			r.Features = map[string]float64{}
		case 2:
			r.Features = map[string]float64{fmt.Sprintf("k%d", i%50): 2}
		}
		switch i % 7 {
		case 0:
			r.Attrs = map[string]string{"ab": "B", "country": "NZ"}
		case 3:
			r.Attrs = map[string]string{"long": strings.Repeat("x", 30+i%17)}
		case 5:
			r.Attrs = map[string]string{"": "", "ab": ""} // empty strings are values too
		}
		if i%2 == 1 {
			r.Host, r.Method, r.Route, r.Cache = "api.example.com", "GET", "/items/:id", []string{"HIT", "MISS", "EXPIRED"}[i%3]
			r.URI = fmt.Sprintf("/items/%d?q=%s", i, strings.Repeat("é", i%9))
			r.Status = int32(200 + i%3*100)
			rt := float64(i%1000) / 7
			r.RequestTimeMS = &rt
			b := int64(i * 31)
			r.Bytes = &b
			r.UserAgent = fmt.Sprintf("agent/%d", i%23)
		}
		if i%6 == 0 {
			r.ReceivedAt = r.TS + 100
			r.Extra = fmt.Sprintf(`{"k":%d}`, i)
		}
	}
	return rows
}

// requiredOnly clears every optional field of rows.
func requiredOnly(rows []Row) []Row {
	for i, r := range rows {
		rows[i] = Row{V: r.V, Type: r.Type, TS: r.TS, ShardID: r.ShardID, SequenceNumber: r.SequenceNumber,
			SubSequenceNumber: r.SubSequenceNumber}
	}
	return rows
}

// TestPQWriterMatchesParquetGo writes the same rows with the archive's
// writer and with parquet-go's, and requires the same file as far as a
// reader can tell: the rows read back, the schema and footer fields, and
// each column chunk's values, nulls, min/max and encodings.
func TestPQWriterMatchesParquetGo(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		rows []Row
	}{
		{"benchmark corpus", Config{}, rowsOf(recordsOf(testShard, benchEvents(20_000), 1))},
		{"edge cases", Config{}, edgeRows(5_000)},
		// Small pages and row groups: many pages, page indexes of several
		// entries, and row groups cut mid-chunk of input.
		{"small pages and row groups", Config{PageBytes: 4 << 10, RowGroupRows: 1_700}, edgeRows(5_000)},
		{"snappy", Config{Compression: CompressionSnappy, RowGroupRows: 3_000}, rowsOf(recordsOf(testShard, benchEvents(5_000), 2))},
		{"uncompressed", Config{Compression: CompressionNone}, edgeRows(300)},
		{"one row", Config{}, edgeRows(1)},
		// Every optional column null in the whole file, dictionary-encoded
		// ones included: their pages hold levels only.
		{"every optional field null", Config{}, requiredOnly(edgeRows(500))},
		{"no rows", Config{}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.cfg.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			enc, err := newEncoder(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if enc.layout == nil {
				t.Fatal("the encoder does not use the archive's writer")
			}
			got, err := enc.encodeBytes(tc.rows, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			want := genericFile(t, enc, tc.rows)
			compareFiles(t, tc.rows, got, want)
		})
	}
}

// compareFiles compares the archive writer's file (got) with parquet-go's
// (want) of the same rows: got must read back as exactly the rows written
// (parquet-go's own file does not always: it reads some nil maps back as
// empty ones), and the footers must agree.
func compareFiles(t *testing.T, rows []Row, got, want []byte) {
	t.Helper()
	gotRows, wantRows := readRows(t, got), rows
	if len(gotRows) != len(wantRows) {
		t.Fatalf("%d rows read back, %d written", len(gotRows), len(wantRows))
	}
	for i := range gotRows {
		if !reflect.DeepEqual(gotRows[i], wantRows[i]) {
			g, w := reflect.ValueOf(gotRows[i]), reflect.ValueOf(wantRows[i])
			for f := range g.NumField() {
				if !reflect.DeepEqual(g.Field(f).Interface(), w.Field(f).Interface()) {
					t.Errorf("row %d field %s: got %#v, want %#v", i, g.Type().Field(f).Name, g.Field(f).Interface(), w.Field(f).Interface())
				}
			}
			t.FailNow()
		}
	}
	gf, wf := openBytes(t, got), openBytes(t, want)
	gm, wm := gf.Metadata(), wf.Metadata()
	if !reflect.DeepEqual(gm.Schema, wm.Schema) || gm.CreatedBy != wm.CreatedBy ||
		!reflect.DeepEqual(gm.KeyValueMetadata, wm.KeyValueMetadata) || !reflect.DeepEqual(gm.ColumnOrders, wm.ColumnOrders) ||
		gm.Version != wm.Version || gm.NumRows != wm.NumRows {
		t.Fatalf("footers differ:\n got %+v\nwant %+v", gm, wm)
	}
	if len(gm.RowGroups) != len(wm.RowGroups) {
		t.Fatalf("%d row groups, parquet-go wrote %d", len(gm.RowGroups), len(wm.RowGroups))
	}
	for i := range gm.RowGroups {
		g, w := &gm.RowGroups[i], &wm.RowGroups[i]
		if g.NumRows != w.NumRows {
			t.Errorf("row group %d: %d rows, want %d", i, g.NumRows, w.NumRows)
		}
		for j := range g.Columns {
			gc, wc := &g.Columns[j].MetaData, &w.Columns[j].MetaData
			name := strings.Join(gc.PathInSchema, ".")
			if gc.NumValues != wc.NumValues || gc.Type != wc.Type || gc.Codec != wc.Codec || !slices.Equal(gc.PathInSchema, wc.PathInSchema) {
				t.Errorf("row group %d column %s: %d %s values (%s), want %d %s (%s)", i, name, gc.NumValues, gc.Type, gc.Codec, wc.NumValues, wc.Type, wc.Codec)
			}
			gs, ws := gc.Statistics, wc.Statistics
			if gs.NullCount != ws.NullCount || !bytes.Equal(gs.MinValue, ws.MinValue) || !bytes.Equal(gs.MaxValue, ws.MaxValue) {
				t.Errorf("row group %d column %s statistics: nulls %d min %q max %q, want %d %q %q",
					i, name, gs.NullCount, gs.MinValue, gs.MaxValue, ws.NullCount, ws.MinValue, ws.MaxValue)
			}
			ge, we := slices.Sorted(slices.Values(gc.Encoding)), slices.Sorted(slices.Values(wc.Encoding))
			if !slices.Equal(ge, we) {
				t.Errorf("row group %d column %s encodings %v, want %v", i, name, ge, we)
			}
			if (gc.DictionaryPageOffset != 0) != (wc.DictionaryPageOffset != 0) {
				t.Errorf("row group %d column %s: dictionary page at %d, parquet-go's at %d", i, name, gc.DictionaryPageOffset, wc.DictionaryPageOffset)
			}
		}
	}
	checkPageIndex(t, gf)
}

// checkPageIndex reads every page back and checks it against the offset
// and column indexes: page count and first rows, null pages and counts,
// and every value within its page's bounds (byte arrays within their
// cut bounds).
func checkPageIndex(t *testing.T, f *parquet.File) {
	t.Helper()
	for gi, rg := range f.RowGroups() {
		for ci, cc := range rg.ColumnChunks() {
			name := strings.Join(f.Schema().Columns()[ci], ".")
			oi, err := cc.OffsetIndex()
			if err != nil {
				t.Fatalf("row group %d column %s: offset index: %v", gi, name, err)
			}
			colIdx, err := cc.ColumnIndex()
			hasBounds := err == nil
			if !hasBounds && !errors.Is(err, parquet.ErrMissingColumnIndex) {
				t.Fatalf("row group %d column %s: column index: %v", gi, name, err)
			}
			pages := cc.Pages()
			var row int64
			for p := 0; ; p++ {
				page, err := pages.ReadPage()
				if errors.Is(err, io.EOF) {
					if p != oi.NumPages() {
						t.Errorf("row group %d column %s: %d pages, the offset index has %d", gi, name, p, oi.NumPages())
					}
					break
				}
				if err != nil {
					t.Fatalf("row group %d column %s page %d: %v", gi, name, p, err)
				}
				if p >= oi.NumPages() || oi.FirstRowIndex(p) != row {
					t.Fatalf("row group %d column %s page %d: first row %d not in the offset index", gi, name, p, row)
				}
				row += page.NumRows()
				if !hasBounds {
					parquet.Release(page)
					continue
				}
				if colIdx.NullCount(p) != page.NumNulls() || colIdx.NullPage(p) != (page.NumNulls() == page.NumValues()) {
					t.Errorf("row group %d column %s page %d: index says %d nulls (null page %v), the page has %d of %d",
						gi, name, p, colIdx.NullCount(p), colIdx.NullPage(p), page.NumNulls(), page.NumValues())
				}
				if !colIdx.NullPage(p) {
					typ := page.Type()
					mn, mx := colIdx.MinValue(p), colIdx.MaxValue(p)
					vals := make([]parquet.Value, page.NumValues())
					n, _ := page.Values().ReadValues(vals)
					for _, v := range vals[:n] {
						if v.IsNull() {
							continue
						}
						if typ.Compare(v, mn) < 0 && !(typ.Kind() == parquet.ByteArray && bytes.HasPrefix(v.ByteArray(), mn.ByteArray())) {
							t.Fatalf("row group %d column %s page %d: %v below the page's min %v", gi, name, p, v, mn)
						}
						if typ.Compare(v, mx) > 0 {
							t.Fatalf("row group %d column %s page %d: %v above the page's max %v", gi, name, p, v, mx)
						}
					}
				}
				parquet.Release(page)
			}
			if row != rg.NumRows() {
				t.Errorf("row group %d column %s: pages hold %d rows, the row group %d", gi, name, row, rg.NumRows())
			}
		}
	}
}

// TestPQWriterDictionaryOutgrown: a dictionary past its limit turns the
// rest of the row group PLAIN, and the file still reads back the same.
func TestPQWriterDictionaryOutgrown(t *testing.T) {
	cfg, _ := Config{}.withDefaults()
	enc, err := newEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := *enc.layout
	l.dictMaxBytes = 2 << 10
	rows := edgeRows(4_000)
	for i := range rows {
		rows[i].UserAgent = fmt.Sprintf("agent-%d-%s", i, strings.Repeat("z", i%20))
	}
	var buf bytes.Buffer
	w := newPQWriter(&l)
	w.reset(&buf)
	if err := w.write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	md := openBytes(t, buf.Bytes()).Metadata().RowGroups[0].Columns[colUserAgent].MetaData
	if !slices.Contains(md.Encoding, format.Plain) || !slices.Contains(md.Encoding, format.RLEDictionary) {
		t.Errorf("user_agent encodings %v: want dictionary pages, then PLAIN ones", md.Encoding)
	}
	compareFiles(t, rows, buf.Bytes(), genericFile(t, enc, rows))
}

// TestPartBuf_WritesItsFileAsRowsArrive: a partition whose rows are
// written into its file one by one as they arrive (what the archive does)
// ends in the same file as its Rows encoded at once, across pages and row
// groups; the file is parquet-go's; it is finished once only; and the heap
// the partition reports follows its pages.
func TestPartBuf_WritesItsFileAsRowsArrive(t *testing.T) {
	cfg, _ := Config{PageBytes: 8 << 10, RowGroupRows: 2_000}.withDefaults()
	enc, err := newEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rows := append(edgeRows(3_000), rowsOf(recordsOf(testShard, benchEvents(2_000), 3))...)
	var fromRows bytes.Buffer
	w := enc.writer(&fromRows)
	if err := w.write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	var pb partBuf
	var held int64
	for i := range rows {
		d, err := pb.write(enc, &rows[i])
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		if held += d; held != pb.held() {
			t.Fatalf("row %d: increments add to %d, the partition holds %d", i, held, pb.held())
		}
	}
	if held < int64(fromRows.Len()) {
		t.Errorf("the partition reports %d bytes held for a file of %d", held, fromRows.Len())
	}
	got, err := enc.encodePart(&pb, testShard)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, fromRows.Bytes()) {
		t.Error("the file written as rows arrived differs from the one written from all the Rows at once")
	}
	compareFiles(t, rows, got, genericFile(t, enc, rows))
	if _, err := enc.encodePart(&pb, testShard); !errors.Is(err, errDrained) {
		t.Errorf("second encode: %v, want errDrained", err)
	}
	if _, err := pb.write(enc, &rows[0]); !errors.Is(err, errDrained) {
		t.Errorf("row after the file was finished: %v, want errDrained", err)
	}
}

// TestPQWriter_DictionaryIndexesPastTwoBytes: a page whose dictionary
// passes 65,536 entries (its indexes kept in two bytes until then) reads
// back as the rows written, and is parquet-go's file.
func TestPQWriter_DictionaryIndexesPastTwoBytes(t *testing.T) {
	cfg, _ := Config{PageBytes: 4 << 20}.withDefaults()
	enc, err := newEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rows := edgeRows(70_000)
	for i := range rows {
		rows[i].UserID = fmt.Sprintf("u%d", i) // a new entry every row
	}
	var buf bytes.Buffer
	w := enc.writer(&buf)
	if err := w.write(rows[:66_000]); err != nil {
		t.Fatal(err)
	}
	if c := &w.cols[colUserID]; len(c.idx) == 0 || len(c.idx16) != 0 {
		t.Fatalf("after 66,000 entries: %d four-byte and %d two-byte indexes on the page", len(c.idx), len(c.idx16))
	}
	if err := w.write(rows[66_000:]); err != nil {
		t.Fatal(err)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	compareFiles(t, rows, buf.Bytes(), genericFile(t, enc, rows))
}

// TestPQWriterBoundsOpenPages: the open pages of a file being encoded hold
// at most the layout's openBytes together after every cut (every 64 rows),
// however many columns have not filled a page, and the file still reads
// back as the rows written.
func TestPQWriterBoundsOpenPages(t *testing.T) {
	cfg, _ := Config{}.withDefaults()
	enc, err := newEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := enc.layout.openBytes, 8*enc.layout.pageBytes; got != want {
		t.Fatalf("openBytes %d, want eight pages (%d)", got, want)
	}
	l := *enc.layout
	l.openBytes = 64 << 10
	rows := rowsOf(recordsOf(testShard, loadgenEvents(t, 6_000), 1))
	var buf bytes.Buffer
	w := newPQWriter(&l)
	w.reset(&buf)
	maxOpen, cuts := 0, 0
	for i := range rows {
		w.add(&rows[i])
		if err := w.rowDone(); err != nil {
			t.Fatal(err)
		}
		if w.rows%64 != 0 {
			continue
		}
		open := 0
		for j := range w.cols {
			open += w.cols[j].size()
		}
		if open > l.openBytes {
			t.Fatalf("after row %d the open pages hold %d bytes, over the bound %d", i, open, l.openBytes)
		}
		maxOpen = max(maxOpen, open)
		cuts++
	}
	if maxOpen < l.openBytes/2 {
		t.Fatalf("the open pages never held more than %d bytes: the rows do not test the bound", maxOpen)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	compareFiles(t, rows, buf.Bytes(), genericFile(t, enc, rows))
}

// Rows of events decoded with their features and attrs as lists (what
// the runtime hands the archive) make the same files, byte for byte, as
// rows of the same events decoded with maps: with the archive's writer,
// and packed for parquet-go's (a Bloom filter configured).
func TestRowsWithLists_WriteTheFilesOfMaps(t *testing.T) {
	events := append(benchEvents(3_000), loadgenEvents(t, 3_000)...)
	events = append(events, []byte(`{"type":"x","ts":1,"user_id":"u","features":{"b":2,"a":1,"b":3},"attrs":{"z":"1","a":"2"}}`))
	recs := recordsOf(testShard, events, 5)
	var lists event.Lists
	withLists := make([]Row, 0, len(recs))
	for i := range recs {
		r := recs[i]
		if r.Err != nil {
			continue
		}
		if err := event.DecodeLists(r.Data, &r.Event, &lists); err != nil {
			t.Fatal(err)
		}
		if r.Event.Features != nil || r.Event.Attrs != nil {
			t.Fatal("DecodeLists made maps")
		}
		withLists = append(withLists, RowOf(&r))
	}
	withMaps := rowsOf(recs)
	for _, bloom := range []bool{false, true} {
		// A fresh encoder each: a pooled parquet-go writer does not write
		// a file byte for byte as a new one does.
		encode := func(rows []Row) []byte {
			cfg, _ := Config{PageBytes: 16 << 10, RowGroupRows: 2_500, BloomFilterUserID: bloom}.withDefaults()
			enc, err := newEncoder(cfg)
			if err != nil {
				t.Fatal(err)
			}
			b, err := enc.encodeBytes(rows, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		got, want := encode(withLists), encode(withMaps)
		if !bytes.Equal(got, want) {
			t.Errorf("bloom=%v: the file of rows with lists differs from the file of rows with maps", bloom)
		}
	}
	for i := range withLists {
		if got, want := appendRow(nil, &withLists[i]), appendRow(nil, &withMaps[i]); !bytes.Equal(got, want) {
			t.Fatalf("row %d packs as %x with lists, %x with maps", i, got, want)
		}
	}
}
