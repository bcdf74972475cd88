package kinesiswire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/fxamacker/cbor/v2"
	"github.com/segmentio/asm/base64"
)

// getRecordsOutput is a GetRecords answer on the wire. Records are decoded
// into wireRecords and the SDK's types.Records point into them: per record
// only the sequence number and partition key are allocated, not a pointer
// and a time per field.
type getRecordsOutput struct {
	Records            []wireRecord       `cbor:"Records"`
	NextShardIterator  *string            `cbor:"NextShardIterator"`
	MillisBehindLatest *int64             `cbor:"MillisBehindLatest"`
	ChildShards        []types.ChildShard `cbor:"ChildShards"`
}

type wireRecord struct {
	SequenceNumber              string  `cbor:"SequenceNumber"`
	PartitionKey                string  `cbor:"PartitionKey"`
	Data                        blob    `cbor:"Data"`
	ApproximateArrivalTimestamp stamp   `cbor:"ApproximateArrivalTimestamp"`
	EncryptionType              encType `cbor:"EncryptionType"`
}

// decodeGetRecords decodes a CBOR GetRecords answer into out. The records'
// Data alias body.
func decodeGetRecords(body []byte, out *kinesis.GetRecordsOutput) error {
	var w getRecordsOutput
	if err := cbor.Unmarshal(body, &w); err != nil {
		return fmt.Errorf("decode GetRecords answer: %w", err)
	}
	out.NextShardIterator = w.NextShardIterator
	out.MillisBehindLatest = w.MillisBehindLatest
	out.ChildShards = w.ChildShards
	if w.Records == nil {
		return nil
	}
	out.Records = make([]types.Record, len(w.Records))
	for i := range w.Records {
		r, o := &w.Records[i], &out.Records[i]
		o.Data = r.Data
		o.EncryptionType = types.EncryptionType(r.EncryptionType)
		if r.SequenceNumber != "" {
			o.SequenceNumber = &r.SequenceNumber
		}
		if r.PartitionKey != "" {
			o.PartitionKey = &r.PartitionKey
		}
		if r.ApproximateArrivalTimestamp.ok {
			o.ApproximateArrivalTimestamp = &r.ApproximateArrivalTimestamp.t
		}
	}
	return nil
}

// blob is record data: a byte string, used in place, or base64 text
// (kinesis-local, kinesalite), decoded.
type blob []byte

func (d *blob) UnmarshalCBOR(b []byte) error {
	major, n, hl, ok := head(b)
	switch {
	case ok && major == 2 && n == uint64(len(b)-hl):
		*d = b[hl:len(b):len(b)] // capped: an append copies instead of overwriting the next record
		return nil
	case ok && major == 3 && n == uint64(len(b)-hl):
		out := make([]byte, base64.StdEncoding.DecodedLen(int(n)))
		m, err := base64.StdEncoding.Decode(out, b[hl:])
		if err != nil {
			return fmt.Errorf("Data: %w", err)
		}
		*d = out[:m]
		return nil
	case isNull(b):
		*d = nil
		return nil
	}
	// Indefinite-length (chunked) strings: rare, decoded generically.
	var v any
	if err := cbor.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("Data: %w", err)
	}
	switch v := v.(type) {
	case []byte:
		*d = v
		return nil
	case string:
		out, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return fmt.Errorf("Data: %w", err)
		}
		*d = out
		return nil
	}
	return fmt.Errorf("Data: want a byte string or base64 text, got %T", v)
}

// stamp is ApproximateArrivalTimestamp in any of the forms servers send:
// epoch milliseconds (AWS, tagged 1 as the Java SDK writes it;
// kinesis-local, untagged) or epoch seconds (kinesalite: a float; RFC 8949's
// tag 1). A magnitude of 1e11 or more is read as milliseconds: as seconds
// that would be after the year 5000, and as milliseconds it is after 1973,
// so no arrival time is ambiguous.
type stamp struct {
	t  time.Time
	ok bool
}

const msThreshold = 1e11

func (s *stamp) UnmarshalCBOR(b []byte) error {
	if len(b) > 0 && b[0] == 0xc1 { // tag 1, epoch-based date/time
		b = b[1:]
	}
	if isNull(b) {
		*s = stamp{}
		return nil
	}
	major, n, hl, ok := head(b)
	if ok && hl == len(b) {
		switch {
		case major == 0 && n <= math.MaxInt64:
			ms := int64(n)
			if n < msThreshold {
				ms *= 1000
			}
			*s = stamp{time.UnixMilli(ms).UTC(), true}
			return nil
		case b[0] == 0xfb:
			return s.setFloat(math.Float64frombits(n))
		case b[0] == 0xfa:
			return s.setFloat(float64(math.Float32frombits(uint32(n))))
		}
	}
	var f float64 // negative integers, half floats
	if err := cbor.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("ApproximateArrivalTimestamp: %w", err)
	}
	return s.setFloat(f)
}

func (s *stamp) setFloat(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return errors.New("ApproximateArrivalTimestamp: not a finite number")
	}
	if math.Abs(f) < msThreshold {
		f *= 1000
	}
	*s = stamp{time.UnixMilli(int64(math.Round(f))).UTC(), true}
	return nil
}

// encType is EncryptionType, without allocating for the two values there are.
type encType types.EncryptionType

func (e *encType) UnmarshalCBOR(b []byte) error {
	switch string(b) {
	case "\x64NONE":
		*e = encType(types.EncryptionTypeNone)
	case "\x63KMS":
		*e = encType(types.EncryptionTypeKms)
	case "\xf6", "\xf7":
		*e = ""
	default:
		var s string
		if err := cbor.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("EncryptionType: %w", err)
		}
		*e = encType(s)
	}
	return nil
}

// head parses the head of the CBOR data item in b: its major type, its
// argument (a length, a value, or a float's bits) and the head's length.
// ok is false for indefinite lengths and truncated input.
func head(b []byte) (major byte, arg uint64, hl int, ok bool) {
	if len(b) == 0 {
		return 0, 0, 0, false
	}
	major, info := b[0]>>5, b[0]&0x1f
	switch {
	case info < 24:
		return major, uint64(info), 1, true
	case info == 24 && len(b) >= 2:
		return major, uint64(b[1]), 2, true
	case info == 25 && len(b) >= 3:
		return major, uint64(binary.BigEndian.Uint16(b[1:])), 3, true
	case info == 26 && len(b) >= 5:
		return major, uint64(binary.BigEndian.Uint32(b[1:])), 5, true
	case info == 27 && len(b) >= 9:
		return major, binary.BigEndian.Uint64(b[1:]), 9, true
	}
	return major, 0, 0, false
}

// isNull reports whether b is CBOR null or undefined.
func isNull(b []byte) bool { return len(b) == 1 && (b[0] == 0xf6 || b[0] == 0xf7) }
