package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"strings"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding/delta"
	"github.com/parquet-go/parquet-go/encoding/rle"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"

	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/freelist"
)

// pqWriter writes the archive's Parquet files column by column, for its
// one schema (Row). parquet-go's GenericWriter shreds rows by reflection:
// maps are copied and sorted through reflect, every value passes through
// generic column buffers, and that was ~60% of encoding a file
// (BenchmarkEncode). This writer appends each field straight to its
// column's page, encoded as parquet-go would encode it, and uses
// parquet-go's own pieces for the rest: the schema (taken from a file
// parquet-go writes, so the footer's schema, created_by and key/value
// metadata are exactly parquet-go's), the RLE, dictionary and DELTA
// encoders, the Thrift structures of the format and the compression codecs.
//
// The file is what parquet-go writes from the same rows and options, up to
// where pages are cut and the optional parts parquet-go adds that no reader
// here needs (level histograms, page indexes of columns without bounds):
// the same columns, encodings, dictionaries, row groups, statistics and
// page index (TestPQWriterMatchesParquetGo reads both back and compares).
// A config with a Bloom filter is written by parquet-go.
type pqWriter struct {
	layout *pqLayout
	out    countingWriter
	cols   [numColumns]pqColumn
	// The row group being written.
	rows      int64
	rowGroups []format.RowGroup
	// Page indexes of the row groups written, kept until the footer.
	colIndexes [][numColumns]*format.ColumnIndex
	offIndexes [][numColumns]format.OffsetIndex
	// A row's maps' entries, sorted.
	features []event.Feature
	attrs    []event.Attr
	// held is the heap the file holds so far (see heldBytes), as of the
	// last cut of pages.
	held int64
	// The scratch of page encoding, borrowed while pages are cut: a
	// partition's file is written as its rows arrive, and the writers of
	// every open partition need not each hold a page's worth of it.
	*pqScratch
}

// pqScratch holds the buffers pages are encoded and compressed in.
type pqScratch struct {
	levels, body, packed, header []byte
	levelBytes                   []uint8
	int32s                       []int32
	int64s                       []int64
	suffixes                     []int32 // DELTA_BYTE_ARRAY's suffix lengths
	proto                        thrift.CompactProtocol
}

// pqScratches outlive collections (see freelist).
var pqScratches = freelist.New[*pqScratch](runtime.GOMAXPROCS(0))

// borrow gives the writer a pqScratch if it has none, and reports whether
// it did: `defer w.giveBack(w.borrow())` around work that encodes pages.
func (w *pqWriter) borrow() bool {
	if w.pqScratch != nil {
		return false
	}
	var ok bool
	if w.pqScratch, ok = pqScratches.Get(); !ok {
		w.pqScratch = new(pqScratch)
	}
	return true
}

func (w *pqWriter) giveBack(borrowed bool) {
	if borrowed {
		pqScratches.Put(w.pqScratch)
		w.pqScratch = nil
	}
}

// The file's leaf columns, in schema order (parquet.SchemaOf(Row{})).
// newPQLayout checks this order and each column's type, levels and
// encoding against the schema, so a field added to Row without a column
// here fails New, not a file.
const (
	colV = iota
	colID
	colType
	colTS
	colUserID
	colSessionID
	colItemID
	colApp
	colPlacement
	colPosition
	colFeatureKey
	colFeatureValue
	colAttrKey
	colAttrValue
	colHost
	colMethod
	colURI
	colRoute
	colStatus
	colCache
	colRequestTime
	colBytes
	colUserAgent
	colReceivedAt
	colExtra
	colShardID
	colSequenceNumber
	colSubSequenceNumber
	colArrivalTS
	numColumns
)

var pqColumnNames = [numColumns]string{
	"v", "id", "type", "ts", "user_id", "session_id", "item_id", "app", "placement", "position",
	"features.key_value.key", "features.key_value.value", "attrs.key_value.key", "attrs.key_value.value",
	"host", "method", "uri", "route", "status", "cache", "request_time_ms", "bytes", "user_agent",
	"received_at", "extra", "shard_id", "sequence_number", "sub_sequence_number", "arrival_ts",
}

type pqEncoding uint8

const (
	pqPlain pqEncoding = iota
	pqDict
	pqDeltaInt
	pqDeltaBytes
	pqDeltaLength // DELTA_LENGTH_BYTE_ARRAY: parquet-go's default for byte arrays
)

// pqLeaf is what the writer needs of a leaf column.
type pqLeaf struct {
	path           []string
	kind           parquet.Kind // Int32, Int64, Double or ByteArray
	encoding       pqEncoding
	maxDef, maxRep uint8
	bounds         bool // page and chunk min/max (not in noPageBounds)
	codec          compress.Codec
}

// pqLayout is the file layout of an encoder's options: the leaves, and
// the footer fields copied from a file parquet-go wrote with them.
type pqLayout struct {
	leaves           [numColumns]pqLeaf
	schema           []format.SchemaElement
	columnOrders     []format.ColumnOrder
	createdBy        string
	keyValueMetadata []format.KeyValue
	pageBytes        int
	openBytes        int // bound of the open pages together (cutPages)
	rowGroupRows     int64
	dictMaxBytes     int
}

// openPagesBytes bounds the open pages of a file being encoded together:
// eight pages' worth, 4 MiB at the default page size. Measured on 100k-row
// files (bytes per event, benchmark corpus / end-to-end traffic): no bound
// 16.47 / 31.58; eight pages 16.73 / 31.80; four 17.18 / 31.90.
func openPagesBytes(pageBytes int) int { return 8 * pageBytes }

// columnIndexSizeLimit is parquet-go's default cut of byte-array bounds
// in the column index (DefaultColumnIndexSizeLimit).
const columnIndexSizeLimit = parquet.DefaultColumnIndexSizeLimit

// newPQLayout lays out the files of opts. Pages are compressed with
// cs.file, those of the id and sequence_number columns with cs.ids and
// cs.seqs, those of fastCols with cs.fast: the same codec in the file,
// perhaps at another level or without some of its steps (see codecsFor).
func newPQLayout(opts []parquet.WriterOption, cs codecs, pageBytes int, rowGroupRows int64, dictMaxBytes int) (*pqLayout, error) {
	for _, c := range []compress.Codec{cs.ids, cs.seqs, cs.fast} {
		if c.CompressionCodec() != cs.file.CompressionCodec() {
			return nil, fmt.Errorf("archive: column codec %s, file codec %s", c, cs.file)
		}
	}
	l := &pqLayout{pageBytes: pageBytes, openBytes: openPagesBytes(pageBytes), rowGroupRows: rowGroupRows, dictMaxBytes: dictMaxBytes}
	// The footer's schema, column orders, created_by and key/value
	// metadata: parquet-go's own, from an empty file written with the
	// same options.
	var ref bytes.Buffer
	w := parquet.NewGenericWriter[Row](&ref, opts...)
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("parquet reference file: %w", err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(ref.Bytes()), int64(ref.Len()))
	if err != nil {
		return nil, fmt.Errorf("parquet reference file: %w", err)
	}
	md := f.Metadata()
	l.schema, l.columnOrders, l.createdBy, l.keyValueMetadata = md.Schema, md.ColumnOrders, md.CreatedBy, md.KeyValueMetadata

	// The file's schema does not carry the encodings: the Go type's does.
	schema := parquet.SchemaOf(Row{})
	cols := schema.Columns()
	if len(cols) != numColumns {
		return nil, fmt.Errorf("archive: Row has %d Parquet columns, the writer knows %d", len(cols), numColumns)
	}
	for i, path := range cols {
		if got := strings.Join(path, "."); got != pqColumnNames[i] {
			return nil, fmt.Errorf("archive: Parquet column %d is %s, the writer has %s there", i, got, pqColumnNames[i])
		}
		leaf, _ := schema.Lookup(path...)
		pl := pqLeaf{path: path, kind: leaf.Node.Type().Kind(),
			maxDef: uint8(leaf.MaxDefinitionLevel), maxRep: uint8(leaf.MaxRepetitionLevel), bounds: true, codec: cs.file}
		switch i {
		case colID:
			pl.codec = cs.ids
		case colSequenceNumber:
			pl.codec = cs.seqs
		}
		if slices.Contains(fastCols, i) {
			pl.codec = cs.fast
		}
		switch pl.kind {
		case parquet.Int32, parquet.Int64, parquet.Double, parquet.ByteArray:
		default:
			return nil, fmt.Errorf("archive: Parquet column %s is %s, which the writer does not write", pqColumnNames[i], pl.kind)
		}
		if e := leaf.Node.Encoding(); e != nil {
			switch e.Encoding() {
			case format.Plain:
			case format.RLEDictionary, format.PlainDictionary:
				pl.encoding = pqDict
			case format.DeltaBinaryPacked:
				if pl.kind != parquet.Int64 && pl.kind != parquet.Int32 {
					return nil, fmt.Errorf("archive: Parquet column %s: DELTA_BINARY_PACKED on %s", pqColumnNames[i], pl.kind)
				}
				pl.encoding = pqDeltaInt
			case format.DeltaByteArray:
				pl.encoding = pqDeltaBytes
			default:
				return nil, fmt.Errorf("archive: Parquet column %s: encoding %s", pqColumnNames[i], e)
			}
		}
		if pl.encoding == pqPlain && pl.kind == parquet.ByteArray {
			pl.encoding = pqDeltaLength
		}
		if (pl.encoding == pqDict || pl.encoding == pqDeltaBytes) && pl.kind != parquet.ByteArray {
			return nil, fmt.Errorf("archive: Parquet column %s: %s on %s", pqColumnNames[i], leaf.Node.Encoding(), pl.kind)
		}
		for _, skip := range noPageBounds {
			if slices.Equal(skip, path) {
				pl.bounds = false
			}
		}
		l.leaves[i] = pl
	}
	return l, nil
}

func newPQWriter(l *pqLayout) *pqWriter {
	w := &pqWriter{layout: l}
	for i := range w.cols {
		w.cols[i].pqLeaf = l.leaves[i]
	}
	return w
}

// reset starts a new file on out, with the column buffers trimmed
// (keepBytes).
func (w *pqWriter) reset(out io.Writer) {
	for i := range w.cols {
		w.cols[i].trim()
	}
	w.restart(out)
}

// restart starts a new file on out with the buffers the last one grew.
func (w *pqWriter) restart(out io.Writer) {
	w.out = countingWriter{w: out}
	w.rows = 0
	w.rowGroups = w.rowGroups[:0]
	w.colIndexes = w.colIndexes[:0]
	w.offIndexes = w.offIndexes[:0]
	for i := range w.cols {
		w.cols[i].resetChunk()
	}
	w.held = w.heldBytes()
}

// keepBytes is the most a column keeps of a buffer from one file to the
// next. Files are written as their rows arrive, a writer for every open
// partition: a writer taken from the pool for a partition of a few late
// rows must not hold the pages its last file grew to.
const keepBytes = 16 << 10

// trim drops the column's buffers that grew past keepBytes, and a
// dictionary's map that did (a cleared map keeps its size).
func (c *pqColumn) trim() {
	drop := func(n int) bool { return n > keepBytes }
	if drop(cap(c.reps.b)) {
		c.reps.b = nil
	}
	if drop(cap(c.defs.b)) {
		c.defs.b = nil
	}
	if drop(cap(c.plain)) {
		c.plain = nil
	}
	if drop(2 * cap(c.idx16)) {
		c.idx16 = nil
	}
	if drop(4 * cap(c.idx)) {
		c.idx = nil
	}
	if drop(4 * cap(c.prefixes)) {
		c.prefixes = nil
	}
	if drop(cap(c.deltas)) {
		c.deltas = nil
	}
	if drop(4 * cap(c.offs)) {
		c.offs = nil
	}
	if drop(cap(c.pages)) {
		c.pages = nil
	}
	if drop(c.dict.heldBytes()) {
		c.dict.drop()
	}
}

// bound is a running min or max of one column's values.
type bound struct {
	ok bool
	i  int64
	f  float64
	b  []byte
}

func (c *pqColumn) less(a, b *bound) bool {
	switch c.kind {
	case parquet.Double:
		return a.f < b.f
	case parquet.ByteArray:
		return bytes.Compare(a.b, b.b) < 0
	}
	return a.i < b.i
}

// plainBytes is a bound PLAIN-encoded as the statistics hold it.
func (c *pqColumn) plainBytes(b *bound) []byte {
	switch c.kind {
	case parquet.Int32:
		return binary.LittleEndian.AppendUint32(nil, uint32(b.i))
	case parquet.Int64:
		return binary.LittleEndian.AppendUint64(nil, uint64(b.i))
	case parquet.Double:
		return binary.LittleEndian.AppendUint64(nil, math.Float64bits(b.f))
	}
	return append([]byte{}, b.b...)
}

// pqColumn is one column: the page being built and the row group's chunk.
type pqColumn struct {
	pqLeaf

	// The page being built.
	reps, defs pageLevels
	plain      []byte // PLAIN values (and DELTA_BYTE_ARRAY's bytes)
	// Dictionary indexes: two bytes each while they fit (a page is open
	// as long as its file is), four once one does not.
	idx16 []uint16
	idx   []int32
	// DELTA_BINARY_PACKED values, as zigzag varints of each one's
	// difference from the one before (the page's first from 0): a page
	// is open for as long as its file is, and timestamps and sequence
	// offsets then take a byte or two instead of eight. Its size for
	// cutting pages is still 8 bytes a value (nInts), as it always was.
	deltas  []byte
	nInts   int
	lastInt int64
	// DELTA_BYTE_ARRAY: plain holds each value's suffix after the prefix
	// it shares with the value before (last); plainLen is the values'
	// whole length, what the page is cut by.
	prefixes []int32
	last     []byte
	plainLen int
	offs     []uint32 // DELTA_BYTE_ARRAY: value boundaries in plain
	values   int      // levels written: values and nulls
	nulls    int
	firstRow int64 // the page's first row in the row group
	min, max bound
	seen     []uint64 // dictionary entries on the page, for its bounds

	// The row group's dictionary.
	dict     pqDictionary
	plainNow bool // the dictionary outgrew its limit: PLAIN from here

	// The row group's chunk: its data pages, headers included.
	pages          []byte
	uncompressed   int64
	chunkValues    int64
	chunkNulls     int64
	chunkMin       bound
	chunkMax       bound
	usedEncodings  [10]bool // by format.Encoding
	locations      []format.PageLocation
	pageMins       []bound
	pageMaxs       []bound
	pageNullCounts []int64
	pageAllNull    []bool
}

func (c *pqColumn) resetChunk() {
	c.reps.reset()
	c.defs.reset()
	c.plain, c.idx, c.idx16 = c.plain[:0], c.idx[:0], c.idx16[:0]
	c.deltas, c.nInts, c.lastInt = c.deltas[:0], 0, 0
	c.prefixes, c.last, c.plainLen = c.prefixes[:0], c.last[:0], 0
	c.offs = append(c.offs[:0], 0)
	c.values, c.nulls, c.firstRow = 0, 0, 0
	c.min.ok, c.max.ok = false, false
	clear(c.seen)
	c.dict.reset()
	c.plainNow = false
	c.pages, c.uncompressed, c.chunkValues, c.chunkNulls = c.pages[:0], 0, 0, 0
	c.chunkMin.ok, c.chunkMax.ok = false, false
	c.usedEncodings = [10]bool{}
	c.locations, c.pageMins, c.pageMaxs = c.locations[:0], c.pageMins[:0], c.pageMaxs[:0]
	c.pageNullCounts, c.pageAllNull = c.pageNullCounts[:0], c.pageAllNull[:0]
}

// levels appends a value's or null's levels.
func (c *pqColumn) levels(rep, def uint8) {
	if c.maxRep > 0 {
		c.reps.add(rep)
	}
	if c.maxDef > 0 {
		c.defs.add(def)
	}
	c.values++
}

func (c *pqColumn) null(rep uint8) { c.nullAt(rep, 0) }

// nullAt is a missing value at a definition level: 0 is a null field, 1
// in a map's key or value column an empty map.
func (c *pqColumn) nullAt(rep, def uint8) {
	c.levels(rep, def)
	c.nulls++
}

func (c *pqColumn) int(v int64, rep, def uint8) {
	c.levels(rep, def)
	switch {
	case c.encoding == pqDeltaInt:
		c.deltas = binary.AppendVarint(room(c.deltas, binary.MaxVarintLen64), v-c.lastInt)
		c.nInts++
		c.lastInt = v
	case c.kind == parquet.Int32:
		c.plain = binary.LittleEndian.AppendUint32(room(c.plain, 4), uint32(v))
	default:
		c.plain = binary.LittleEndian.AppendUint64(room(c.plain, 8), uint64(v))
	}
	if c.bounds {
		if !c.min.ok || v < c.min.i {
			c.min.ok, c.min.i = true, v
		}
		if !c.max.ok || v > c.max.i {
			c.max.ok, c.max.i = true, v
		}
	}
}

func (c *pqColumn) double(v float64, rep, def uint8) {
	c.levels(rep, def)
	c.plain = binary.LittleEndian.AppendUint64(room(c.plain, 8), math.Float64bits(v))
	if c.bounds && !math.IsNaN(v) {
		if !c.min.ok || v < c.min.f {
			c.min.ok, c.min.f = true, v
		}
		if !c.max.ok || v > c.max.f {
			c.max.ok, c.max.f = true, v
		}
	}
}

func (c *pqColumn) str(s string, rep, def uint8) {
	c.levels(rep, def)
	switch {
	case c.encoding == pqDict && !c.plainNow:
		i := c.dict.index(s)
		switch {
		case len(c.idx) == 0 && i <= math.MaxUint16:
			c.idx16 = append(room(c.idx16, 1), uint16(i))
		case len(c.idx) == 0:
			for _, v := range c.idx16 {
				c.idx = append(c.idx, int32(v))
			}
			c.idx16 = c.idx16[:0]
			fallthrough
		default:
			c.idx = append(room(c.idx, 1), i)
		}
		if c.bounds {
			if w := int(i >> 6); w >= len(c.seen) {
				c.seen = append(c.seen, make([]uint64, w+1-len(c.seen))...)
			}
			c.seen[i>>6] |= 1 << (i & 63)
		}
		return
	case c.encoding == pqDeltaBytes:
		// Only what differs from the value before is kept: a sequence
		// number shares most of its 56 digits with the one before.
		b := unsafe.Slice(unsafe.StringData(s), len(s))
		p := commonPrefix(c.last, b)
		c.prefixes = append(room(c.prefixes, 1), int32(p))
		c.plain = append(room(c.plain, len(s)-p), s[p:]...)
		c.offs = append(room(c.offs, 1), uint32(len(c.plain)))
		c.last = append(c.last[:0], s...)
		c.plainLen += len(s)
	case c.encoding == pqDeltaLength:
		c.plain = append(room(c.plain, len(s)), s...)
		c.offs = append(room(c.offs, 1), uint32(len(c.plain)))
	default:
		c.plain = binary.LittleEndian.AppendUint32(room(c.plain, 4+len(s)), uint32(len(s)))
		c.plain = append(c.plain, s...)
	}
	if c.bounds {
		b := unsafe.Slice(unsafe.StringData(s), len(s))
		if !c.min.ok || bytes.Compare(b, c.min.b) < 0 {
			c.min.ok, c.min.b = true, append(c.min.b[:0], b...)
		}
		if !c.max.ok || bytes.Compare(b, c.max.b) > 0 {
			c.max.ok, c.max.b = true, append(c.max.b[:0], b...)
		}
	}
}

func (c *pqColumn) optStr(s string) {
	if s == "" {
		c.null(0)
		return
	}
	c.str(s, 0, 1)
}

func (c *pqColumn) optInt(v int64, null bool) {
	if null {
		c.null(0)
		return
	}
	c.int(v, 0, 1)
}

// size is the page's encoded size, near enough to cut pages by.
func (c *pqColumn) size() int {
	n := c.reps.n()/4 + c.defs.n()/4 + len(c.plain) + 4*(len(c.idx16)+len(c.idx)) + 8*c.nInts + 4*len(c.offs)
	if c.encoding == pqDeltaBytes {
		n += c.plainLen - len(c.plain)
	}
	return n
}

// write appends rows to the file, cutting pages and row groups.
func (w *pqWriter) write(rows []Row) error {
	for i := range rows {
		w.add(&rows[i])
		if err := w.rowDone(); err != nil {
			return err
		}
	}
	return nil
}

// rowDone counts a row added to every column, and cuts pages and row
// groups after it when they are full.
func (w *pqWriter) rowDone() error {
	w.rows++
	// Pages are cut after whole rows, every 64 rows as parquet-go's writer
	// does: a page overshoots its size by little.
	if w.rows%64 == 0 {
		if err := w.cutPages(); err != nil {
			return err
		}
	}
	if w.rows == w.layout.rowGroupRows {
		return w.flushRowGroup()
	}
	return nil
}

// cutPages cuts the pages that are full, then the largest ones while the
// open pages together hold more than the layout's openBytes.
func (w *pqWriter) cutPages() error {
	open := 0
	for i := range w.cols {
		c := &w.cols[i]
		full := c.size() >= w.layout.pageBytes
		// A dictionary past its limit stops growing: its page is cut, and
		// the rest of the row group is PLAIN.
		outgrown := c.encoding == pqDict && !c.plainNow && len(c.dict.plain) > w.layout.dictMaxBytes
		if full || outgrown {
			if err := w.flushPage(c); err != nil {
				return err
			}
		}
		if outgrown {
			c.plainNow = true
		}
		open += c.size()
	}
	// The open pages are what a file being encoded holds uncompressed: up
	// to a page per column, ~15 MiB of 512 KiB pages, where most columns
	// take a few bytes a row and never fill theirs. Cutting the largest
	// until the rest fit keeps the bound and the other pages growing
	// (cutting down to half of it made files 2% larger).
	for open > w.layout.openBytes {
		var big *pqColumn
		for i := range w.cols {
			if c := &w.cols[i]; big == nil || c.size() > big.size() {
				big = c
			}
		}
		if big.size() == 0 {
			break
		}
		open -= big.size()
		if err := w.flushPage(big); err != nil {
			return err
		}
	}
	w.held = w.heldBytes()
	return nil
}

// heldBytes estimates the heap the file holds: its open pages and the
// compressed pages of the row group (at their capacity: a pooled writer
// keeps what its last file grew them to), the dictionaries (their pages,
// and the map with each entry's copy of the string) and what was written
// out.
func (w *pqWriter) heldBytes() int64 {
	var n int64
	if w.out.w != nil {
		n = w.out.off // the file's bytes, until it is finished
	}
	for i := range w.cols {
		c := &w.cols[i]
		n += int64(cap(c.reps.b) + cap(c.defs.b) + cap(c.plain) + 2*cap(c.idx16) + 4*cap(c.idx) + cap(c.deltas) + 4*cap(c.offs) + 4*cap(c.prefixes) + cap(c.last) +
			cap(c.pages) + c.dict.heldBytes())
	}
	return n
}

// add appends one row's values to the columns: the levels follow the
// schema, and a field's zero value is null (the Row's convention); a nil
// map is null, an empty one present, and entries go in key order.
func (w *pqWriter) add(r *Row) {
	c := &w.cols
	c[colV].int(int64(r.V), 0, 0)
	c[colID].optStr(r.ID)
	c[colType].str(r.Type, 0, 0)
	c[colTS].int(r.TS, 0, 0)
	c[colUserID].optStr(r.UserID)
	c[colSessionID].optStr(r.SessionID)
	c[colItemID].optStr(r.ItemID)
	c[colApp].optStr(r.App)
	c[colPlacement].optStr(r.Placement)
	if r.Position != nil {
		c[colPosition].int(*r.Position, 0, 1)
	} else {
		c[colPosition].null(0)
	}
	// A row's features and attrs: its lists, in name order already, or
	// its maps' entries sorted.
	feats := r.featureList
	if len(feats) == 0 && len(r.Features) > 0 {
		w.features = sortedFeatures(w.features[:0], r.Features)
		feats = w.features
	}
	if w.mapStart(colFeatureKey, colFeatureValue, r.Features == nil && len(feats) == 0, len(feats)) {
		for i, f := range feats {
			rep := uint8(min(i, 1))
			c[colFeatureKey].str(f.Name, rep, 2)
			c[colFeatureValue].double(f.Value, rep, 2)
		}
	}
	attrs := r.attrList
	if len(attrs) == 0 && len(r.Attrs) > 0 {
		w.attrs = sortedAttrs(w.attrs[:0], r.Attrs)
		attrs = w.attrs
	}
	if w.mapStart(colAttrKey, colAttrValue, r.Attrs == nil && len(attrs) == 0, len(attrs)) {
		for i, a := range attrs {
			rep := uint8(min(i, 1))
			c[colAttrKey].str(a.Name, rep, 2)
			c[colAttrValue].str(a.Value, rep, 2)
		}
	}
	c[colHost].optStr(r.Host)
	c[colMethod].optStr(r.Method)
	c[colURI].optStr(r.URI)
	c[colRoute].optStr(r.Route)
	c[colStatus].optInt(int64(r.Status), r.Status == 0)
	c[colCache].optStr(r.Cache)
	if r.RequestTimeMS != nil {
		c[colRequestTime].double(*r.RequestTimeMS, 0, 1)
	} else {
		c[colRequestTime].null(0)
	}
	if r.Bytes != nil {
		c[colBytes].int(*r.Bytes, 0, 1)
	} else {
		c[colBytes].null(0)
	}
	c[colUserAgent].optStr(r.UserAgent)
	c[colReceivedAt].optInt(r.ReceivedAt, r.ReceivedAt == 0)
	c[colExtra].optStr(r.Extra)
	c[colShardID].str(r.ShardID, 0, 0)
	c[colSequenceNumber].str(r.SequenceNumber, 0, 0)
	c[colSubSequenceNumber].int(r.SubSequenceNumber, 0, 0)
	c[colArrivalTS].optInt(r.ArrivalTS, r.ArrivalTS == 0)
}

// mapStart writes a map without entries to its key and value columns —
// null when nil, present but empty when it has none — and reports whether
// its n entries are to follow.
func (w *pqWriter) mapStart(keyCol, valueCol int, isNil bool, n int) bool {
	switch {
	case isNil:
		w.cols[keyCol].null(0)
		w.cols[valueCol].null(0)
	case n == 0:
		w.cols[keyCol].nullAt(0, 1)
		w.cols[valueCol].nullAt(0, 1)
	default:
		return true
	}
	return false
}

// appendDeltaByteArray appends the values of c's page DELTA_BYTE_ARRAY-
// encoded: the lengths of the prefixes each shares with the value before
// and of the suffixes, both DELTA_BINARY_PACKED, then the suffixes. The
// column found the prefixes as the values came (pqColumn.str), eight bytes
// at a time: parquet-go's byte-by-byte search was 2% of the archive's CPU
// on 56-digit sequence numbers. It writes what parquet-go's
// delta.ByteArrayEncoding writes (a test holds it to those bytes).
func (w *pqWriter) appendDeltaByteArray(dst []byte, c *pqColumn) ([]byte, error) {
	defer w.giveBack(w.borrow())
	w.suffixes = w.suffixes[:0]
	for i := 1; i < len(c.offs); i++ {
		w.suffixes = append(w.suffixes, int32(c.offs[i]-c.offs[i-1]))
	}
	var err error
	for _, lengths := range [...][]int32{c.prefixes, w.suffixes} {
		if w.packed, err = deltaInt.EncodeInt32(w.packed, lengths); err != nil {
			return dst, err
		}
		dst = append(dst, w.packed...)
	}
	return append(dst, c.plain...), nil
}

// commonPrefix is the length of the longest prefix a and b share.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

var (
	deltaInt    delta.BinaryPackedEncoding
	deltaLength delta.LengthByteArrayEncoding
	dictIdx     rle.DictionaryEncoding
)

// appendLevels appends levels RLE-encoded, prefixed with their length as
// data pages v1 have them.
func (w *pqWriter) appendLevels(dst []byte, l *pageLevels, max uint8) ([]byte, error) {
	defer w.giveBack(w.borrow())
	enc := rle.Encoding{BitWidth: bits.Len8(max)}
	var err error
	w.levelBytes = l.appendTo(w.levelBytes[:0])
	if w.levels, err = enc.EncodeLevels(w.levels, w.levelBytes); err != nil {
		return dst, err
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(w.levels)))
	return append(dst, w.levels...), nil
}

// pageLevels are a page's repetition or definition levels. A column's levels
// are mostly one value throughout (a field every event of a type has, or
// none has): while they are, only their count is kept, since a page is
// open for as long as its file is.
type pageLevels struct {
	b   []uint8 // the levels, once they differ
	run int     // how many, while they are all v
	v   uint8
}

func (l *pageLevels) add(v uint8) {
	if len(l.b) == 0 && (l.run == 0 || v == l.v) {
		l.v = v
		l.run++
		return
	}
	if len(l.b) == 0 {
		l.b = room(l.b, l.run+1)
		for range l.run {
			l.b = append(l.b, l.v)
		}
	}
	l.b = append(room(l.b, 1), v)
}

// room returns s with room for n more elements, doubling its capacity when
// it must grow. The open pages of a file grow for as long as the file is
// written, to hundreds of KB: append grows a slice that large by a quarter
// at a time, allocating ~5 times its final size on the way, where doubling
// allocates twice (the files of a 200,000-event stream: ~0.3 KB an event).
func room[T any](s []T, n int) []T {
	if cap(s)-len(s) >= n {
		return s
	}
	grown := make([]T, len(s), max(2*cap(s), len(s)+n, 64))
	copy(grown, s)
	return grown
}

// n is the number of levels.
func (l *pageLevels) n() int {
	if len(l.b) > 0 {
		return len(l.b)
	}
	return l.run
}

// appendTo appends the levels to dst.
func (l *pageLevels) appendTo(dst []uint8) []uint8 {
	if len(l.b) > 0 {
		return append(dst, l.b...)
	}
	for range l.run {
		dst = append(dst, l.v)
	}
	return dst
}

func (l *pageLevels) reset() { l.b, l.run = l.b[:0], 0 }

// flushPage encodes, compresses and appends the page being built to the
// column's chunk, and records it in the chunk's statistics and indexes.
func (w *pqWriter) flushPage(c *pqColumn) (err error) {
	if c.values == 0 {
		return nil
	}
	defer w.giveBack(w.borrow())
	body := w.body[:0]
	if c.maxRep > 0 {
		if body, err = w.appendLevels(body, &c.reps, c.maxRep); err != nil {
			return err
		}
	}
	if c.maxDef > 0 {
		if body, err = w.appendLevels(body, &c.defs, c.maxDef); err != nil {
			return err
		}
	}
	enc := format.Plain
	switch {
	case c.encoding == pqDict && !c.plainNow:
		enc = format.RLEDictionary
		idx := c.idx
		if len(idx) == 0 {
			w.int32s = w.int32s[:0]
			for _, v := range c.idx16 {
				w.int32s = append(w.int32s, int32(v))
			}
			idx = w.int32s
		}
		if w.packed, err = dictIdx.EncodeInt32(w.packed, idx); err != nil {
			return err
		}
		body = append(body, w.packed...)
		// The page's bounds: the least and greatest entries it uses.
		if c.bounds {
			for wi, word := range c.seen {
				for word != 0 {
					i := wi<<6 + bits.TrailingZeros64(word)
					word &= word - 1
					v := c.dict.entry(int32(i))
					if !c.min.ok || bytes.Compare(v, c.min.b) < 0 {
						c.min.ok, c.min.b = true, append(c.min.b[:0], v...)
					}
					if !c.max.ok || bytes.Compare(v, c.max.b) > 0 {
						c.max.ok, c.max.b = true, append(c.max.b[:0], v...)
					}
				}
			}
			clear(c.seen)
		}
	case c.encoding == pqDeltaInt && c.kind == parquet.Int32:
		enc = format.DeltaBinaryPacked
		w.int32s = w.int32s[:0]
		for _, v := range w.intsOf(c) {
			w.int32s = append(w.int32s, int32(v))
		}
		if w.packed, err = deltaInt.EncodeInt32(w.packed, w.int32s); err != nil {
			return err
		}
		body = append(body, w.packed...)
	case c.encoding == pqDeltaInt:
		enc = format.DeltaBinaryPacked
		if w.packed, err = deltaInt.EncodeInt64(w.packed, w.intsOf(c)); err != nil {
			return err
		}
		body = append(body, w.packed...)
	case c.encoding == pqDeltaBytes:
		enc = format.DeltaByteArray
		if body, err = w.appendDeltaByteArray(body, c); err != nil {
			return err
		}
	case c.encoding == pqDeltaLength:
		enc = format.DeltaLengthByteArray
		if w.packed, err = deltaLength.EncodeByteArray(w.packed, c.plain, c.offs); err != nil {
			return err
		}
		body = append(body, w.packed...)
	default:
		body = append(body, c.plain...)
	}
	w.body = body

	compressed, err := c.codec.Encode(w.packed, body)
	if err != nil {
		return fmt.Errorf("compress parquet page: %w", err)
	}
	w.packed = compressed
	h := format.PageHeader{
		Type:                 format.DataPage,
		UncompressedPageSize: int32(len(body)),
		CompressedPageSize:   int32(len(compressed)),
		CRC:                  int32(crc32.ChecksumIEEE(compressed)),
		DataPageHeader: thrift.New(format.DataPageHeader{
			NumValues:               int32(c.values),
			Encoding:                enc,
			DefinitionLevelEncoding: format.RLE,
			RepetitionLevelEncoding: format.RLE,
		}),
	}
	if w.header, err = thrift.Marshal(&w.proto, &h); err != nil {
		return err
	}
	c.locations = append(c.locations, format.PageLocation{
		Offset:             int64(len(c.pages)), // within the data pages until the chunk is placed
		CompressedPageSize: int32(len(w.header) + len(compressed)),
		FirstRowIndex:      c.firstRow,
	})
	c.pages = append(append(room(c.pages, len(w.header)+len(compressed)), w.header...), compressed...)
	c.uncompressed += int64(len(w.header) + len(body))
	c.usedEncodings[enc] = true
	if c.maxDef > 0 || c.maxRep > 0 {
		c.usedEncodings[format.RLE] = true
	}
	c.chunkValues += int64(c.values)
	c.chunkNulls += int64(c.nulls)
	if c.bounds {
		c.pageNullCounts = append(c.pageNullCounts, int64(c.nulls))
		c.pageAllNull = append(c.pageAllNull, !c.min.ok)
		c.pageMins = append(c.pageMins, bound{ok: c.min.ok, i: c.min.i, f: c.min.f, b: slices.Clone(c.min.b)})
		c.pageMaxs = append(c.pageMaxs, bound{ok: c.max.ok, i: c.max.i, f: c.max.f, b: slices.Clone(c.max.b)})
		if c.min.ok && (!c.chunkMin.ok || c.less(&c.min, &c.chunkMin)) {
			c.chunkMin = bound{ok: true, i: c.min.i, f: c.min.f, b: append(c.chunkMin.b[:0], c.min.b...)}
		}
		if c.max.ok && (!c.chunkMax.ok || c.less(&c.chunkMax, &c.max)) {
			c.chunkMax = bound{ok: true, i: c.max.i, f: c.max.f, b: append(c.chunkMax.b[:0], c.max.b...)}
		}
	}
	c.reps.reset()
	c.defs.reset()
	c.plain, c.idx, c.idx16 = c.plain[:0], c.idx[:0], c.idx16[:0]
	c.deltas, c.nInts, c.lastInt = c.deltas[:0], 0, 0
	c.prefixes, c.last, c.plainLen = c.prefixes[:0], c.last[:0], 0
	c.offs = append(c.offs[:0], 0)
	c.values, c.nulls, c.firstRow = 0, 0, w.rows
	c.min.ok, c.max.ok = false, false
	return nil
}

// intsOf decodes the values of c's page into the scratch.
func (w *pqWriter) intsOf(c *pqColumn) []int64 {
	w.int64s = w.int64s[:0]
	var v int64
	for b := c.deltas; len(b) > 0; {
		d, n := binary.Varint(b)
		if n <= 0 {
			break // cannot be: the column wrote them
		}
		v += d
		w.int64s = append(w.int64s, v)
		b = b[n:]
	}
	return w.int64s
}

// countingWriter counts the bytes written: the file's offsets.
type countingWriter struct {
	w   io.Writer
	off int64
}

func (cw *countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.off += int64(n)
	return n, err
}

const parquetMagic = "PAR1"

// flushRowGroup writes the row group's column chunks: each column's
// dictionary page, then its data pages.
func (w *pqWriter) flushRowGroup() error {
	if w.rows == 0 {
		return nil
	}
	defer w.giveBack(w.borrow())
	if w.out.off == 0 {
		if _, err := io.WriteString(&w.out, parquetMagic); err != nil {
			return err
		}
	}
	rg := format.RowGroup{NumRows: w.rows, FileOffset: w.out.off, Ordinal: int16(len(w.rowGroups))}
	var colIndexes [numColumns]*format.ColumnIndex
	var offIndexes [numColumns]format.OffsetIndex
	for i := range w.cols {
		c := &w.cols[i]
		if err := w.flushPage(c); err != nil {
			return err
		}
		md := format.ColumnMetaData{
			Type:         format.Type(c.kind),
			PathInSchema: c.path,
			Codec:        c.codec.CompressionCodec(),
			NumValues:    c.chunkValues,
		}
		start := w.out.off
		var compressedSize int64
		if c.encoding == pqDict && c.usedEncodings[format.RLEDictionary] {
			compressed, err := c.codec.Encode(w.packed, c.dict.plain)
			if err != nil {
				return fmt.Errorf("compress parquet dictionary page: %w", err)
			}
			w.packed = compressed
			h := format.PageHeader{
				Type:                 format.DictionaryPage,
				UncompressedPageSize: int32(len(c.dict.plain)),
				CompressedPageSize:   int32(len(compressed)),
				CRC:                  int32(crc32.ChecksumIEEE(compressed)),
				DictionaryPageHeader: thrift.New(format.DictionaryPageHeader{
					NumValues: int32(c.dict.len()),
					Encoding:  format.Plain,
				}),
			}
			if w.header, err = thrift.Marshal(&w.proto, &h); err != nil {
				return err
			}
			md.DictionaryPageOffset = start
			for _, b := range [][]byte{w.header, compressed} {
				if _, err := w.out.Write(b); err != nil {
					return err
				}
			}
			c.uncompressed += int64(len(w.header) + len(c.dict.plain))
			compressedSize += int64(len(w.header) + len(compressed))
			c.usedEncodings[format.Plain] = true
		}
		md.DataPageOffset = w.out.off
		if _, err := w.out.Write(c.pages); err != nil {
			return err
		}
		compressedSize += int64(len(c.pages))
		md.TotalCompressedSize = compressedSize
		md.TotalUncompressedSize = c.uncompressed
		for e, used := range c.usedEncodings {
			if used {
				md.Encoding = append(md.Encoding, format.Encoding(e))
			}
		}
		md.Statistics.NullCount = c.chunkNulls
		if c.chunkMin.ok {
			md.Statistics.MinValue = c.plainBytes(&c.chunkMin)
			md.Statistics.MaxValue = c.plainBytes(&c.chunkMax)
		}
		rg.Columns = append(rg.Columns, format.ColumnChunk{FileOffset: start, MetaData: md})
		rg.TotalByteSize += c.uncompressed
		rg.TotalCompressedSize += compressedSize

		locs := slices.Clone(c.locations)
		for j := range locs {
			locs[j].Offset += md.DataPageOffset
		}
		offIndexes[i] = format.OffsetIndex{PageLocations: locs}
		if c.bounds {
			colIndexes[i] = c.columnIndex()
		}
		c.resetChunk()
	}
	w.rowGroups = append(w.rowGroups, rg)
	w.colIndexes = append(w.colIndexes, colIndexes)
	w.offIndexes = append(w.offIndexes, offIndexes)
	w.rows = 0
	return nil
}

// columnIndex is the chunk's page bounds, byte arrays cut to
// columnIndexSizeLimit bytes as parquet-go cuts them.
func (c *pqColumn) columnIndex() *format.ColumnIndex {
	ci := &format.ColumnIndex{NullPages: slices.Clone(c.pageAllNull), NullCounts: slices.Clone(c.pageNullCounts)}
	asc, desc := true, true
	var prev int = -1
	for j := range c.pageMins {
		mn, mx := &c.pageMins[j], &c.pageMaxs[j]
		if !mn.ok {
			ci.MinValues = append(ci.MinValues, []byte{})
			ci.MaxValues = append(ci.MaxValues, []byte{})
			continue
		}
		minB, maxB := c.plainBytes(mn), c.plainBytes(mx)
		if c.kind == parquet.ByteArray && len(minB) > columnIndexSizeLimit {
			minB = minB[:columnIndexSizeLimit]
		}
		if c.kind == parquet.ByteArray && len(maxB) > columnIndexSizeLimit {
			maxB = incremented(maxB[:columnIndexSizeLimit])
		}
		ci.MinValues = append(ci.MinValues, minB)
		ci.MaxValues = append(ci.MaxValues, maxB)
		if prev >= 0 {
			pm, px := &c.pageMins[prev], &c.pageMaxs[prev]
			if c.less(mn, pm) || c.less(mx, px) {
				asc = false
			}
			if c.less(pm, mn) || c.less(px, mx) {
				desc = false
			}
		}
		prev = j
	}
	switch {
	case asc:
		ci.BoundaryOrder = format.Ascending
	case desc:
		ci.BoundaryOrder = format.Descending
	default:
		ci.BoundaryOrder = format.Unordered
	}
	return ci
}

// incremented is a cut max bound made an upper bound again: the last byte
// that does not overflow is incremented (parquet-go and parquet-java's rule).
func incremented(b []byte) []byte {
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			return b
		}
	}
	for i := range b {
		b[i] = 0xFF
	}
	return b
}

var errPQClosed = errors.New("parquet writer closed")

// close writes the last row group, the page indexes and the footer.
func (w *pqWriter) close() error {
	if w.out.w == nil {
		return errPQClosed
	}
	defer w.giveBack(w.borrow())
	if err := w.flushRowGroup(); err != nil {
		return err
	}
	if w.out.off == 0 {
		if _, err := io.WriteString(&w.out, parquetMagic); err != nil {
			return err
		}
	}
	var numRows int64
	for i := range w.rowGroups {
		numRows += w.rowGroups[i].NumRows
	}
	// Page indexes: the column indexes, then the offset indexes.
	for i := range w.rowGroups {
		for j, ci := range w.colIndexes[i] {
			if ci == nil {
				continue
			}
			b, err := thrift.Marshal(&w.proto, ci)
			if err != nil {
				return err
			}
			w.rowGroups[i].Columns[j].ColumnIndexOffset = w.out.off
			w.rowGroups[i].Columns[j].ColumnIndexLength = int32(len(b))
			if _, err := w.out.Write(b); err != nil {
				return err
			}
		}
	}
	for i := range w.rowGroups {
		for j := range w.offIndexes[i] {
			b, err := thrift.Marshal(&w.proto, &w.offIndexes[i][j])
			if err != nil {
				return err
			}
			w.rowGroups[i].Columns[j].OffsetIndexOffset = w.out.off
			w.rowGroups[i].Columns[j].OffsetIndexLength = int32(len(b))
			if _, err := w.out.Write(b); err != nil {
				return err
			}
		}
	}
	md := format.FileMetaData{
		Version:          2,
		Schema:           w.layout.schema,
		NumRows:          numRows,
		RowGroups:        w.rowGroups,
		KeyValueMetadata: w.layout.keyValueMetadata,
		CreatedBy:        w.layout.createdBy,
		ColumnOrders:     w.layout.columnOrders,
	}
	footer, err := thrift.Marshal(&w.proto, &md)
	if err != nil {
		return err
	}
	footer = binary.LittleEndian.AppendUint32(footer, uint32(len(footer)))
	footer = append(footer, parquetMagic...)
	if _, err := w.out.Write(footer); err != nil {
		return err
	}
	w.out.w = nil
	return nil
}
