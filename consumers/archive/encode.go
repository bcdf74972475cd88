package archive

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	kzstd "github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/gzip"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/compress/uncompressed"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/clickstream-go/clickstream/internal/freelist"
)

// zstdCodec is parquet-go's zstd codec with encoders sized for Parquet
// pages. parquet-go's own creates encoders with zstd's default 8 MiB window
// and GOMAXPROCS-way concurrency, each holding ~16 MiB of history: the
// end-to-end benchmark's archive heap held 80 MiB of them (a quarter of
// it) during flushes. Each page is compressed on its own (EncodeAll), and
// what repeats in a column repeats nearby: a 128 KiB window compresses as
// well as a page-sized one (512 KiB, 256 KiB and 128 KiB all gave 16.85
// bytes an event on the benchmark corpus and 31.90-31.92 on the end-to-end
// traffic, BenchmarkEncode and BenchmarkEncodeLoadgen). With zstd's
// lower-memory mode an encoder's history is then 256 KiB instead of at
// least 1 MiB: 1.62 instead of 2.70 MB an encoder at the default level,
// 0.56 instead of 1.64 at the fastest, for no measurable CPU. The encoders
// of the files being encoded were a fifth of the archive's live heap at a
// flush.
type zstdCodec struct {
	zstd.Codec // CompressionCodec, String and Decode
	level      kzstd.EncoderLevel
	window     int
	encoders   freelist.List[*kzstd.Encoder] // kept across collections
}

func newZstdCodec(level kzstd.EncoderLevel, pageBytes int) *zstdCodec {
	w := kzstd.MinWindowSize
	for w < min(pageBytes, maxZstdWindow) && w < kzstd.MaxWindowSize {
		w <<= 1
	}
	return &zstdCodec{level: level, window: w, encoders: freelist.New[*kzstd.Encoder](runtime.GOMAXPROCS(0))}
}

// maxZstdWindow is the largest window of the page codecs (see zstdCodec).
const maxZstdWindow = 128 << 10

func (c *zstdCodec) Encode(dst, src []byte) ([]byte, error) {
	e, ok := c.encoders.Get()
	if !ok {
		var err error
		e, err = kzstd.NewWriter(nil, kzstd.WithEncoderLevel(c.level), kzstd.WithEncoderConcurrency(1),
			kzstd.WithWindowSize(c.window), kzstd.WithZeroFrames(true), kzstd.WithEncoderCRC(false),
			kzstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, fmt.Errorf("zstd encoder: %w", err)
		}
	}
	defer c.encoders.Put(e)
	return e.EncodeAll(src, dst[:0]), nil
}

// Compression codecs accepted in Config.Compression.
const (
	CompressionZstd   = "zstd"
	CompressionSnappy = "snappy"
	CompressionGzip   = "gzip"
	CompressionNone   = "none"
)

// codecs are the page codecs of a file: one for most columns, and those of
// the id and sequence_number columns and of fastCols, which differ by how
// they compress. They say the same codec in the files.
type codecs struct {
	file, ids, seqs compress.Codec
	// fast compresses the columns of fastCols.
	fast compress.Codec
}

// fastCols are the columns whose pages zstd's fastest level compresses to
// within 0.025 bytes an event of its default level (or smaller) on both the
// benchmark corpus and the end-to-end traffic: DELTA-encoded integers and
// timestamps, dictionary indexes. Measured on 100k-event files, bytes an
// event at the default and the fastest level:
//
//	column               corpus          traffic
//	ts                   3.549  3.549    1.303  1.309
//	user_id              0.738  0.738    1.538  1.559
//	session_id           0.343  0.343    1.515  1.539
//	item_id              0.765  0.765    1.385  1.388
//	position             0.356  0.353    0.527  0.547
//	status               0.242  0.251    0.230  0.243
//	bytes                0.731  0.722    0.877  0.752
//	received_at          1.651  1.651    -      -
//	sub_sequence_number  0.220  0.232    0.220  0.241
//	arrival_ts           0.792  0.792    0.790  0.789
//
// Together ~33 ns of the ~440 an event of the traffic took to compress,
// for files 0.01 bytes an event larger on the corpus (16.86) and 0.02
// smaller on the traffic. Feature and attribute names, URIs and request
// times lost up to 0.27 bytes an event on one or the other at the fastest
// level, and stay at the default.
var fastCols = []int{colTS, colUserID, colSessionID, colItemID, colPosition, colStatus, colBytes,
	colReceivedAt, colSubSequenceNumber, colArrivalTS}

// codecsFor returns the page codecs of compression name.
func codecsFor(name string, pageBytes int) (codecs, error) {
	var file compress.Codec
	switch strings.ToLower(name) {
	case "", CompressionZstd:
		// zstd's default level. Measured on 100k-row files (BenchmarkEncode,
		// BenchmarkEncodeLoadgen): "better" makes files 5% smaller (16.2
		// vs 17.0 bytes/event; 32.1 vs 32.9 on the end-to-end traffic) for
		// 4-25% more encoding CPU; "fastest" saves another 5-15% for files
		// 3-8% larger. With delta-encoded timestamps and sequence numbers
		// the default level is as small as "better" was without them.
		//
		// Except for event ids: ULIDs (what the collector and the SDKs
		// assign) are 16 random characters after a time prefix, which zstd
		// can only entropy-code. The default level searched them for matches
		// in vain: half of all compression time on the end-to-end traffic,
		// for 12.5 bytes an id; "fastest" takes 58% less time for 11.9
		// bytes (2% more on the benchmark corpus, whose ids are counters).
		//
		// And sequence numbers, random digits to zstd: Huffman-coded
		// literals without matches (literalsCodec).
		fastest := newZstdCodec(kzstd.SpeedFastest, pageBytes)
		return codecs{file: newZstdCodec(kzstd.SpeedDefault, pageBytes), ids: fastest, seqs: newLiteralsCodec(fastest), fast: fastest}, nil
	case CompressionSnappy:
		file = &snappy.Codec{}
	case CompressionGzip:
		file = &gzip.Codec{Level: gzip.DefaultCompression}
	case CompressionNone, "uncompressed":
		file = &uncompressed.Codec{}
	default:
		return codecs{}, fmt.Errorf("unknown compression %q (want zstd, snappy, gzip or none)", name)
	}
	return codecs{file, file, file, file}, nil
}

// encoder turns rows into Parquet files. Writers are pooled: they hold
// per-column buffers that are worth reusing across flushes.
type encoder struct {
	// layout is the file layout pqWriter writes; nil when parquet-go's
	// GenericWriter writes the files (a Bloom filter is configured).
	layout *pqLayout
	pool   sync.Pool // *pqWriter, or *parquet.GenericWriter[Row] without a layout
	opts   []parquet.WriterOption
	// ratio is the size of the last big file per byte of its events'
	// JSON, ratioOne being 1: what fileSize sizes buffers from.
	ratio atomic.Uint32
	// slots bounds the files encoded at once, process-wide, to the CPUs:
	// encoding is CPU work, so more at once only adds memory (each holds
	// a writer's page buffers, a zstd encoder's tables and the file), and
	// at a flush every shard's partitions were encoded together: 12 at
	// once took the archive of a 4-shard stream from 130 to 272 MiB.
	slots chan struct{}
}

func newEncoder(cfg Config) (*encoder, error) {
	cs, err := codecsFor(cfg.Compression, cfg.PageBytes)
	if err != nil {
		return nil, err
	}
	opts := []parquet.WriterOption{
		parquet.Compression(cs.file),
		// Data page v1 is what every reader handles (Athena/Hive, older
		// Spark and Presto included); v2 buys nothing measurable here.
		parquet.DataPageVersion(1),
		parquet.PageBufferSize(cfg.PageBytes),
		parquet.MaxRowsPerRowGroup(cfg.RowGroupRows),
		parquet.DictionaryMaxBytes(dictionaryMaxBytes),
		parquet.CreatedBy("clickstream archive", "1", ""),
		parquet.KeyValueMetadata("clickstream.schema", "events/v1"),
	}
	for _, col := range noPageBounds {
		opts = append(opts, parquet.SkipPageBounds(col...))
	}
	if cfg.BloomFilterUserID {
		opts = append(opts, parquet.BloomFilters(parquet.SplitBlockFilter(10, "user_id")))
	}
	// Validate the options once, so a bad config fails New, not a flush.
	if _, err := parquet.NewWriterConfig(opts...); err != nil {
		return nil, fmt.Errorf("parquet writer config: %w", err)
	}
	e := &encoder{opts: opts, slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
	if !cfg.BloomFilterUserID {
		if e.layout, err = newPQLayout(opts, cs, cfg.PageBytes, cfg.RowGroupRows, dictionaryMaxBytes); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// dictionaryMaxBytes: a dictionary that grows past 1 MiB (unique user
// agents, item ids) stops paying; the column falls back to PLAIN for the
// rest of the row group.
const dictionaryMaxBytes = 1 << 20

// noPageBounds are the columns whose min/max no query prunes on:
// identifiers, free text and the extra JSON. They have neither page bounds
// (the column index) nor row-group min/max, only null counts. Computing
// them took ~7% of encoding.
var noPageBounds = [][]string{
	{"id"}, {"session_id"}, {"uri"}, {"user_agent"}, {"extra"}, {"sequence_number"},
	{"features", "key_value", "key"}, {"features", "key_value", "value"},
	{"attrs", "key_value", "key"}, {"attrs", "key_value", "value"},
}

const writeChunk = 1024

// rowSource yields rows from..from+n of a file (n ≤ writeChunk); the slice
// is only read until the next call, so a source may reuse one buffer and a
// file's rows need never be decoded all at once.
type rowSource func(from, n int) ([]Row, error)

func sliceSource(rows []Row) rowSource {
	return func(from, n int) ([]Row, error) { return rows[from : from+n], nil }
}

// encodeFrom writes the n rows of src as one Parquet file to w.
func (e *encoder) encodeFrom(w io.Writer, n int, src rowSource) error {
	e.slots <- struct{}{}
	defer func() { <-e.slots }()
	if e.layout == nil {
		return e.encodeGeneric(w, n, src)
	}
	pw := e.writer(w)
	for from := 0; from < n; {
		rows, err := src(from, min(n-from, writeChunk))
		if err != nil {
			return err
		}
		from += len(rows)
		if err := pw.write(rows); err != nil {
			return fmt.Errorf("write parquet rows: %w", err)
		}
	}
	if err := pw.close(); err != nil {
		return fmt.Errorf("close parquet file: %w", err)
	}
	e.pool.Put(pw)
	return nil
}

// encodePart returns a partition's Parquet file. With the archive's own
// writer the rows are in the file already: it cuts the last pages and
// writes the footer, into a buffer grown once to the size the files before
// it suggest (fileSize). parquet-go's writer reads the buffered rows back
// into Rows, a chunk at a time (all of a big partition's at once would be
// ~1 KB per event again, at the moment every shard flushes).
func (e *encoder) encodePart(pb *partBuf, shardID string) ([]byte, error) {
	if e.layout == nil {
		rows, release := pb.rows(shardID)
		defer release()
		out, err := e.encodeFromBytes(pb.n, rows, e.fileSize(pb.raw))
		if err != nil {
			return nil, err
		}
		e.observe(pb.raw, len(out))
		return out, nil
	}
	if pb.drained || pb.w == nil {
		return nil, errDrained
	}
	pb.drained = true
	e.slots <- struct{}{}
	defer func() { <-e.slots }()
	pw := pb.w
	pb.w = nil
	pb.file.Grow(e.fileSize(pb.raw))
	if err := pw.close(); err != nil {
		return nil, fmt.Errorf("close parquet file: %w", err)
	}
	pb.done = pw // for the partition's next file (shardProc.keepWriters)
	e.observe(pb.raw, pb.file.Len())
	return pb.file.Bytes(), nil
}

// fileSize guesses the size of the file of raw bytes of events: the last
// big file's ratio, plus an eighth. A buffer that must grow is copied, and
// held twice while it is (at a flush, when every shard encodes): a fixed
// 1/8 of the raw JSON fitted the benchmark corpus (1/20) but not the
// end-to-end traffic's random ids (~1/7.5), whose files all grew.
func (e *encoder) fileSize(raw int64) int {
	r := int64(e.ratio.Load())
	if r == 0 {
		r = ratioOne / 8
	}
	return int(raw*r/ratioOne*9/8) + 4096
}

// observe records the ratio of a file of at least 256 KiB of events (the
// footer makes small ones look poorly compressed), within 1/64 and 1/2.
func (e *encoder) observe(raw int64, size int) {
	if raw >= 256<<10 {
		e.ratio.Store(uint32(min(max(int64(size)*ratioOne/raw, ratioOne/64), ratioOne/2)))
	}
}

// ratioOne is a file-to-raw ratio of 1 in encoder.ratio's fixed point.
const ratioOne = 1 << 16

// writer is a pooled pqWriter, writing a new file to w.
func (e *encoder) writer(w io.Writer) *pqWriter {
	pw, _ := e.pool.Get().(*pqWriter)
	if pw == nil {
		pw = newPQWriter(e.layout)
	}
	pw.reset(w)
	return pw
}

// withMaps returns rows, copied with their features and attrs lists as
// the maps parquet-go writes when any row has lists. (The buffered rows
// parquet-go's files are made of are read back with maps: only Rows given
// whole, such as RowOf's, can have lists.)
func withMaps(rows []Row) []Row {
	if !slices.ContainsFunc(rows, func(r Row) bool { return r.featureList != nil || r.attrList != nil }) {
		return rows
	}
	out := slices.Clone(rows)
	for i := range out {
		r := &out[i]
		if r.featureList != nil {
			r.Features = make(map[string]float64, len(r.featureList))
			for _, f := range r.featureList {
				r.Features[f.Name] = f.Value
			}
		}
		if r.attrList != nil {
			r.Attrs = make(map[string]string, len(r.attrList))
			for _, a := range r.attrList {
				r.Attrs[a.Name] = a.Value
			}
		}
		r.featureList, r.attrList = nil, nil
	}
	return out
}

// encodeGeneric is encodeFrom with parquet-go's GenericWriter.
func (e *encoder) encodeGeneric(w io.Writer, n int, src rowSource) error {
	pw, _ := e.pool.Get().(*parquet.GenericWriter[Row])
	if pw == nil {
		pw = parquet.NewGenericWriter[Row](w, e.opts...)
	} else {
		pw.Reset(w)
	}
	// parquet-go sizes per-call scratch buffers (null bitmaps, map entry
	// arrays) by the rows of each Write; 4096-row slices kept them in cache
	// and nearly doubled throughput over one 100k-row call (BenchmarkEncode);
	// 1024 rows are as fast and hold a quarter of the memory (the chunk of
	// Rows and their maps).
	for from := 0; from < n; {
		rows, err := src(from, min(n-from, writeChunk))
		if err != nil {
			return err
		}
		from += len(rows)
		rows = withMaps(rows)
		for len(rows) > 0 {
			k, err := pw.Write(rows)
			if err != nil {
				return fmt.Errorf("write parquet rows: %w", err)
			}
			rows = rows[k:]
		}
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("close parquet file: %w", err)
	}
	e.pool.Put(pw)
	return nil
}

// encodeBytes encodes rows into a fresh buffer sized from a guess.
func (e *encoder) encodeBytes(rows []Row, sizeHint int) ([]byte, error) {
	return e.encodeFromBytes(len(rows), sliceSource(rows), sizeHint)
}

// encodeFromBytes is encodeFrom into a fresh buffer sized from a guess.
func (e *encoder) encodeFromBytes(n int, src rowSource, sizeHint int) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(sizeHint)
	if err := e.encodeFrom(&buf, n, src); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
