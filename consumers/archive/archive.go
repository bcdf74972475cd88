package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/internal/setup"
)

// Name is the archive's application name (its lease namespace).
const Name = "archive"

// Config configures the archive. Zero fields take the documented defaults;
// `clickstream consume archive` maps its flags onto it.
type Config struct {
	// Bucket receives the archive. Default "clickstream-archive".
	Bucket string
	// Prefix is prepended to every key (PREFIX/events/..., and the runtime's
	// dead letters go to PREFIX/errors/...). Default "" (bucket root).
	Prefix string

	// MaxAge is the longest a record waits in the buffer: when the oldest
	// buffered record of a shard is this old (processing time), the shard
	// flushes. It bounds how stale the archive is. Default 60s; a few
	// seconds is fine for demos (smaller files).
	MaxAge time.Duration
	// FlushBytes flushes a shard when one of its partitions holds this many
	// bytes of raw events (uncompressed JSON; Parquet with zstd is typically
	// 5-10x smaller). Default 64 MiB.
	FlushBytes int64
	// FlushRows flushes a shard when one of its partitions holds this many
	// rows. Default 500,000.
	FlushRows int
	// MaxPartitions flushes a shard before it opens more partitions than
	// this (late data, many event types), which bounds the per-shard state
	// (the pending object keys). Default 256.
	MaxPartitions int
	// MemoryBudget bounds the estimated memory of all buffered rows of this
	// Archive (all its shards): when it is exceeded, the shard holding more
	// than its fair share flushes. Default 128 MiB. Rows are written into
	// their partition's Parquet file as they arrive: a partition's file
	// holds its compressed pages (~40 bytes an event of ~300-byte events)
	// and its open pages (~140 bytes an event until a column's page fills;
	// at most openPagesBytes a file), so the budget holds ~1,000,000 to
	// 3,000,000 events. The estimate is the heap the files hold, buffers at
	// their capacity. `clickstream consume` keeps the Go runtime's soft
	// memory limit a reserve above it (--memory-limit), so the process's
	// RSS follows what it buffers instead of reaching twice its heap.
	MemoryBudget int64

	// Compression is the Parquet codec: "zstd" (default), "snappy", "gzip"
	// or "none".
	Compression string
	// RowGroupRows caps the rows of one Parquet row group. Default
	// 1,000,000 (so a file is usually one row group, as Athena likes).
	RowGroupRows int64
	// PageBytes is the target uncompressed size of a Parquet data page.
	// Default 512 KiB: a file being encoded holds up to a page per column
	// uncompressed, and a zstd window of a page per encoder; 1 MiB pages
	// made files no smaller (16.66 against 16.61 bytes an event on
	// BenchmarkEncode's corpus, 1% smaller on the end-to-end traffic).
	PageBytes int
	// BloomFilterUserID adds a Parquet bloom filter on user_id (about 10
	// bits per distinct user per row group) so engines that read them
	// (Trino/Athena, Spark, DuckDB) skip row groups when filtering on one
	// user. Default false.
	BloomFilterUserID bool

	// PartSize is the multipart threshold and part size of uploads: objects
	// up to it are one PutObject, larger ones a multipart upload. Minimum
	// (and default) 8 MiB; S3's minimum part size is 5 MiB.
	PartSize int64
	// PartConcurrency is the number of parts of one object uploaded in
	// parallel. Default 4.
	PartConcurrency int
	// UploadConcurrency is the number of objects of one flush encoded and
	// uploaded in parallel. Default 4.
	UploadConcurrency int
	// UploadAttempts is how many times an object upload is tried before the
	// flush fails (each attempt also has the SDK's own request retries).
	// Default 5.
	UploadAttempts int

	// Logger receives structured logs. Default: discard.
	Logger *slog.Logger
	// Registerer receives the Prometheus metrics. Default nil: no metrics.
	Registerer prometheus.Registerer
	// Now is the clock used when a batch carries no processing time.
	// Default time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultMaxAge            = 60 * time.Second
	DefaultFlushBytes        = 64 << 20
	DefaultFlushRows         = 500_000
	DefaultMaxPartitions     = 256
	DefaultMemoryBudget      = 128 << 20
	DefaultRowGroupRows      = 1_000_000
	DefaultPageBytes         = 512 << 10
	DefaultPartSize          = 8 << 20
	MinPartSize              = 5 << 20
	DefaultPartConcurrency   = 4
	DefaultUploadConcurrency = 4
	DefaultUploadAttempts    = 5
)

func (c Config) withDefaults() (Config, error) {
	if c.Bucket == "" {
		c.Bucket = setup.DefaultBucket
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def64 := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	def64(&c.FlushBytes, DefaultFlushBytes)
	def(&c.FlushRows, DefaultFlushRows)
	def(&c.MaxPartitions, DefaultMaxPartitions)
	def64(&c.MemoryBudget, DefaultMemoryBudget)
	def64(&c.RowGroupRows, DefaultRowGroupRows)
	def(&c.PageBytes, DefaultPageBytes)
	def64(&c.PartSize, DefaultPartSize)
	if c.PartSize < MinPartSize {
		return c, fmt.Errorf("archive: PartSize %d is below S3's minimum part size %d", c.PartSize, MinPartSize)
	}
	def(&c.PartConcurrency, DefaultPartConcurrency)
	def(&c.UploadConcurrency, DefaultUploadConcurrency)
	def(&c.UploadAttempts, DefaultUploadAttempts)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Archive is the archive processor (a consumers.Processor): it buffers each
// shard's events per partition and writes them to S3 as Parquet. Use one
// Archive per process; it is safe for the runtime's concurrent shards.
type Archive struct {
	cfg   Config
	store objectStore
	enc   *encoder
	m     *metrics
	log   *slog.Logger

	buffered atomic.Int64 // estimated bytes of buffered rows, all shards
	open     atomic.Int64 // shard processors open
}

var _ consumers.Processor = (*Archive)(nil)

// bufferedInProcess is the estimated heap of every Archive's buffered rows
// in this process: what BufferedBytes reports.
var bufferedInProcess atomic.Int64

// BufferedBytes is the estimated heap the buffered rows of every Archive in
// this process hold (their files being written, or their buffered form):
// the part of an archive process's heap that grows and shrinks with its
// flushes. `clickstream consume` sets the Go runtime's soft memory limit
// from it.
func BufferedBytes() int64 { return bufferedInProcess.Load() }

// New returns an archive writing to S3 with client (an *s3.Client).
func New(client S3API, cfg Config) (*Archive, error) {
	if client == nil {
		return nil, errors.New("archive: S3 client is required")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("archive: register metrics: %w", err)
	}
	return newArchive(newS3Store(client, cfg, m), cfg, m)
}

func newArchive(store objectStore, cfg Config, m *metrics) (*Archive, error) {
	enc, err := newEncoder(cfg)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return &Archive{cfg: cfg, store: store, enc: enc, m: m, log: cfg.Logger.With(slog.String("app", Name))}, nil
}

// Name implements consumers.Processor.
func (a *Archive) Name() string { return Name }

// Config returns the configuration in effect (defaults filled in).
func (a *Archive) Config() Config { return a.cfg }

// OpenShard implements consumers.Processor: it loads the shard's archive
// state and, when a flush was interrupted, prepares to redo it (and aborts
// its unfinished multipart uploads).
func (a *Archive) OpenShard(ctx context.Context, s consumers.Shard) (consumers.ShardProcessor, error) {
	sp := &shardProc{
		a: a, id: s.ID, states: s.State,
		durable: s.Checkpoint, lastSeen: s.Checkpoint,
		parts: map[partKey]*partBuf{},
		log:   a.log.With(slog.String("shard", s.ID)),
	}
	if s.State != nil {
		b, err := s.State.Load(ctx)
		switch {
		case errors.Is(err, consumers.ErrNoStateStore):
			sp.states = nil
		case err != nil:
			return nil, fmt.Errorf("archive: load state of shard %s: %w", s.ID, err)
		default:
			st, err := unmarshalState(b)
			if err != nil {
				return nil, fmt.Errorf("archive: shard %s: %w", s.ID, err)
			}
			sp.written, sp.pending = st.Written, st.Pending
		}
	}
	if sp.states == nil {
		sp.log.Warn("no per-shard state store: a flush interrupted by a crash may leave duplicate rows")
	}
	if p := sp.pending; p != nil {
		if !p.To.After(s.Checkpoint) {
			// Cannot happen with this runtime (the checkpoint only passes a
			// flush after its state is cleared); a store written by other
			// code might. The range will not be replayed, so there is
			// nothing to redo.
			sp.log.Warn("pending flush at or before the checkpoint; dropping it",
				slog.String("to", p.To.String()), slog.String("checkpoint", s.Checkpoint.String()))
			sp.pending = nil
		} else {
			sp.log.Info("redoing interrupted flush", slog.String("after", sp.written.String()),
				slog.String("to", p.To.String()), slog.Int("objects", len(p.Keys)))
			for _, k := range p.Keys {
				if err := a.store.AbortUploads(ctx, k); err != nil {
					// Harmless to go on: the redo overwrites the object, and
					// an S3 lifecycle rule (AbortIncompleteMultipartUpload)
					// is the backstop for the invisible parts.
					sp.log.Warn("abort unfinished uploads", slog.String("key", k), slog.Any("err", err))
				}
			}
		}
	}
	a.open.Add(1)
	a.m.openShards.Inc()
	return sp, nil
}

// Help explains the archive for `clickstream consume archive --help` and
// `clickstream archive --help`.
const Help = `The archive writes every valid event to S3 as Parquet:

  s3://BUCKET/PREFIX/events/type=T/dt=YYYY-MM-DD/hour=HH/SHARD_FIRST_LAST.parquet

partitioned by event type and event-time hour (UTC), zstd-compressed, with
typed columns (ts and arrival_ts as TIMESTAMP(MILLIS, UTC), features and attrs
as maps, unknown fields as JSON in "extra"), readable by Athena, Spark,
BigQuery and DuckDB. Bad records go to PREFIX/errors/ with their reason.

Each shard buffers events and flushes all of its partitions when the oldest
buffered event is --max-age old (default 60s), when a partition holds
--flush-bytes of raw events (64 MiB) or --flush-rows rows (500000), when the
process's buffers exceed --archive-memory-budget (128 MiB), and on shutdown. Smaller
values mean fresher data and smaller files.

Exactly once: before uploading, a flush records its range and object names
next to the shard's checkpoint; object names derive from the records they
hold. A process killed at any point is replaced by one that redoes exactly
that flush under the same names, so replays overwrite instead of adding rows.

  clickstream archive ls     partitions with files and bytes
  clickstream archive stats  the same plus row counts (read from Parquet
                             footers) and the number of dead letters`
