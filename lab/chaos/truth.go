package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/internal/retry"
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
	shards, err := ListShards(ctx, kc, stream)
	if err != nil {
		return nil, err
	}
	t := &Truth{}
	span := map[string][2]int{} // shard → its records in t.Records
	for _, sh := range shards {
		info := ShardInfo{ID: aws.ToString(sh.ShardId), Open: sh.SequenceNumberRange == nil || sh.SequenceNumberRange.EndingSequenceNumber == nil}
		for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
			if p != nil {
				info.Parents = append(info.Parents, *p)
			}
		}
		var hr consumers.HashKeyRange
		if sh.HashKeyRange != nil {
			hr = consumers.HashKeyRange{Start: aws.ToString(sh.HashKeyRange.StartingHashKey), End: aws.ToString(sh.HashKeyRange.EndingHashKey)}
		}
		n0 := len(t.Records)
		if t.Records, info.KinesisRecords, err = readShard(ctx, kc, stream, info.ID, hr, t.Records); err != nil {
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

func readShard(ctx context.Context, kc KinesisAPI, stream, shardID string, hr consumers.HashKeyRange, dst []consumers.Record) ([]consumers.Record, int, error) {
	dec, err := consumers.NewRecordDecoder(shardID, hr)
	if err != nil {
		return nil, 0, err
	}
	it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: aws.String(shardID), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("get iterator for %s: %w", shardID, err)
	}
	iter := it.ShardIterator
	n := 0
	backoff := 200 * time.Millisecond
	for iter != nil {
		out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
		var thr *types.ProvisionedThroughputExceededException
		if errors.As(err, &thr) {
			if err := retry.Sleep(ctx, backoff); err != nil {
				return nil, 0, err
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("get records from %s: %w", shardID, err)
		}
		for _, r := range out.Records {
			n++
			dst = dec.Append(dst, consumers.KinesisRecord{
				SequenceNumber: aws.ToString(r.SequenceNumber), PartitionKey: aws.ToString(r.PartitionKey),
				ArrivalTime: aws.ToTime(r.ApproximateArrivalTimestamp), Data: r.Data,
			})
		}
		iter = out.NextShardIterator
		if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			break
		}
	}
	return dst, n, nil
}
