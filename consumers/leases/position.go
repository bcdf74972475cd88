package leases

import (
	"fmt"
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

// SortableFormat is a string encoding of positions whose byte order is
// position order, for stores that compare strings (DynamoDB conditions, sort
// keys): the sequence number's digit count in 3 digits (sequence numbers
// have up to 129), its digits without leading zeros, Sep, and the
// sub-sequence zero-padded to SubDigits. Two formats are persisted: the
// metrics rows' (Sep "/", 20 digits) and the vector items' guards (Sep ".",
// 19 digits); changing either needs a migration of stored data.
type SortableFormat struct {
	Sep       byte
	SubDigits int
}

// Encode renders p; negative sub-sequences encode as 0.
func (f SortableFormat) Encode(p Position) string {
	seq := strings.TrimLeft(p.SequenceNumber, "0")
	if seq == "" {
		seq = "0"
	}
	sub := strconv.FormatInt(max(p.SubSequence, 0), 10)
	var b strings.Builder
	b.Grow(3 + len(seq) + 1 + f.SubDigits)
	l := strconv.Itoa(len(seq))
	b.WriteString(strings.Repeat("0", 3-len(l)) + l)
	b.WriteString(seq)
	b.WriteByte(f.Sep)
	if n := f.SubDigits - len(sub); n > 0 {
		b.WriteString(strings.Repeat("0", n))
	}
	b.WriteString(sub)
	return b.String()
}

// Decode parses what Encode rendered.
func (f SortableFormat) Decode(s string) (Position, error) {
	bad := fmt.Errorf("decode position %q: malformed", s)
	if len(s) < 3 {
		return Position{}, bad
	}
	n, err := strconv.Atoi(s[:3])
	if err != nil || n < 1 || len(s) != 3+n+1+f.SubDigits || s[3+n] != f.Sep || !allDigits(s[:3+n]) || !allDigits(s[4+n:]) ||
		(n > 1 && s[3] == '0') {
		return Position{}, bad
	}
	sub, err := strconv.ParseInt(s[4+n:], 10, 64)
	if err != nil {
		return Position{}, bad
	}
	return Position{SequenceNumber: s[3 : 3+n], SubSequence: sub}, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
