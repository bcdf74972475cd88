package consumers

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

// KinesisAPI is the part of the Kinesis client the runtime uses.
type KinesisAPI interface {
	ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

var _ KinesisAPI = (*kinesis.Client)(nil)

// shardInfo is what ListShards says about one shard.
type shardInfo struct {
	ID      string
	Parents []string
	Range   HashKeyRange
	Closed  bool
}

// listShards lists every shard of the stream, open and closed (closed ones
// still hold data until retention passes, and must be read to the end).
func listShards(ctx context.Context, kc KinesisAPI, stream string) (map[string]shardInfo, error) {
	out := map[string]shardInfo{}
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		page, err := kc.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		for _, s := range page.Shards {
			info := shardInfo{ID: aws.ToString(s.ShardId)}
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
		pte  *types.ProvisionedThroughputExceededException
		lee  *types.LimitExceededException
		kmst *types.KMSThrottlingException
		exp  *types.ExpiredIteratorException
		rnf  *types.ResourceNotFoundException
	)
	switch {
	case errors.As(err, &pte), errors.As(err, &lee), errors.As(err, &kmst):
		return "throttled"
	case errors.As(err, &exp):
		return "expired_iterator"
	case errors.As(err, &rnf):
		return "not_found"
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ThrottlingException", "Throttling", "RequestLimitExceeded", "TooManyRequestsException":
			return "throttled"
		}
	}
	return "other"
}
