package producers

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// hashKey is a point of Kinesis' 128-bit hash key space. Kinesis maps a
// record to the shard whose range holds MD5(partition key), read as a
// big-endian unsigned integer, or holds the record's explicit hash key.
//
// Hand-written instead of math/big: every Put hashes its partition key, and
// two uint64s compare and copy without allocating.
type hashKey struct{ hi, lo uint64 }

func (h hashKey) less(o hashKey) bool { return h.hi < o.hi || h.hi == o.hi && h.lo < o.lo }

// hashOf returns the hash key Kinesis computes for a partition key.
func hashOf(partitionKey string) hashKey {
	sum := md5.Sum([]byte(partitionKey))
	return hashKey{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

var errHashKey = errors.New("not a decimal integer in [0, 2^128)")

// parseHashKey parses a decimal hash key, as Kinesis writes them.
func parseHashKey(s string) (hashKey, error) {
	if s == "" || len(s) > 39 {
		return hashKey{}, errHashKey
	}
	var h hashKey
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return hashKey{}, errHashKey
		}
		// h = h*10 + d, failing on overflow past 128 bits.
		carry, lo := bits.Mul64(h.lo, 10)
		over, hi := bits.Mul64(h.hi, 10)
		hi, c1 := bits.Add64(hi, carry, 0)
		lo, c2 := bits.Add64(lo, uint64(c-'0'), 0)
		hi, c3 := bits.Add64(hi, c2, 0)
		if over != 0 || c1 != 0 || c3 != 0 {
			return hashKey{}, errHashKey
		}
		h = hashKey{hi, lo}
	}
	return h, nil
}

// String formats h in decimal, the form ExplicitHashKey takes.
func (h hashKey) String() string {
	if h.hi == 0 {
		return fmt.Sprint(h.lo)
	}
	// Split into base-10^19 digits: at most three for 128 bits.
	const base = 10_000_000_000_000_000_000
	var parts [3]uint64
	n := 0
	for h.hi != 0 || h.lo != 0 {
		var rem uint64
		h.hi, rem = bits.Div64(0, h.hi, base)
		h.lo, rem = bits.Div64(rem, h.lo, base)
		parts[n] = rem
		n++
	}
	var b strings.Builder
	fmt.Fprint(&b, parts[n-1])
	for i := n - 2; i >= 0; i-- {
		fmt.Fprintf(&b, "%019d", parts[i])
	}
	return b.String()
}

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
		if s.End.less(h) {
			return -1
		}
		return 1
	})
	if i < len(m) && !h.less(m[i].Start) {
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
			start, err1 := parseHashKey(aws.ToString(s.HashKeyRange.StartingHashKey))
			end, err2 := parseHashKey(aws.ToString(s.HashKeyRange.EndingHashKey))
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("list shards of %s: shard %s hash key range: %w", stream, aws.ToString(s.ShardId), err)
			}
			m = append(m, shardInfo{ID: aws.ToString(s.ShardId), Start: start, End: end})
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
	slices.SortFunc(m, func(a, b shardInfo) int {
		if a.Start.less(b.Start) {
			return -1
		}
		if b.Start.less(a.Start) {
			return 1
		}
		return 0
	})
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
