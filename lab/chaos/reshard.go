package chaos

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickstream-go/clickstream/internal/hashkey"
	"github.com/clickstream-go/clickstream/internal/retry"
)

// openShards returns the open shards sorted by starting hash key.
func openShards(ctx context.Context, kc KinesisAPI, stream string) ([]types.Shard, error) {
	all, err := ListShards(ctx, kc, stream)
	if err != nil {
		return nil, err
	}
	var open []types.Shard
	for _, s := range all {
		if s.SequenceNumberRange == nil || s.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, s)
		}
	}
	sort.Slice(open, func(i, j int) bool { return shardRange(open[i]).Start.Less(shardRange(open[j]).Start) })
	return open, nil
}

// shardRange is a listed shard's hash key range (Kinesis lists valid ones).
func shardRange(s types.Shard) hashkey.Range {
	r, _ := hashkey.ParseRange(aws.ToString(s.HashKeyRange.StartingHashKey), aws.ToString(s.HashKeyRange.EndingHashKey))
	return r
}

// SplitMiddle splits shard of stream at the middle of its hash-key range
// and waits until the stream is ACTIVE again.
func SplitMiddle(ctx context.Context, kc KinesisAPI, stream string, shard types.Shard) error {
	mid := shardRange(shard).Middle()
	if _, err := kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream),
		ShardToSplit: shard.ShardId, NewStartingHashKey: aws.String(mid.String())}); err != nil {
		return fmt.Errorf("split %s: %w", aws.ToString(shard.ShardId), err)
	}
	return waitActive(ctx, kc, stream)
}

// MergeAdjacent merges two open shards with adjacent hash-key ranges and
// waits until the stream is ACTIVE again.
func MergeAdjacent(ctx context.Context, kc KinesisAPI, stream string, a, b types.Shard) error {
	if _, err := kc.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(stream),
		ShardToMerge: a.ShardId, AdjacentShardToMerge: b.ShardId}); err != nil {
		return fmt.Errorf("merge %s and %s: %w", aws.ToString(a.ShardId), aws.ToString(b.ShardId), err)
	}
	return waitActive(ctx, kc, stream)
}

func waitActive(ctx context.Context, kc KinesisAPI, stream string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := retry.Sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
		out, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stream %s not ACTIVE within 2m after resharding (last error %v)", stream, err)
		}
	}
}

// split splits a random open shard in two.
func (r *run) split(ctx context.Context) {
	kc := r.cfg.Clients.Kinesis
	open, err := openShards(ctx, kc, r.res.Stream)
	if err == nil && len(open) == 0 {
		err = fmt.Errorf("no open shard")
	}
	if err == nil {
		s := open[r.rng.IntN(len(open))]
		r.logf("fault: splitting %s", aws.ToString(s.ShardId))
		err = SplitMiddle(ctx, kc, r.res.Stream, s)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.rep.Faults.ReshardErrors = append(r.rep.Faults.ReshardErrors, err.Error())
		r.logf("split failed: %v", err)
		return
	}
	r.rep.Faults.Splits++
}

// merge merges a random pair of adjacent open shards.
func (r *run) merge(ctx context.Context) {
	kc := r.cfg.Clients.Kinesis
	open, err := openShards(ctx, kc, r.res.Stream)
	var pairs [][2]types.Shard
	for i := 0; err == nil && i+1 < len(open); i++ {
		if shardRange(open[i]).End.Next() == shardRange(open[i+1]).Start {
			pairs = append(pairs, [2]types.Shard{open[i], open[i+1]})
		}
	}
	if err == nil && len(pairs) == 0 {
		err = fmt.Errorf("no adjacent open shards")
	}
	if err == nil {
		p := pairs[r.rng.IntN(len(pairs))]
		r.logf("fault: merging %s and %s", aws.ToString(p[0].ShardId), aws.ToString(p[1].ShardId))
		err = MergeAdjacent(ctx, kc, r.res.Stream, p[0], p[1])
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.rep.Faults.ReshardErrors = append(r.rep.Faults.ReshardErrors, err.Error())
		r.logf("merge failed: %v", err)
		return
	}
	r.rep.Faults.Merges++
}
