// Package kpl reads and writes the KPL aggregated-record format: many user
// records packed into one Kinesis record, which is how producers get past a
// shard's 1,000 records/s limit. The producer (producers/) aggregates with
// Aggregator; the consumer runtime and the Lambda adapter (consumers/,
// lambdas/) turn each Kinesis record back into user records with Deaggregate.
//
// Format (github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md):
// the 4 magic bytes F3 89 9A C2, a protobuf AggregatedRecord, then the MD5 of
// the protobuf bytes. The message has three fields and one nested Record
// type, so it is written and read directly with protowire instead of
// generated code: no .proto toolchain in the build, and the Aggregator can
// append each record's bytes as it arrives and know the exact encoded size at
// every step, which generated Marshal code cannot do without re-encoding.
package kpl

import (
	"crypto/md5"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Magic is the prefix of every aggregated record.
var Magic = [4]byte{0xF3, 0x89, 0x9A, 0xC2}

// ErrCorrupt is wrapped by every Deaggregate error: the record has the magic
// prefix but its checksum, protobuf or key indexes are wrong.
var ErrCorrupt = errors.New("kpl: corrupt aggregated record")

// Overhead is the size of an empty aggregate: magic prefix plus MD5.
const Overhead = len(Magic) + md5.Size

// Protobuf field numbers of AggregatedRecord and Record.
const (
	fieldPartitionKeyTable    protowire.Number = 1
	fieldExplicitHashKeyTable protowire.Number = 2
	fieldRecords              protowire.Number = 3

	fieldPartitionKeyIndex    protowire.Number = 1
	fieldExplicitHashKeyIndex protowire.Number = 2
	fieldData                 protowire.Number = 3
	fieldTags                 protowire.Number = 4
)

// Record is one user record.
type Record struct {
	PartitionKey    string
	ExplicitHashKey string // "" = none
	Data            []byte
}

// Aggregator builds one aggregated Kinesis record, incrementally, tracking its
// encoded size exactly. The zero value is ready to use; an Aggregator is not
// safe for concurrent use. Reusing one across Build calls reuses its buffers.
type Aggregator struct {
	pkIndex  map[string]uint64
	ehkIndex map[string]uint64
	pkTable  []string // partition keys in index order

	// The three repeated fields, each already encoded. They are kept apart
	// because the reference encoders emit all of field 1, then 2, then 3, and
	// matching them byte for byte keeps cross-checks exact.
	pkBuf  []byte
	ehkBuf []byte
	recBuf []byte

	n        int
	firstPK  string
	firstEHK string
}

// Len returns the number of user records added since the last Build.
func (a *Aggregator) Len() int { return a.n }

// Size returns the encoded size of the aggregate that Build would return:
// magic, protobuf and MD5. It is Overhead when empty.
func (a *Aggregator) Size() int {
	return Overhead + len(a.pkBuf) + len(a.ehkBuf) + len(a.recBuf)
}

// SizeWith returns what Size would be after Add(r), without adding it.
func (a *Aggregator) SizeWith(r Record) int {
	return a.Size() + a.growth(r)
}

// PartitionKeys returns the distinct partition keys added since the last
// Build, in first-seen order. The slice is the Aggregator's own: it is valid
// until the next Add or Build and must not be modified.
func (a *Aggregator) PartitionKeys() []string { return a.pkTable }

// growth is how many bytes Add(r) would add.
func (a *Aggregator) growth(r Record) int {
	n := 0
	pkIdx, ok := a.pkIndex[r.PartitionKey]
	if !ok {
		pkIdx = uint64(len(a.pkTable))
		n += 1 + protowire.SizeBytes(len(r.PartitionKey))
	}
	inner := 1 + protowire.SizeVarint(pkIdx) + 1 + protowire.SizeBytes(len(r.Data))
	if r.ExplicitHashKey != "" {
		ehkIdx, ok := a.ehkIndex[r.ExplicitHashKey]
		if !ok {
			ehkIdx = uint64(len(a.ehkIndex))
			n += 1 + protowire.SizeBytes(len(r.ExplicitHashKey))
		}
		inner += 1 + protowire.SizeVarint(ehkIdx)
	}
	return n + 1 + protowire.SizeBytes(inner)
}

// Add appends r. It never fails; callers keep aggregates within Kinesis'
// record limit by checking SizeWith first.
func (a *Aggregator) Add(r Record) {
	if a.pkIndex == nil {
		a.pkIndex = make(map[string]uint64)
		a.ehkIndex = make(map[string]uint64)
	}
	pkIdx, ok := a.pkIndex[r.PartitionKey]
	if !ok {
		pkIdx = uint64(len(a.pkTable))
		a.pkIndex[r.PartitionKey] = pkIdx
		a.pkTable = append(a.pkTable, r.PartitionKey)
		a.pkBuf = protowire.AppendTag(a.pkBuf, fieldPartitionKeyTable, protowire.BytesType)
		a.pkBuf = protowire.AppendString(a.pkBuf, r.PartitionKey)
	}
	inner := 1 + protowire.SizeVarint(pkIdx) + 1 + protowire.SizeBytes(len(r.Data))
	var ehkIdx uint64
	if r.ExplicitHashKey != "" {
		ehkIdx, ok = a.ehkIndex[r.ExplicitHashKey]
		if !ok {
			ehkIdx = uint64(len(a.ehkIndex))
			a.ehkIndex[r.ExplicitHashKey] = ehkIdx
			a.ehkBuf = protowire.AppendTag(a.ehkBuf, fieldExplicitHashKeyTable, protowire.BytesType)
			a.ehkBuf = protowire.AppendString(a.ehkBuf, r.ExplicitHashKey)
		}
		inner += 1 + protowire.SizeVarint(ehkIdx)
	}
	b := protowire.AppendTag(a.recBuf, fieldRecords, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(inner))
	b = protowire.AppendTag(b, fieldPartitionKeyIndex, protowire.VarintType)
	b = protowire.AppendVarint(b, pkIdx)
	if r.ExplicitHashKey != "" {
		b = protowire.AppendTag(b, fieldExplicitHashKeyIndex, protowire.VarintType)
		b = protowire.AppendVarint(b, ehkIdx)
	}
	b = protowire.AppendTag(b, fieldData, protowire.BytesType)
	a.recBuf = protowire.AppendBytes(b, r.Data)
	if a.n == 0 {
		a.firstPK, a.firstEHK = r.PartitionKey, r.ExplicitHashKey
	}
	a.n++
}

// Build returns the aggregated record to put on the stream, with the
// partition key and explicit hash key ("" = none) of the first user record,
// and resets the Aggregator. The returned data is newly allocated and owned
// by the caller. With no records added it returns nil data.
func (a *Aggregator) Build() (data []byte, partitionKey, explicitHashKey string) {
	if a.n == 0 {
		return nil, "", ""
	}
	data = make([]byte, 0, a.Size())
	data = append(data, Magic[:]...)
	data = append(data, a.pkBuf...)
	data = append(data, a.ehkBuf...)
	data = append(data, a.recBuf...)
	sum := md5.Sum(data[len(Magic):])
	data = append(data, sum[:]...)
	partitionKey, explicitHashKey = a.firstPK, a.firstEHK
	a.Reset()
	return data, partitionKey, explicitHashKey
}

// Reset discards the added records and keeps the buffers for reuse.
func (a *Aggregator) Reset() {
	clear(a.pkIndex)
	clear(a.ehkIndex)
	clear(a.pkTable) // drop references to the keys
	a.pkTable = a.pkTable[:0]
	a.pkBuf, a.ehkBuf, a.recBuf = a.pkBuf[:0], a.ehkBuf[:0], a.recBuf[:0]
	a.n, a.firstPK, a.firstEHK = 0, "", ""
}

// IsAggregated reports whether data starts with the magic prefix and is long
// enough to hold the checksum.
func IsAggregated(data []byte) bool {
	return len(data) >= Overhead && [4]byte(data[:4]) == Magic
}

// Deaggregate returns the user records of an aggregated record. A record
// without the magic prefix is returned as one record unchanged (nil error),
// with the given partition key. A corrupt aggregate (bad MD5, bad protobuf,
// index out of range, missing required field) returns an error wrapping
// ErrCorrupt — the caller turns it into a bad record; it never panics.
//
// The returned Data slices alias data: copy them to keep them past data's
// lifetime.
func Deaggregate(data []byte, partitionKey string) ([]Record, error) {
	return AppendDeaggregated(nil, data, partitionKey)
}

// AppendDeaggregated is Deaggregate appending to dst, so a caller can reuse
// one slice across records. On error it returns dst unchanged.
func AppendDeaggregated(dst []Record, data []byte, partitionKey string) ([]Record, error) {
	return appendDeaggregated(dst, data, partitionKey, false)
}

// AppendVerified is AppendDeaggregated for an aggregate whose checksum
// VerifyChecksums has found good: it is not hashed again.
func AppendVerified(dst []Record, data []byte, partitionKey string) ([]Record, error) {
	return appendDeaggregated(dst, data, partitionKey, true)
}

func appendDeaggregated(dst []Record, data []byte, partitionKey string, verified bool) ([]Record, error) {
	if !IsAggregated(data) {
		return append(dst, Record{PartitionKey: partitionKey, Data: data}), nil
	}
	msg := data[len(Magic) : len(data)-md5.Size]
	if !verified && !checksumOK(data) {
		return dst, fmt.Errorf("%w: MD5 mismatch", ErrCorrupt)
	}

	// First pass: the key tables, which a writer may place anywhere.
	var pks, ehks []string
	nrec := 0
	err := walk(msg, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num == fieldRecords {
			nrec++
		}
		if num != fieldPartitionKeyTable && num != fieldExplicitHashKeyTable && num != fieldRecords {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("field %d has wire type %d", num, typ)
		}
		switch num {
		case fieldPartitionKeyTable:
			pks = append(pks, string(v))
		case fieldExplicitHashKeyTable:
			ehks = append(ehks, string(v))
		}
		return nil
	})
	if err != nil {
		return dst, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}

	// Second pass: the records, in order.
	start := len(dst)
	out := slices.Grow(dst, nrec)
	err = walk(msg, func(num protowire.Number, _ protowire.Type, v []byte) error {
		if num != fieldRecords {
			return nil
		}
		r, err := decodeRecord(v, pks, ehks)
		if err != nil {
			return fmt.Errorf("record %d: %w", len(out)-start, err)
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		clear(out[start:])
		return dst, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return out, nil
}

// walk calls fn for each top-level field of a protobuf message; v is the
// payload of length-delimited fields and nil for the others.
func walk(msg []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return protowire.ParseError(n)
		}
		msg = msg[n:]
		var v []byte
		if typ == protowire.BytesType {
			v, n = protowire.ConsumeBytes(msg)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, msg)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		msg = msg[n:]
		if err := fn(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}

func decodeRecord(msg []byte, pks, ehks []string) (Record, error) {
	var (
		r              Record
		hasPK, hasData bool
	)
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return r, protowire.ParseError(n)
		}
		msg = msg[n:]
		switch num {
		case fieldPartitionKeyIndex, fieldExplicitHashKeyIndex:
			if typ != protowire.VarintType {
				return r, fmt.Errorf("field %d has wire type %d", num, typ)
			}
			var idx uint64
			idx, n = protowire.ConsumeVarint(msg)
			if n < 0 {
				return r, fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
			}
			table, name := pks, "partition key"
			if num == fieldExplicitHashKeyIndex {
				table, name = ehks, "explicit hash key"
			}
			if idx >= uint64(len(table)) {
				return r, fmt.Errorf("%s index %d out of range (table has %d)", name, idx, len(table))
			}
			if num == fieldPartitionKeyIndex {
				r.PartitionKey, hasPK = table[idx], true
			} else {
				r.ExplicitHashKey = table[idx]
			}
		case fieldData:
			if typ != protowire.BytesType {
				return r, fmt.Errorf("field %d has wire type %d", num, typ)
			}
			var v []byte
			v, n = protowire.ConsumeBytes(msg)
			if n < 0 {
				return r, fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
			}
			r.Data, hasData = v[:len(v):len(v)], true
		default: // tags (field 4) and unknown fields are skipped
			if num == fieldTags && typ != protowire.BytesType {
				return r, fmt.Errorf("field %d has wire type %d", num, typ)
			}
			n = protowire.ConsumeFieldValue(num, typ, msg)
			if n < 0 {
				return r, fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
			}
		}
		msg = msg[n:]
	}
	if !hasPK {
		return r, errors.New("missing partition_key_index")
	}
	if !hasData {
		return r, errors.New("missing data")
	}
	return r, nil
}
