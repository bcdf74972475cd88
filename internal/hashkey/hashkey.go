// Package hashkey is Kinesis' 128-bit hash key space: the key a record is
// routed by (the MD5 of its partition key read as a big-endian unsigned
// integer, or its explicit hash key) and the shards' ranges of it. The
// producer routes every Put with it and the consumer runtime range-checks
// every aggregated sub-record, so it is hand-written on two uint64s instead
// of math/big: comparing and copying never allocate.
package hashkey

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// Key is a point of the hash key space.
type Key struct{ Hi, Lo uint64 }

// Max is the largest hash key, 2^128 − 1.
var Max = Key{^uint64(0), ^uint64(0)}

// ErrSyntax: not a decimal integer in [0, 2^128).
var ErrSyntax = errors.New("not a decimal integer in [0, 2^128)")

// Of returns the hash key Kinesis computes for a partition key.
func Of(partitionKey string) Key {
	sum := md5.Sum([]byte(partitionKey))
	return Key{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

// Route is the key a record goes by: its explicit hash key when it has one,
// else its partition key's.
func Route(partitionKey, explicitHashKey string) (Key, error) {
	if explicitHashKey != "" {
		return Parse(explicitHashKey)
	}
	return Of(partitionKey), nil
}

// Parse parses a decimal hash key, as Kinesis writes them.
func Parse(s string) (Key, error) {
	if s == "" || len(s) > 39 {
		return Key{}, fmt.Errorf("hash key %.50q: %w", s, ErrSyntax)
	}
	var k Key
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return Key{}, fmt.Errorf("hash key %.50q: %w", s, ErrSyntax)
		}
		// k = k*10 + d, failing on overflow past 128 bits.
		carry, lo := bits.Mul64(k.Lo, 10)
		over, hi := bits.Mul64(k.Hi, 10)
		hi, c1 := bits.Add64(hi, carry, 0)
		lo, c2 := bits.Add64(lo, uint64(c-'0'), 0)
		hi, c3 := bits.Add64(hi, c2, 0)
		if over != 0 || c1 != 0 || c3 != 0 {
			return Key{}, fmt.Errorf("hash key %.50q: %w", s, ErrSyntax)
		}
		k = Key{hi, lo}
	}
	return k, nil
}

// Less reports whether k < o.
func (k Key) Less(o Key) bool { return k.Hi < o.Hi || k.Hi == o.Hi && k.Lo < o.Lo }

// Compare returns -1, 0 or +1 as k is less than, equal to or greater than o.
func (k Key) Compare(o Key) int {
	switch {
	case k.Less(o):
		return -1
	case o.Less(k):
		return 1
	}
	return 0
}

// String formats k in decimal, the form ExplicitHashKey takes.
func (k Key) String() string {
	if k.Hi == 0 {
		return fmt.Sprint(k.Lo)
	}
	// Split into base-10^19 digits: at most three for 128 bits.
	const base = 10_000_000_000_000_000_000
	var parts [3]uint64
	n := 0
	for k.Hi != 0 || k.Lo != 0 {
		var rem uint64
		k.Hi, rem = bits.Div64(0, k.Hi, base)
		k.Lo, rem = bits.Div64(rem, k.Lo, base)
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

// Range is a shard's range of hash keys, both ends inclusive.
type Range struct{ Start, End Key }

// ParseRange parses a range as ListShards returns it.
func ParseRange(start, end string) (Range, error) {
	s, err1 := Parse(start)
	e, err2 := Parse(end)
	if err := errors.Join(err1, err2); err != nil {
		return Range{}, err
	}
	if e.Less(s) {
		return Range{}, fmt.Errorf("hash key range %s..%s: end before start", start, end)
	}
	return Range{s, e}, nil
}

// Next returns k + 1 (wrapping at Max), e.g. the start of the range after a
// range ending at k.
func (k Key) Next() Key {
	lo, c := bits.Add64(k.Lo, 1, 0)
	return Key{k.Hi + c, lo}
}

// Middle returns where a split at the middle of r starts the upper child:
// floor((Start + End) / 2) + 1.
func (r Range) Middle() Key {
	lo, c := bits.Add64(r.Start.Lo, r.End.Lo, 0)
	hi, c2 := bits.Add64(r.Start.Hi, r.End.Hi, c)
	// Shift the 129-bit sum right by one.
	mid := Key{hi>>1 | c2<<63, lo>>1 | hi<<63}
	return mid.Next()
}

// Contains reports whether k lies in r.
func (r Range) Contains(k Key) bool { return !k.Less(r.Start) && !r.End.Less(k) }
