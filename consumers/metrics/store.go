package metrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/leases"
)

// Store keeps the per-shard partial rows, the per-shard progress and the
// dimension index. DynamoStore is the real one; MemoryStore backs unit
// tests. Both pass the same contract suite.
//
// Rows are written by the shard's owner only and overwrite the previous
// version (never increment), conditional on the row's position not going
// backwards: a process that lost its lease and wakes up with stale state
// gets ErrStale instead of clobbering its successor's rows.
type Store interface {
	// LoadRows returns the stored rows among keys (missing ones are left
	// out), read consistently.
	LoadRows(ctx context.Context, keys []RowKey) ([]Row, error)
	// PutRows writes rows, each only if the stored row's Pos is not after
	// the new one; otherwise it fails with an error wrapping ErrStale (the
	// other rows may or may not be written). Rows with an empty Pos
	// (consumer_lag) are written unconditionally.
	PutRows(ctx context.Context, rows []Row) error
	// QueryRows returns the rows of one metric and group whose window
	// starts within [from, to), all shards, ordered by window.
	QueryRows(ctx context.Context, metric, dimsKey string, from, to time.Time) ([]Row, error)

	// PutDims records that a metric has a group (dimension values), so
	// queries without a complete dimension filter can find it. Entries
	// expire at expires.
	PutDims(ctx context.Context, metric string, dims []map[string]string, expires time.Time) error
	// ListDims returns the groups recorded for a metric.
	ListDims(ctx context.Context, metric string) ([]map[string]string, error)

	// LoadShard returns a shard's saved progress; ok is false when none.
	LoadShard(ctx context.Context, shardID string) (s ShardState, ok bool, err error)
	// SaveShard writes a shard's progress, under the same no-going-back
	// condition as PutRows.
	SaveShard(ctx context.Context, s ShardState) error
	// ListShards returns the progress of every shard.
	ListShards(ctx context.Context) ([]ShardState, error)
}

// ErrStale: a newer owner of the shard has written further than us.
var ErrStale = errors.New("metrics row written by a newer owner of the shard")

// RowKey names one partial row: (metric, group, window, shard).
type RowKey struct {
	Metric  string
	DimsKey string // canonical group, see DimsKey
	Window  time.Time
	Shard   string
}

// PK is the table's hash key: metric and group ("access#route=/api/x").
func (k RowKey) PK() string { return rowPK(k.Metric, k.DimsKey) }

// SK is the table's range key: window start and shard, sortable by window.
func (k RowKey) SK() string { return windowSK(k.Window) + "#" + k.Shard }

func (k RowKey) String() string { return k.PK() + " " + k.SK() }

func rowPK(metric, dimsKey string) string { return metric + "#" + dimsKey }

// windowFormat is minute precision, fixed width: lexical order is time order.
const windowFormat = "2006-01-02T15:04Z"

func windowSK(t time.Time) string { return t.UTC().Format(windowFormat) }

// Row is one stored partial: what one shard has aggregated for one metric,
// group and window, complete up to the shard position Pos.
type Row struct {
	RowKey
	Dims map[string]string
	// Pos is the sortable form (EncodePosition) of the last shard position
	// whose effect the row holds: replays skip records at or before it.
	Pos string
	// Open: the shard's watermark had not passed the window's end when the
	// row was written (Flush writes open windows; queries hide them).
	Open     bool
	Updated  time.Time
	Expires  time.Time
	Counts   map[string]int64
	Floats   map[string]float64
	Sketches map[string][]byte // DDSketch encodings by source
	Distinct map[string][]byte // HyperLogLog encodings by source
}

// Key returns the row's key.
func (r *Row) Key() RowKey { return r.RowKey }

// ShardState is a shard's saved progress: everything up to Pos is in the
// rows, and the watermark state as of Pos, so a replay makes the same
// lateness decisions as the first run.
type ShardState struct {
	Shard string
	// Pos is the sortable form of the position up to which every record's
	// effect (rows and dropped counts) is stored.
	Pos string
	// MaxEventTime is the largest (skew-capped) event time seen up to Pos.
	MaxEventTime time.Time
	// IdleWatermark is the watermark floor set from processing time while
	// the shard was idle at its tip.
	IdleWatermark time.Time
	// Dropped counts, per metric, events later than the allowed lateness.
	Dropped map[string]int64
	// MillisBehindLatest of the last batch, for the dashboard.
	MillisBehindLatest int64
	Updated            time.Time
	// Finished: the shard was read to its end.
	Finished bool
	// OpenRows are rows Flush wrote before their window was published
	// (graceful shutdown, end of a Lambda invocation): the next owner loads
	// them and rewrites them as published once its watermark passes, even
	// if no further record touches them.
	OpenRows []RowKey
}

// Position returns the decoded Pos.
func (s ShardState) Position() (consumers.Position, error) { return DecodePosition(s.Pos) }

// positionFormat is how metric rows store positions (leases.SortableFormat).
var positionFormat = leases.SortableFormat{Sep: '/', SubDigits: 20}

// EncodePosition renders a shard position so that string order is position
// order (DynamoDB compares strings bytewise in conditions). The zero
// Position encodes as "".
func EncodePosition(p consumers.Position) string {
	if p.IsZero() {
		return ""
	}
	return positionFormat.Encode(p)
}

// DecodePosition parses EncodePosition's output.
func DecodePosition(s string) (consumers.Position, error) {
	if s == "" {
		return consumers.Position{}, nil
	}
	return positionFormat.Decode(s)
}

// DimsKey renders a group canonically, in group-by order:
// "route=/api/items/:id" or "a=x&b=y". '%', '&', '=' and '#' in values are
// percent-escaped; the other bytes stay readable.
func DimsKey(groupBy []string, dims map[string]string) string {
	var b strings.Builder
	for i, g := range groupBy {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(g)
		b.WriteByte('=')
		escapeDim(&b, dims[g])
	}
	return b.String()
}

func escapeDim(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%', '&', '=', '#':
			fmt.Fprintf(b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
}

// windowStart is the start of the one-minute window holding t.
func windowStart(t time.Time) time.Time { return t.Truncate(time.Minute) }
