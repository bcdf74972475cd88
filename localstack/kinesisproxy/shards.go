package kinesisproxy

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/big"
	"slices"
	"strings"
)

// hashKey is a 128-bit Kinesis hash key.
type hashKey struct{ hi, lo uint64 }

func (a hashKey) cmp(b hashKey) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

// partitionHash is where Kinesis puts a partition key: MD5 of its UTF-8
// bytes, read as an unsigned big-endian 128-bit integer.
func partitionHash(key string) hashKey {
	s := md5.Sum([]byte(key))
	return hashKey{binary.BigEndian.Uint64(s[:8]), binary.BigEndian.Uint64(s[8:])}
}

// parseHashKey reads a decimal hash key (ExplicitHashKey, HashKeyRange).
func parseHashKey(s string) (hashKey, error) {
	b, ok := new(big.Int).SetString(s, 10)
	if !ok || b.Sign() < 0 || b.BitLen() > 128 {
		return hashKey{}, fmt.Errorf("hash key %q is not an integer in [0, 2^128)", s)
	}
	var buf [16]byte
	b.FillBytes(buf[:])
	return hashKey{binary.BigEndian.Uint64(buf[:8]), binary.BigEndian.Uint64(buf[8:])}, nil
}

// entryHash is the hash a record is routed by: its explicit hash key when
// it has one, else MD5 of its partition key.
func entryHash(partitionKey string, explicit *string) (hashKey, error) {
	if explicit != nil && *explicit != "" {
		return parseHashKey(*explicit)
	}
	return partitionHash(partitionKey), nil
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
	slices.SortFunc(m, func(a, b shardRange) int { return a.start.cmp(b.start) })
	return m
}

// route returns the open shard holding h, or "" when no shard does (a map
// read mid-reshard can have a gap).
func (m shardMap) route(h hashKey) string {
	i, _ := slices.BinarySearchFunc(m, h, func(s shardRange, h hashKey) int {
		if s.end.cmp(h) < 0 {
			return -1
		}
		return 1
	})
	if i < len(m) && m[i].start.cmp(h) <= 0 {
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
