package archive

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/parquet-go/parquet-go"

	"github.com/clickstream-go/clickstream/consumers"
)

// CompactAPI is the part of the S3 client Compact uses.
type CompactAPI interface {
	InventoryAPI
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObjects(context.Context, *s3.DeleteObjectsInput, ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
}

var _ CompactAPI = (*s3.Client)(nil)

// Compaction defaults.
const (
	DefaultCompactSmallBytes  = 32 << 20
	DefaultCompactTargetBytes = 256 << 20
	DefaultCompactMinAge      = 2 * time.Hour
)

// CompactOptions selects what Compact merges.
type CompactOptions struct {
	Bucket, Prefix string
	// Hour is the event-time hour to compact (truncated to the hour, UTC).
	Hour time.Time
	// Type limits compaction to one event type; "" compacts every type.
	Type string
	// SmallBytes: objects smaller than this are merged. Default 32 MiB.
	SmallBytes int64
	// TargetBytes bounds the input bytes merged into one object (and so the
	// memory a merge needs, about 10x that as rows). Default 256 MiB.
	TargetBytes int64
	// MinAge refuses hours that ended less than this long ago: the archive
	// may still write to them (a batching window, a retry or a replay after
	// a crash would then add objects beside the merged one). Default 2h.
	MinAge time.Duration
	// Compression of the merged objects. Default zstd.
	Compression string
	// Now is the clock for MinAge. Default time.Now.
	Now func() time.Time
	// Logger. Default: discard.
	Logger *slog.Logger
}

// CompactResult says what Compact did.
type CompactResult struct {
	Partitions int   // partitions of the hour looked at
	Merged     int   // objects merged (and deleted)
	Written    int   // merged objects written
	Rows       int64 // rows in the merged objects
	BytesIn    int64
	BytesOut   int64
	Resumed    int // interrupted compactions finished
}

// ErrHourTooRecent: the hour ended less than MinAge ago.
var ErrHourTooRecent = errors.New("hour too recent to compact")

// compactManifest is written before a merge and deleted after it, under
// PREFIX/compaction/PARTITION/manifest.json (outside events/, so readers
// never see it): a run that finds one finishes that merge first.
type compactManifest struct {
	Inputs  []string `json:"inputs"`
	Outputs []string `json:"outputs"`
}

// Compact merges an hour's small archive objects (Lambda writes one object
// set per invocation) into large ones, per partition, idempotently:
//
//  1. the inputs (objects under SmallBytes, in key order, grouped up to
//     TargetBytes) and the output's key are recorded in a manifest;
//  2. the output is written: the inputs' rows, de-duplicated by shard,
//     sequence and sub-sequence (an event is in at most one row) and sorted
//     that way, named compacted-HASH_FIRST_LAST.parquet with HASH derived
//     from the rows it holds, so redoing a merge writes the same object;
//  3. the inputs are deleted, then the manifest.
//
// A run interrupted anywhere is finished by the next: with a manifest whose
// outputs all exist it only deletes the inputs; otherwise (the inputs are
// all still there) it redoes the merge. Between steps 2 and 3 readers see the
// rows twice (in the output and the inputs) — run compaction when nothing
// queries the hour, or accept a brief double count. Running it again on a
// compacted hour changes nothing.
func Compact(ctx context.Context, api CompactAPI, opts CompactOptions) (CompactResult, error) {
	var res CompactResult
	if opts.SmallBytes <= 0 {
		opts.SmallBytes = DefaultCompactSmallBytes
	}
	if opts.TargetBytes <= 0 {
		opts.TargetBytes = DefaultCompactTargetBytes
	}
	if opts.MinAge == 0 {
		opts.MinAge = DefaultCompactMinAge
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	hour := opts.Hour.UTC().Truncate(time.Hour)
	if end := hour.Add(time.Hour); opts.Now().Sub(end) < opts.MinAge {
		return res, fmt.Errorf("compact %s: %w (it ended %v ago; the minimum is %v)", hour.Format("2006-01-02T15"), ErrHourTooRecent,
			opts.Now().Sub(end).Round(time.Second), opts.MinAge)
	}
	cfg, err := Config{Bucket: opts.Bucket, Prefix: opts.Prefix, Compression: opts.Compression}.withDefaults()
	if err != nil {
		return res, err
	}
	enc, err := newEncoder(cfg)
	if err != nil {
		return res, err
	}
	inv, err := List(ctx, api, opts.Bucket, opts.Prefix, Filter{Type: opts.Type, From: hour, To: hour.Add(time.Hour)})
	if err != nil {
		return res, fmt.Errorf("list archive: %w", err)
	}
	c := compactor{api: api, opts: opts, enc: enc, res: &res}
	for _, p := range inv.Partitions {
		res.Partitions++
		if err := c.partition(ctx, p); err != nil {
			return res, fmt.Errorf("compact %s: %w", p.Path(), err)
		}
	}
	return res, nil
}

type compactor struct {
	api  CompactAPI
	opts CompactOptions
	enc  *encoder
	res  *CompactResult
}

func (c *compactor) manifestKey(p PartitionStats) string {
	return normPrefix(c.opts.Prefix) + "compaction/" + p.Path() + "/manifest.json"
}

func (c *compactor) partition(ctx context.Context, p PartitionStats) error {
	existing := map[string]int64{}
	for _, o := range p.Objects {
		existing[o.Key] = o.Size
	}
	mkey := c.manifestKey(p)
	if m, ok, err := c.readManifest(ctx, mkey); err != nil {
		return err
	} else if ok {
		c.res.Resumed++
		c.opts.Logger.Info("finishing an interrupted compaction", "partition", p.Path(), "inputs", len(m.Inputs))
		if err := c.finish(ctx, mkey, m, existing); err != nil {
			return err
		}
		// The listing is stale now: leave further merges to the next run.
		return nil
	}
	var small []ObjectStats
	for _, o := range p.Objects {
		if o.Size < c.opts.SmallBytes {
			small = append(small, o)
		}
	}
	slices.SortFunc(small, func(a, b ObjectStats) int { return strings.Compare(a.Key, b.Key) })
	for len(small) > 1 {
		n, size := 0, int64(0)
		for n < len(small) && (n < 2 || size+small[n].Size <= c.opts.TargetBytes) {
			size += small[n].Size
			n++
		}
		group := small[:n]
		small = small[n:]
		if len(group) < 2 {
			break
		}
		var m compactManifest
		for _, o := range group {
			m.Inputs = append(m.Inputs, o.Key)
		}
		if err := c.merge(ctx, mkey, m, p); err != nil {
			return err
		}
	}
	return nil
}

// merge runs steps 1-3 for one group of inputs.
func (c *compactor) merge(ctx context.Context, mkey string, m compactManifest, p PartitionStats) error {
	rows, in, err := c.readRows(ctx, m.Inputs)
	if err != nil {
		return err
	}
	key := compactedKey(c.opts.Prefix, p, rows)
	m.Outputs = []string{key}
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := c.put(ctx, mkey, body, "application/json"); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	out, err := c.enc.encodeBytes(rows, int(in))
	if err != nil {
		return err
	}
	if err := c.put(ctx, key, out, ContentType); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	c.res.Written++
	c.res.Rows += int64(len(rows))
	c.res.BytesIn += in
	c.res.BytesOut += int64(len(out))
	c.res.Merged += len(m.Inputs)
	c.opts.Logger.Info("compacted", "partition", p.Path(), "inputs", len(m.Inputs), "rows", len(rows), "output", key)
	return c.cleanUp(ctx, mkey, m)
}

// finish completes an interrupted merge.
func (c *compactor) finish(ctx context.Context, mkey string, m compactManifest, existing map[string]int64) error {
	for _, o := range m.Outputs {
		if _, ok := existing[o]; !ok {
			// Not written: the inputs are all intact; redo the merge.
			var p PartitionStats
			info, err := ParseObjectKey(c.opts.Prefix, o)
			if err != nil {
				return err
			}
			p.Type, p.Date, p.Hour = info.Type, info.Date, info.Hour
			return c.merge(ctx, mkey, compactManifest{Inputs: m.Inputs}, p)
		}
	}
	return c.cleanUp(ctx, mkey, m)
}

// cleanUp deletes the inputs (never an output), then the manifest.
func (c *compactor) cleanUp(ctx context.Context, mkey string, m compactManifest) error {
	var ids []s3types.ObjectIdentifier
	for _, k := range m.Inputs {
		if !slices.Contains(m.Outputs, k) {
			ids = append(ids, s3types.ObjectIdentifier{Key: aws.String(k)})
		}
	}
	for len(ids) > 0 {
		n := min(len(ids), 1000)
		out, err := c.api.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(c.opts.Bucket),
			Delete: &s3types.Delete{Objects: ids[:n], Quiet: aws.Bool(true)}})
		if err != nil {
			return fmt.Errorf("delete merged objects: %w", err)
		}
		if len(out.Errors) > 0 {
			return fmt.Errorf("delete merged objects: %s: %s", aws.ToString(out.Errors[0].Key), aws.ToString(out.Errors[0].Message))
		}
		ids = ids[n:]
	}
	_, err := c.api.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(c.opts.Bucket),
		Delete: &s3types.Delete{Objects: []s3types.ObjectIdentifier{{Key: aws.String(mkey)}}, Quiet: aws.Bool(true)}})
	if err != nil {
		return fmt.Errorf("delete manifest: %w", err)
	}
	return nil
}

func (c *compactor) readManifest(ctx context.Context, key string) (compactManifest, bool, error) {
	var m compactManifest
	out, err := c.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.opts.Bucket), Key: aws.String(key)})
	if err != nil {
		var nsk *s3types.NoSuchKey
		if errors.As(err, &nsk) {
			return m, false, nil
		}
		return m, false, fmt.Errorf("read manifest %s: %w", key, err)
	}
	defer out.Body.Close()
	if err := json.NewDecoder(out.Body).Decode(&m); err != nil {
		return m, false, fmt.Errorf("read manifest %s: %w", key, err)
	}
	return m, true, nil
}

// readRows reads, de-duplicates and sorts the rows of keys.
func (c *compactor) readRows(ctx context.Context, keys []string) ([]Row, int64, error) {
	var rows []Row
	var size int64
	for _, k := range keys {
		out, err := c.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.opts.Bucket), Key: aws.String(k)})
		if err != nil {
			return nil, 0, fmt.Errorf("read %s: %w", k, err)
		}
		b, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("read %s: %w", k, err)
		}
		size += int64(len(b))
		r := parquet.NewGenericReader[Row](bytes.NewReader(b))
		buf := make([]Row, r.NumRows())
		n, err := r.Read(buf)
		r.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, fmt.Errorf("decode %s: %w", k, err)
		}
		rows = append(rows, buf[:n]...)
	}
	slices.SortFunc(rows, compareRows)
	rows = slices.CompactFunc(rows, func(a, b Row) bool { return compareRows(a, b) == 0 })
	return rows, size, nil
}

func rowPos(r *Row) consumers.Position {
	return consumers.Position{SequenceNumber: r.SequenceNumber, SubSequence: r.SubSequenceNumber}
}

func compareRows(a, b Row) int {
	return cmp.Or(strings.Compare(a.ShardID, b.ShardID), rowPos(&a).Compare(rowPos(&b)))
}

// compactedKey names a merged object by the rows it holds: a hash of their
// (shard, sequence, sub-sequence) and the first and last positions.
func compactedKey(prefix string, p PartitionStats, rows []Row) string {
	h := sha256.New()
	for i := range rows {
		fmt.Fprintf(h, "%s/%s/%d\n", rows[i].ShardID, rows[i].SequenceNumber, rows[i].SubSequenceNumber)
	}
	var first, last consumers.Position
	if len(rows) > 0 {
		first, last = rowPos(&rows[0]), rowPos(&rows[len(rows)-1])
	}
	part := Partition{Type: p.Type}
	if t, err := time.Parse("2006-01-02 15", p.Date+" "+p.Hour); err == nil {
		part.Hour = t
	}
	return ObjectKey(prefix, part, "compacted-"+hex.EncodeToString(h.Sum(nil))[:16], first, last)
}

func (c *compactor) put(ctx context.Context, key string, body []byte, contentType string) error {
	_, err := c.api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(c.opts.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(body), ContentType: aws.String(contentType)})
	return err
}
