package producers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickstream-go/clickstream/internal/hashkey"
)

// hashKey is a point of Kinesis' hash key space (package hashkey).
type hashKey = hashkey.Key

// shardInfo is one open shard and its hash key range (inclusive).
type shardInfo struct {
	ID         string
	Start, End hashKey
}

// shardMap is the stream's open shards sorted by range; together they cover
// the hash key space when the stream is healthy.
type shardMap []shardInfo

// lookup returns the index of the shard whose range holds h, or -1 when no
// open shard does (a map caught mid-reshard).
func (m shardMap) lookup(h hashKey) int {
	// The first shard whose End is >= h.
	i, _ := slices.BinarySearchFunc(m, h, func(s shardInfo, h hashKey) int {
		if s.End.Less(h) {
			return -1
		}
		return 1
	})
	if i < len(m) && !h.Less(m[i].Start) {
		return i
	}
	return -1
}

// equal reports whether two maps name the same shards with the same ranges.
func (m shardMap) equal(o shardMap) bool { return slices.Equal(m, o) }

// listShards reads the stream's open shards. A shard is open when its
// sequence number range has no end.
func listShards(ctx context.Context, client KinesisAPI, stream string) (shardMap, error) {
	in := &kinesis.ListShardsInput{}
	setStream(stream, &in.StreamName, &in.StreamARN)
	var m shardMap
	for {
		out, err := client.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		for _, s := range out.Shards {
			if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
				continue
			}
			if s.HashKeyRange == nil {
				return nil, fmt.Errorf("list shards of %s: shard %s has no hash key range", stream, aws.ToString(s.ShardId))
			}
			r, err := hashkey.ParseRange(aws.ToString(s.HashKeyRange.StartingHashKey), aws.ToString(s.HashKeyRange.EndingHashKey))
			if err != nil {
				return nil, fmt.Errorf("list shards of %s: shard %s: %w", stream, aws.ToString(s.ShardId), err)
			}
			m = append(m, shardInfo{ID: aws.ToString(s.ShardId), Start: r.Start, End: r.End})
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		// A request with NextToken must not name the stream.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("list shards of %s: no open shards", stream)
	}
	slices.SortFunc(m, func(a, b shardInfo) int { return a.Start.Compare(b.Start) })
	return m, nil
}

// setStream names the stream by ARN when given one, else by name.
// kinesalite rejects requests that carry only a StreamARN, so names stay names.
func setStream(stream string, name, arn **string) {
	if strings.HasPrefix(stream, "arn:") {
		*arn = aws.String(stream)
	} else {
		*name = aws.String(stream)
	}
}
