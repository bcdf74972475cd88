package consumers

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/bits"
	"time"

	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/kpl"
)

// KinesisRecord is one record as Kinesis stores it, from GetRecords or from
// a Lambda event.
type KinesisRecord struct {
	SequenceNumber string
	PartitionKey   string
	ArrivalTime    time.Time
	Data           []byte // possibly a KPL aggregate
}

// HashKeyRange is a shard's range of 128-bit hash keys, as decimal strings
// (what ListShards returns). The zero value means unknown: no range check.
type HashKeyRange struct {
	Start, End string
}

// IsZero reports whether the range is unknown.
func (r HashKeyRange) IsZero() bool { return r.Start == "" && r.End == "" }

// uint128 is a hash key. Hand-written rather than big.Int: the range check
// runs for every aggregated sub-record, and big.Int costs allocations there.
type uint128 struct{ hi, lo uint64 }

func (a uint128) less(b uint128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

// parseUint128 parses a decimal hash key.
func parseUint128(s string) (uint128, error) {
	if s == "" || len(s) > 39 {
		return uint128{}, fmt.Errorf("hash key %q: not a 128-bit decimal", s)
	}
	var v uint128
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return uint128{}, fmt.Errorf("hash key %q: not a decimal", s)
		}
		// v = v*10 + d, detecting overflow of 128 bits.
		hiHi, hiLo := bits.Mul64(v.hi, 10)
		loHi, loLo := bits.Mul64(v.lo, 10)
		lo, carry := bits.Add64(loLo, uint64(c-'0'), 0)
		hi, carry2 := bits.Add64(hiLo, loHi, carry)
		if hiHi != 0 || carry2 != 0 {
			return uint128{}, fmt.Errorf("hash key %q: exceeds 128 bits", s)
		}
		v = uint128{hi, lo}
	}
	return v, nil
}

// hashKeyOf is the hash key Kinesis routes a record by: the explicit hash key
// if any, else the MD5 of the partition key as a big-endian 128-bit integer.
func hashKeyOf(partitionKey, explicitHashKey string) (uint128, error) {
	if explicitHashKey != "" {
		return parseUint128(explicitHashKey)
	}
	sum := md5.Sum([]byte(partitionKey))
	return uint128{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}, nil
}

// RecordDecoder turns the Kinesis records of one shard into user records:
// KPL de-aggregation (MD5 verified), event decoding, and the hash-key range
// check of aggregated sub-records. The long-running runtime and the Lambda
// adapter share it, so both hand processors identical records.
type RecordDecoder struct {
	shardID    string
	checkRange bool
	start, end uint128
	sub        []kpl.Record // reused across Append calls
}

// NewRecordDecoder returns a decoder for shardID; a zero range disables the
// out-of-range check (Lambda events carry no shard ranges).
func NewRecordDecoder(shardID string, r HashKeyRange) (*RecordDecoder, error) {
	d := &RecordDecoder{shardID: shardID}
	if r.IsZero() {
		return d, nil
	}
	var err error
	if d.start, err = parseUint128(r.Start); err != nil {
		return nil, fmt.Errorf("shard %s range: %w", shardID, err)
	}
	if d.end, err = parseUint128(r.End); err != nil {
		return nil, fmt.Errorf("shard %s range: %w", shardID, err)
	}
	d.checkRange = true
	return d, nil
}

// Append appends the user records of kr to dst and returns the extended
// slice. A plain record becomes one Record at sub-sequence 0; an aggregate
// becomes one Record per sub-record at sub-sequences 0..n-1; a corrupt
// aggregate becomes one bad Record at sub-sequence 0 carrying the whole raw
// record. Records whose event does not decode carry the decode error in Err.
// Data slices alias kr.Data.
func (d *RecordDecoder) Append(dst []Record, kr KinesisRecord) []Record {
	base := Record{
		Position:     Position{SequenceNumber: kr.SequenceNumber},
		ShardID:      d.shardID,
		PartitionKey: kr.PartitionKey,
		ArrivalTime:  kr.ArrivalTime,
	}
	if !kpl.IsAggregated(kr.Data) {
		r := base
		r.Data = kr.Data
		r.Event, r.Err = event.Decode(kr.Data)
		return append(dst, r)
	}
	subs, err := kpl.AppendDeaggregated(d.sub[:0], kr.Data, kr.PartitionKey)
	d.sub = subs
	if err != nil {
		r := base
		r.Data = kr.Data
		r.Aggregated = true
		r.Err = fmt.Errorf("de-aggregate record %s: %w", kr.SequenceNumber, err)
		return append(dst, r)
	}
	for i, s := range subs {
		r := base
		r.SubSequence = int64(i)
		r.PartitionKey = s.PartitionKey
		r.ExplicitHashKey = s.ExplicitHashKey
		r.Data = s.Data
		r.Aggregated = true
		if d.checkRange {
			// A sub-record with an unparsable explicit hash key is routed by its
			// partition key: still processed, judged by what Kinesis would do.
			hk, herr := hashKeyOf(s.PartitionKey, s.ExplicitHashKey)
			if herr != nil {
				hk, _ = hashKeyOf(s.PartitionKey, "")
			}
			r.OutOfRange = hk.less(d.start) || d.end.less(hk)
		}
		r.Event, r.Err = event.Decode(s.Data)
		dst = append(dst, r)
	}
	clear(subs) // drop references to kr.Data held by the reused slice
	return dst
}
