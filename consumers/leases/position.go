package leases

import (
	"strconv"
	"strings"
)

// Position is a place in a shard: the sequence number of a Kinesis record
// plus the sub-sequence, the index of a user record inside a KPL aggregate
// (0 for records that are not aggregated). The zero Position means "before
// the first record".
type Position struct {
	SequenceNumber string
	SubSequence    int64
}

// IsZero reports whether p is the zero Position.
func (p Position) IsZero() bool { return p.SequenceNumber == "" && p.SubSequence == 0 }

// Compare returns -1, 0 or +1 as p is before, at or after q. Sequence numbers
// are decimal integers of up to 128 bits, so they compare by length (after
// leading zeros) and then lexically; the zero Position is before every other.
func (p Position) Compare(q Position) int {
	if c := CompareSequence(p.SequenceNumber, q.SequenceNumber); c != 0 {
		return c
	}
	switch {
	case p.SubSequence < q.SubSequence:
		return -1
	case p.SubSequence > q.SubSequence:
		return 1
	}
	return 0
}

// After reports whether p is strictly after q.
func (p Position) After(q Position) bool { return p.Compare(q) > 0 }

// String renders p as SEQUENCE/SUB, or "start" for the zero Position.
func (p Position) String() string {
	if p.IsZero() {
		return "start"
	}
	return p.SequenceNumber + "/" + strconv.FormatInt(p.SubSequence, 10)
}

// CompareSequence compares two Kinesis sequence numbers (decimal digit
// strings; "" sorts first). It allocates nothing: big.Int would cost two
// allocations per comparison on the per-record path.
func CompareSequence(a, b string) int {
	if a == b {
		return 0
	}
	if a == "" {
		return -1
	}
	if b == "" {
		return 1
	}
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return strings.Compare(a, b)
}
