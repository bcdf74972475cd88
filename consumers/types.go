package consumers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/event"
)

// Position is a place in a shard: a sequence number plus the sub-sequence
// (the index of a user record within a KPL aggregate; 0 otherwise). The zero
// Position means "before the first record". Positions compare numerically.
type Position = leases.Position

// Record is one user record from a shard: a decoded event, or a bad record
// with the reason it is bad.
type Record struct {
	Position
	ShardID         string
	PartitionKey    string
	ExplicitHashKey string    // "" unless the producer set one (KPL sub-records)
	ArrivalTime     time.Time // when Kinesis accepted the (aggregate) record
	Data            []byte    // raw user-record bytes; aliases the read buffer, never modified
	// Event is the decoded event. Its strings point into Data, and so into
	// the buffer a whole GetRecords answer shares: strings.Clone what is
	// kept beyond the batch, or each string kept keeps that buffer alive.
	Event event.Event
	// Err says why the record is bad (an *event.Error, a KPL corruption
	// wrapping kpl.ErrCorrupt, ...); nil when Event is valid. Bad records are
	// handed to the processor too (so positions stay contiguous) and written
	// to the dead-letter sink by the runtime before Process is called.
	Err error
	// Aggregated: the record came out of a KPL aggregate.
	Aggregated bool
	// OutOfRange: a sub-record whose hash key lies outside the shard's range
	// (the producer's shard map was stale). It is processed like any other
	// and counted; KCL silently drops these.
	OutOfRange bool
	// Duplicate: a valid event whose id the runtime has already handed on
	// this shard (a retried PutRecords wrote it twice; see DedupWindow).
	// It is handed so positions stay contiguous; processors skip it.
	Duplicate bool
}

// Applies reports whether the record is a valid event to apply: not bad,
// not a duplicate.
func (r *Record) Applies() bool { return r.Err == nil && !r.Duplicate }

// Batch is the next run of records from one shard, in order.
type Batch struct {
	ShardID string
	// Records may be empty: the runtime also calls Process on idle polls so
	// processors can flush by age and advance watermarks. The slice is the
	// runtime's and is reused once Process returns: keep Records by value
	// (their events, strings and Data stay valid), not the slice or
	// pointers into it.
	Records            []Record
	MillisBehindLatest int64     // how far the read is behind the tip of the shard (0 in Lambda)
	Now                time.Time // processing time, from the runtime's clock
	// ShardEnd: the shard is closed and this batch holds its last records;
	// the runtime calls Flush next, checkpoints the shard as finished and
	// only then lets its children start.
	ShardEnd bool
}

// EventMapsReleaser is implemented by a ShardProcessor that keeps none of
// its batches' Event.Features and Event.Attrs maps once Process returns
// (what it keeps of them, it copies). The long-running runtime then decodes
// later events into those maps instead of making new ones: making and
// growing two small maps per impression was ~12% of decoding it and most
// of the bytes decoding allocated. Without it, every event's maps are its
// own.
type EventMapsReleaser interface {
	ShardProcessor
	// ReleasesEventMaps is a marker; it is never called.
	ReleasesEventMaps()
}

// EventListsReader is implemented by a ShardProcessor that reads each
// event's features and attrs as Event.FeatureList and AttrList (in name
// order) and keeps none of them once Process returns (what it keeps, it
// copies). The long-running runtime then decodes them into lists instead
// of the maps, which stay nil, and reuses the lists' memory for later
// batches: filling a map per object, walking it and sorting its names
// was ~8% of archiving an event. The Lambda adapter decodes maps for every
// processor.
type EventListsReader interface {
	ShardProcessor
	// ReadsEventLists is a marker; it is never called.
	ReadsEventLists()
}

// RecordDataReleaser is implemented by a ShardProcessor that keeps nothing
// of its batches' records' Data once Process returns: not the Data, not
// the strings of their events (which point into it), not a bad record's
// Err (what it keeps of them, it copies). Reading by polling with a
// kinesiswire client, the runtime then decodes each GetRecords answer into
// memory an earlier answer was decoded into (kinesiswire.DecodeInto; a
// process keeps a few such, shared by its shards) instead of new memory:
// the answers' data, record slots and strings were ~30% of the bytes an
// archive process allocated. A record's Position, PartitionKey
// and other strings are its own either way. Without it, every answer's
// memory is its own.
type RecordDataReleaser interface {
	ShardProcessor
	// ReleasesRecordData is a marker; it is never called.
	ReleasesRecordData()
}

// BatchLimiter is implemented by a ShardProcessor that takes the records of
// one read in batches of at most MaxBatchRecords user records (an aggregate
// is never split, so a batch may hold one aggregate's more). A GetRecords
// answer holds up to 10,000 Kinesis records, and more user records when
// they are aggregated; decoded all at once, each shard holds ~500 bytes a
// record and its events' maps until the processor returns. A processor
// that only copies what it keeps (the archive) loses nothing by taking
// them in small batches, and the shard holds one small batch instead.
// Without it, a batch is a whole answer (polling) or event (fan-out):
// processors that merge work within a batch (the vectors' writes per
// user) see all of it.
type BatchLimiter interface {
	ShardProcessor
	MaxBatchRecords() int
}

// Last returns the position of the last record, or the zero Position.
func (b Batch) Last() Position {
	if len(b.Records) == 0 {
		return Position{}
	}
	return b.Records[len(b.Records)-1].Position
}

// ShardProcessor handles one shard's records in order. The runtime creates
// one per lease with Processor.OpenShard and calls it from one goroutine.
type ShardProcessor interface {
	// Process handles the next batch and returns the position up to which
	// the effects of ALL records handed so far are durable (the zero Position
	// when nothing new is durable); the runtime checkpoints there.
	// Non-buffering processors return b.Last(). An error makes the runtime
	// Close this processor and replay from the checkpoint; a *BatchError
	// additionally declares the records before its Index durable.
	Process(ctx context.Context, b Batch) (Position, error)
	// Flush makes everything handed so far durable and returns that
	// position (at shard end, graceful shutdown and the end of a Lambda
	// invocation).
	Flush(ctx context.Context) (Position, error)
	// Close drops unflushed state without flushing: the lease was lost, or
	// Process failed; the next owner replays from the checkpoint.
	Close()
}

// Processor is an application on the stream: archive, vectors, metrics.
type Processor interface {
	// Name is the application name: the lease namespace, so two processors
	// with the same name share (split) the shards, and different names each
	// read every shard.
	Name() string
	// OpenShard starts processing a shard from s.Checkpoint.
	OpenShard(ctx context.Context, s Shard) (ShardProcessor, error)
}

// Shard describes the shard a ShardProcessor is opened for.
type Shard struct {
	ID      string
	Parents []string // parent shard ids, all read to the end before this one starts
	// HashKeyRange is the shard's hash key range; zero when unknown (Lambda).
	HashKeyRange HashKeyRange
	// Checkpoint is the last durable position; zero means the shard is read
	// from its start (TRIM_HORIZON). Records at or before it are never handed.
	Checkpoint Position
	// State is small per-shard state kept next to the checkpoint with the
	// same lease fencing.
	State StateStore
}

// StateStore lets a processor keep small per-shard state (up to a few
// hundred KiB; DynamoDB items are at most 400 KB) next to the checkpoint.
// Archive records its pending flush there before uploading (docs/DESIGN.md
// §4.4).
type StateStore interface {
	// Load returns the state last saved for the shard; nil when none.
	Load(ctx context.Context) ([]byte, error)
	// Save replaces the state; nil or empty removes it. In the long-running
	// runtime Save also writes any durable position not yet checkpointed, in
	// the same conditional write, so saved state is never newer than the
	// checkpoint it depends on. It fails with an error wrapping
	// leases.ErrLeaseLost when this process no longer holds the shard.
	Save(ctx context.Context, state []byte) error
}

// Sentinel errors.
var (
	// ErrNoStateStore: the host (Lambda without a configured store) keeps no per-shard state.
	ErrNoStateStore = errors.New("no per-shard state store in this host")
	// ErrLeaseLost: this process no longer holds the shard's lease.
	ErrLeaseLost = leases.ErrLeaseLost
)

// BatchError names the first record of a batch that failed: the records
// before Index are durable (a buffering processor must make them so before
// returning it), Index and later are not.
type BatchError struct {
	Index int
	Err   error
}

func (e *BatchError) Error() string { return fmt.Sprintf("record %d: %v", e.Index, e.Err) }
func (e *BatchError) Unwrap() error { return e.Err }

// ProcessorFunc processes a batch and returns only when its effect is
// durable; an error (a *BatchError naming the first failed record, or any
// other meaning "none of the batch") makes the runtime retry from the
// checkpoint.
type ProcessorFunc func(ctx context.Context, b Batch) error

// SimpleProcessor adapts a durable-on-return function into a Processor named
// name: each successful call checkpoints the batch's last record.
func SimpleProcessor(name string, fn ProcessorFunc) Processor {
	return simpleProcessor{name: name, fn: fn}
}

type simpleProcessor struct {
	name string
	fn   ProcessorFunc
}

func (p simpleProcessor) Name() string { return p.name }

func (p simpleProcessor) OpenShard(ctx context.Context, s Shard) (ShardProcessor, error) {
	return &simpleShard{fn: p.fn, last: s.Checkpoint}, nil
}

type simpleShard struct {
	fn   ProcessorFunc
	last Position // last durable position
}

func (s *simpleShard) Process(ctx context.Context, b Batch) (Position, error) {
	if err := s.fn(ctx, b); err != nil {
		var be *BatchError
		if errors.As(err, &be) && be.Index > 0 && be.Index <= len(b.Records) {
			s.last = b.Records[be.Index-1].Position
			return s.last, err
		}
		return Position{}, err
	}
	if len(b.Records) == 0 {
		return Position{}, nil
	}
	s.last = b.Last()
	return s.last, nil
}

func (s *simpleShard) Flush(ctx context.Context) (Position, error) { return s.last, nil }
func (s *simpleShard) Close()                                      {}
