package kinesisproxy

import (
	"slices"
	"strings"

	"github.com/clickstream-go/clickstream/internal/hashkey"
)

// hashKey is a point of Kinesis' hash key space (package hashkey).
type hashKey = hashkey.Key

// parseHashKey reads a decimal hash key (ExplicitHashKey, HashKeyRange).
func parseHashKey(s string) (hashKey, error) { return hashkey.Parse(s) }

// entryHash is the hash a record is routed by: its explicit hash key when
// it has one, else MD5 of its partition key.
func entryHash(partitionKey string, explicit *string) (hashKey, error) {
	if explicit != nil {
		return hashkey.Route(partitionKey, *explicit)
	}
	return hashkey.Of(partitionKey), nil
}

// shardRange is one open shard and the hash keys it holds (inclusive).
type shardRange struct {
	id         string
	start, end hashKey
}

// shardMap is a stream's open shards, sorted by starting hash key. Open
// shards' ranges cover the key space without overlap.
type shardMap []shardRange

func newShardMap(rs []shardRange) shardMap {
	m := slices.Clone(rs)
	slices.SortFunc(m, func(a, b shardRange) int { return a.start.Compare(b.start) })
	return m
}

// route returns the open shard holding h, or "" when no shard does (a map
// read mid-reshard can have a gap).
func (m shardMap) route(h hashKey) string {
	i, _ := slices.BinarySearchFunc(m, h, func(s shardRange, h hashKey) int {
		if s.end.Compare(h) < 0 {
			return -1
		}
		return 1
	})
	if i < len(m) && m[i].start.Compare(h) <= 0 {
		return m[i].id
	}
	return ""
}

// streamName returns the stream a request names, by StreamName or by the
// last part of StreamARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME).
func streamName(name, arn string) string {
	if name != "" {
		return name
	}
	if i := strings.LastIndex(arn, ":stream/"); i >= 0 {
		return arn[i+len(":stream/"):]
	}
	return ""
}
