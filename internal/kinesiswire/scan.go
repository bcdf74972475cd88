package kinesiswire

import (
	"bytes"
	"encoding/binary"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/go-json-experiment/json/jsontext"
)

// scanGetRecords decodes a GetRecords answer in the shape Kinesis and the
// emulators send (Records, NextShardIterator and MillisBehindLatest; each
// record's Data, SequenceNumber, PartitionKey, ApproximateArrivalTimestamp
// and EncryptionType; ASCII strings without escapes; no duplicate names)
// with a byte scanner, into out as decodeGetRecordsJSON would. It returns
// errUnexpected on anything else, and decodeGetRecordsJSON's tokenizer
// decides. The tokenizer validated every byte of every record's base64
// data twice (once as a JSON string, once as base64): ~0.8 µs a record,
// half of decoding an answer (BenchmarkDecode). Here the data is found with
// one IndexByte and validated once, by the base64 decoder.
func scanGetRecords(body []byte, out *kinesis.GetRecordsOutput, bufs *Buffers) error {
	s := scanner{b: body}
	if !s.eat('{') {
		return errUnexpected
	}
	var seen [3]bool // Records, NextShardIterator, MillisBehindLatest
	for first := true; !s.eat('}'); first = false {
		if !first && !s.eat(',') {
			return errUnexpected
		}
		name, ok := s.str()
		if !ok || !s.eat(':') {
			return errUnexpected
		}
		f := slices.Index([]string{"Records", "NextShardIterator", "MillisBehindLatest"}, string(name))
		if f < 0 || seen[f] {
			// ChildShards (at a shard's end), anything new, or a name twice:
			// the tokenizer.
			return errUnexpected
		}
		seen[f] = true
		switch f {
		case 0:
			if scanRecords(&s, body, out, bufs) != nil {
				return errUnexpected
			}
		case 1:
			if s.null() {
				out.NextShardIterator = nil
				break
			}
			v, ok := s.str()
			if !ok {
				return errUnexpected
			}
			it := string(v)
			out.NextShardIterator = &it
		case 2:
			if s.null() {
				out.MillisBehindLatest = nil
				break
			}
			v, ok := s.num()
			if !ok {
				return errUnexpected
			}
			n, err := optInt64(jsontext.Value(v))
			if err != nil {
				return errUnexpected
			}
			out.MillisBehindLatest = n
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return errUnexpected
	}
	return nil
}

// scanRecords decodes the Records array.
func scanRecords(s *scanner, body []byte, out *kinesis.GetRecordsOutput, bufs *Buffers) error {
	if s.null() || !s.eat('[') {
		return errUnexpected
	}
	sink := newRecordSink(body, out, bufs)
	// The last arrival time parsed, and its text: the records of one
	// PutRecords call arrive in the same millisecond, and follow each
	// other on a shard.
	var lastAt []byte
	var lastTime time.Time
	for first := true; !s.eat(']'); first = false {
		if !first && !s.eat(',') || !s.eat('{') {
			return errUnexpected
		}
		var r types.Record
		var w jsonRecord
		var has [3]bool  // seq, pk, at
		var seen [5]bool // every name once
		for firstField := true; !s.eat('}'); firstField = false {
			if !firstField && !s.eat(',') {
				return errUnexpected
			}
			// A name is one of five: checked by comparing it with them,
			// not byte by byte as a string (escapes, control characters)
			// first.
			name, ok := s.rawStr()
			if !ok || !s.eat(':') {
				return errUnexpected
			}
			f := recordName(name)
			if f < 0 || seen[f] {
				return errUnexpected
			}
			seen[f] = true
			switch f {
			case 0:
				// Not checked byte by byte as a string: data64 rejects
				// every byte that is not base64 (a backslash, a control
				// character, a line break).
				v, ok := s.rawStr()
				if !ok {
					return errUnexpected
				}
				var err error
				if r.Data, err = sink.data64(v); err != nil {
					return errUnexpected
				}
			case 1, 2:
				v, ok := s.str()
				if !ok {
					return errUnexpected
				}
				if f == 1 {
					w.seq, has[0] = sink.str(v), true
				} else {
					w.pk, has[1] = sink.str(v), true
				}
			case 3:
				v, ok := s.num()
				if !ok {
					return errUnexpected
				}
				if lastAt == nil || !bytes.Equal(v, lastAt) {
					var err error
					if lastTime, err = epochSeconds(v); err != nil {
						return errUnexpected
					}
					lastAt = v
				}
				w.at, has[2] = lastTime, true
			case 4:
				v, ok := s.str()
				if !ok {
					return errUnexpected
				}
				switch string(v) {
				case "NONE":
					r.EncryptionType = types.EncryptionTypeNone
				case "KMS":
					r.EncryptionType = types.EncryptionTypeKms
				default:
					r.EncryptionType = types.EncryptionType(v)
				}
			}
		}
		sink.add(r, w, has)
	}
	sink.done()
	return nil
}

// recordName is the index of a record field the scanner knows: Data,
// SequenceNumber, PartitionKey, ApproximateArrivalTimestamp,
// EncryptionType; -1 for any other name.
func recordName(name []byte) int {
	switch string(name) {
	case "Data":
		return 0
	case "SequenceNumber":
		return 1
	case "PartitionKey":
		return 2
	case "ApproximateArrivalTimestamp":
		return 3
	case "EncryptionType":
		return 4
	}
	return -1
}

// scanner reads JSON from b at i.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	// Every whitespace byte is at most ' ': one comparison a call for
	// compact JSON, where the switch took four.
	for s.i < len(s.b) && s.b[s.i] <= ' ' {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// eat consumes c after whitespace, if it is next.
func (s *scanner) eat(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// null consumes a null, if it is next.
func (s *scanner) null() bool {
	s.ws()
	if bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// str consumes a string of printable ASCII without escapes and returns
// its contents; false for any other string (or none).
func (s *scanner) str() ([]byte, bool) {
	v, ok := s.rawStr()
	if !ok || !plainASCII(v) {
		return nil, false
	}
	return v, true
}

// plainASCII reports whether every byte of v is printable ASCII other than
// a backslash (0x20..0x7e, not '\\'), eight bytes at a time: sequence
// numbers are 56 digits, and a byte at a time this was ~3% of an archive's
// CPU. Each test is exact for "some byte of the word is": x < 0x20 borrows
// into its top bit when 0x20 is subtracted, a top bit set is x ≥ 0x80, and
// a zero byte of w^0x7f… or w^0x5c… is a DEL or a backslash.
func plainASCII(v []byte) bool {
	const ones, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(v); i += 8 {
		w := binary.LittleEndian.Uint64(v[i:])
		del, bs := w^(0x7f*ones), w^('\\'*ones)
		if ((w-0x20*ones)&^w|w|(del-ones)&^del|(bs-ones)&^bs)&hi != 0 {
			return false
		}
	}
	for _, c := range v[i:] {
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// rawStr consumes a string up to the next quote and returns its bytes
// unchecked: the caller must reject escapes and control characters.
func (s *scanner) rawStr() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	n := bytes.IndexByte(s.b[s.i:], '"')
	if n < 0 {
		return nil, false
	}
	v := s.b[s.i : s.i+n]
	s.i += n + 1
	return v, true
}

// num consumes a JSON number (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?)
// and returns it.
func (s *scanner) num() ([]byte, bool) {
	s.ws()
	start, b := s.i, s.b
	i := s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - j
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	s.i = i
	return b[start:i], true
}
