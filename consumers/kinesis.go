package consumers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickstream-go/clickstream/internal/retry"
)

// KinesisAPI is the part of the Kinesis client the runtime uses.
type KinesisAPI interface {
	ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

var _ KinesisAPI = (*kinesis.Client)(nil)

// StreamShard is what ListShards says about one shard.
type StreamShard struct {
	ID      string
	Parents []string // sorted
	Range   HashKeyRange
	Closed  bool // its sequence number range has an end: no new records
}

// ListShards returns every shard of the stream, open and closed, sorted by
// id (parents before their children).
func ListShards(ctx context.Context, kc KinesisAPI, stream string) ([]StreamShard, error) {
	m, err := listShards(ctx, kc, stream)
	if err != nil {
		return nil, err
	}
	out := make([]StreamShard, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b StreamShard) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// ReadShard reads shard s from its oldest record to its end (closed) or its
// tip (open: a call that returns nothing while MillisBehindLatest is 0),
// decoding exactly as the runtime does, and appends the user records to
// dst. It returns the extended slice and the number of Kinesis records
// read. Throttled calls back off; calls are paced under the shard's 5
// reads/s. A diagnostic and verification tool for small streams (`clickstream
// stream stats`, the chaos run's ground truth): it holds everything read.
func ReadShard(ctx context.Context, kc KinesisAPI, stream string, s StreamShard, dst []Record) ([]Record, int, error) {
	return readShardFrom(ctx, kc, stream, s, time.Time{}, dst)
}

// readShardFrom is ReadShard from the records that arrived at or after
// from (AT_TIMESTAMP); zero from reads from the oldest record.
func readShardFrom(ctx context.Context, kc KinesisAPI, stream string, s StreamShard, from time.Time, dst []Record) ([]Record, int, error) {
	dec, err := NewRecordDecoder(s.ID, s.Range)
	if err != nil {
		return dst, 0, err
	}
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String(s.ID), ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
	if !from.IsZero() {
		in.ShardIteratorType, in.Timestamp = types.ShardIteratorTypeAtTimestamp, aws.Time(from)
	}
	it, err := kc.GetShardIterator(ctx, in)
	if err != nil {
		return dst, 0, fmt.Errorf("get iterator for %s: %w", s.ID, err)
	}
	iter, n := it.ShardIterator, 0
	bo := retry.Backoff{Min: DefaultPollInterval, Max: 5 * time.Second}
	for iter != nil {
		out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(DefaultMaxRecords)})
		if err != nil && errKind(err) == "throttled" {
			if err := retry.Sleep(ctx, bo.Next()); err != nil {
				return dst, n, err
			}
			continue
		}
		if err != nil {
			return dst, n, fmt.Errorf("get records from %s: %w", s.ID, err)
		}
		bo.Reset()
		for _, r := range out.Records {
			n++
			dst = dec.Append(dst, KinesisRecord{
				SequenceNumber: aws.ToString(r.SequenceNumber), PartitionKey: aws.ToString(r.PartitionKey),
				ArrivalTime: aws.ToTime(r.ApproximateArrivalTimestamp), Data: r.Data,
			})
		}
		iter = out.NextShardIterator
		if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			break
		}
		if err := retry.Sleep(ctx, DefaultPollInterval); err != nil {
			return dst, n, err
		}
	}
	return dst, n, nil
}

// listShards lists every shard of the stream, open and closed (closed ones
// still hold data until retention passes, and must be read to the end).
func listShards(ctx context.Context, kc KinesisAPI, stream string) (map[string]StreamShard, error) {
	out := map[string]StreamShard{}
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		page, err := kc.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		for _, s := range page.Shards {
			info := StreamShard{ID: aws.ToString(s.ShardId)}
			for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
				if p := aws.ToString(p); p != "" {
					info.Parents = append(info.Parents, p)
				}
			}
			slices.Sort(info.Parents)
			if s.HashKeyRange != nil {
				info.Range = HashKeyRange{Start: aws.ToString(s.HashKeyRange.StartingHashKey), End: aws.ToString(s.HashKeyRange.EndingHashKey)}
			}
			if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
				info.Closed = true
			}
			out[info.ID] = info
		}
		if page.NextToken == nil {
			return out, nil
		}
		// With NextToken the stream must not be named again.
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
}

// errKind classifies a Kinesis read error for back-off, logs and metrics.
func errKind(err error) string {
	var (
		exp *types.ExpiredIteratorException
		rnf *types.ResourceNotFoundException
	)
	switch {
	case retry.IsThrottle(err):
		return "throttled"
	case errors.As(err, &exp):
		return "expired_iterator"
	case errors.As(err, &rnf):
		return "not_found"
	}
	return "other"
}
