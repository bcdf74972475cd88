package chaos

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickstream-go/clickstream/consumers"
)

// KinesisAPI is what reading the ground truth and resharding call.
type KinesisAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, opts ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, opts ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	SplitShard(ctx context.Context, in *kinesis.SplitShardInput, opts ...func(*kinesis.Options)) (*kinesis.SplitShardOutput, error)
	MergeShards(ctx context.Context, in *kinesis.MergeShardsInput, opts ...func(*kinesis.Options)) (*kinesis.MergeShardsOutput, error)
}

var _ KinesisAPI = (*kinesis.Client)(nil)

// ShardInfo is one shard of the stream as the ground truth saw it.
type ShardInfo struct {
	ID             string
	Parents        []string
	Open           bool
	KinesisRecords int
	UserRecords    int
}

// Truth is everything on the stream: every user record of every shard,
// de-aggregated and decoded exactly as the consumer runtime does it, and
// with copies of an event (a retried PutRecords) marked Duplicate by the
// runtime's own per-shard window, default size.
type Truth struct {
	Shards  []ShardInfo
	Records []consumers.Record // valid and bad, in shard order per shard
}

// Valid counts the records whose event decoded and validated, copies
// included.
func (t *Truth) Valid() int {
	n := 0
	for i := range t.Records {
		if t.Records[i].Err == nil {
			n++
		}
	}
	return n
}

// Duplicates counts the records marked Duplicate: copies the consumers
// must skip.
func (t *Truth) Duplicates() int {
	n := 0
	for i := range t.Records {
		if t.Records[i].Duplicate {
			n++
		}
	}
	return n
}

// CopiesLeft counts events applied more than once by id after the
// de-duplication: copies outside the window, or on a shard that is neither
// their original's nor its child. The consumers keep them, as the truth
// does; the report shows how many there were.
func (t *Truth) CopiesLeft() int {
	seen := map[string]bool{}
	n := 0
	for i := range t.Records {
		r := &t.Records[i]
		if !r.Applies() || r.Event.ID == "" {
			continue
		}
		if seen[r.Event.ID] {
			n++
		}
		seen[r.Event.ID] = true
	}
	return n
}

// ListShards returns every shard of the stream (closed ones included),
// sorted by id.
func ListShards(ctx context.Context, kc KinesisAPI, stream string) ([]types.Shard, error) {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := kc.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	sort.Slice(shards, func(i, j int) bool { return aws.ToString(shards[i].ShardId) < aws.ToString(shards[j].ShardId) })
	return shards, nil
}

// ReadTruth reads every shard of stream from TRIM_HORIZON to its end (closed
// shards) or its tip (open shards).
func ReadTruth(ctx context.Context, kc KinesisAPI, stream string) (*Truth, error) {
	shards, err := consumers.ListShards(ctx, kc, stream)
	if err != nil {
		return nil, err
	}
	t := &Truth{}
	span := map[string][2]int{} // shard → its records in t.Records
	for _, sh := range shards {
		info := ShardInfo{ID: sh.ID, Parents: sh.Parents, Open: !sh.Closed}
		n0 := len(t.Records)
		if t.Records, info.KinesisRecords, err = consumers.ReadShard(ctx, kc, stream, sh, t.Records); err != nil {
			return nil, err
		}
		info.UserRecords = len(t.Records) - n0
		span[info.ID] = [2]int{n0, len(t.Records)}
		markCopies(t.Records, span, info)
		t.Shards = append(t.Shards, info)
	}
	return t, nil
}

// markCopies marks the copies among shard info's records as the consumer
// runtime does: a window per shard, seeded with the records of each parent
// (in id order) that arrived within the window of the parent's last one,
// then fed the shard's own records in order. Shards are read in id order, so
// a shard's parents are already in records.
func markCopies(records []consumers.Record, span map[string][2]int, info ShardInfo) {
	w := consumers.NewDedupWindow(consumers.DefaultDedupWindow, consumers.DefaultDedupMaxIDs)
	parents := slices.Clone(info.Parents)
	slices.Sort(parents)
	for _, p := range parents {
		sp, ok := span[p]
		if !ok || sp[0] == sp[1] {
			continue
		}
		prs := records[sp[0]:sp[1]]
		from := prs[len(prs)-1].ArrivalTime.Add(-consumers.DefaultDedupWindow)
		for i := range prs {
			if prs[i].Err == nil && !prs[i].ArrivalTime.Before(from) {
				w.Seen(prs[i].Event.ID, prs[i].ArrivalTime)
			}
		}
	}
	sp := span[info.ID]
	w.Mark(records[sp[0]:sp[1]])
}
