package kinesiswire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/segmentio/asm/base64"

	"github.com/clickstream-go/clickstream/internal/decimal"
)

// errUnexpected: the answer is not in the shape decodeGetRecordsJSON
// handles; the SDK's decoder gets it instead.
var errUnexpected = errors.New("GetRecords answer not in the expected shape")

// jsonRecord holds the strings of one record, so that the SDK Record's
// pointers need no allocation of their own.
type jsonRecord struct {
	seq, pk string
	at      time.Time
}

// decodeGetRecordsJSON decodes a JSON GetRecords answer into out exactly as
// the SDK's deserializer does (types.Record fields, nil for absent ones, an
// empty non-nil Records for []), or returns an error, leaving out to be
// decoded again by the SDK. Every record's data is base64-decoded into one
// buffer for the whole answer: bufs' when not nil (DecodeInto).
func decodeGetRecordsJSON(body []byte, out *kinesis.GetRecordsOutput, bufs *Buffers) error {
	if scanGetRecords(body, out, bufs) == nil {
		return nil
	}
	out.Records, out.NextShardIterator, out.MillisBehindLatest, out.ChildShards = nil, nil, nil, nil
	return tokenizeGetRecords(body, out, bufs)
}

// tokenizeGetRecords is decodeGetRecordsJSON with the jsontext tokenizer:
// any JSON, strings escaped or not, unknown names skipped.
func tokenizeGetRecords(body []byte, out *kinesis.GetRecordsOutput, bufs *Buffers) error {
	d := jsontext.NewDecoder(bytes.NewReader(body))
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return errUnexpected
	}
	for d.PeekKind() == '"' {
		name, err := d.ReadValue()
		if err != nil {
			return err
		}
		switch string(name) {
		case `"Records"`:
			if err := decodeRecords(d, body, out, bufs); err != nil {
				return err
			}
		case `"NextShardIterator"`:
			v, err := d.ReadValue()
			if err != nil {
				return err
			}
			if out.NextShardIterator, err = optString(v); err != nil {
				return err
			}
		case `"MillisBehindLatest"`:
			v, err := d.ReadValue()
			if err != nil {
				return err
			}
			if out.MillisBehindLatest, err = optInt64(v); err != nil {
				return err
			}
		case `"ChildShards"`:
			v, err := d.ReadValue()
			if err != nil {
				return err
			}
			// Only at a shard's end: encoding/json is fine here.
			if err := json.Unmarshal(v, &out.ChildShards); err != nil {
				return err
			}
		default:
			if err := d.SkipValue(); err != nil {
				return err
			}
		}
	}
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '}' {
		return errUnexpected
	}
	return nil
}

// decodeRecords decodes the Records array.
func decodeRecords(d *jsontext.Decoder, body []byte, out *kinesis.GetRecordsOutput, bufs *Buffers) error {
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '[' {
		return errUnexpected
	}
	sink := newRecordSink(body, out, bufs)
	for d.PeekKind() == '{' {
		if _, err := d.ReadToken(); err != nil {
			return err
		}
		var r types.Record
		var w jsonRecord
		var has [3]bool // seq, pk, at
		for d.PeekKind() == '"' {
			name, err := d.ReadValue()
			if err != nil {
				return err
			}
			switch string(name) {
			case `"Data"`:
				v, err := d.ReadValue()
				if err != nil {
					return err
				}
				if v.Kind() != '"' || bytes.IndexByte(v, '\\') >= 0 {
					return errUnexpected
				}
				if r.Data, err = sink.data64(v[1 : len(v)-1]); err != nil {
					return err
				}
			case `"SequenceNumber"`, `"PartitionKey"`:
				seq := name[1] == 'S' // name is only valid until the next read
				v, err := d.ReadValue()
				if err != nil {
					return err
				}
				s, err := str(v)
				if err != nil {
					return err
				}
				if seq {
					w.seq, has[0] = s, true
				} else {
					w.pk, has[1] = s, true
				}
			case `"ApproximateArrivalTimestamp"`:
				v, err := d.ReadValue()
				if err != nil {
					return err
				}
				if v.Kind() != '0' {
					return errUnexpected
				}
				if w.at, err = epochSeconds(v); err != nil {
					return err
				}
				has[2] = true
			case `"EncryptionType"`:
				v, err := d.ReadValue()
				if err != nil {
					return err
				}
				switch string(v) {
				case `"NONE"`:
					r.EncryptionType = types.EncryptionTypeNone
				case `"KMS"`:
					r.EncryptionType = types.EncryptionTypeKms
				default:
					s, err := str(v)
					if err != nil {
						return err
					}
					r.EncryptionType = types.EncryptionType(s)
				}
			default:
				if err := d.SkipValue(); err != nil {
					return err
				}
			}
		}
		if tok, err := d.ReadToken(); err != nil || tok.Kind() != '}' {
			return errUnexpected
		}
		sink.add(r, w, has)
	}
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != ']' {
		return errUnexpected
	}
	sink.done()
	return nil
}

// str is a JSON string value as a Go string.
func str(v jsontext.Value) (string, error) {
	if v.Kind() != '"' {
		return "", errUnexpected
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]), nil
	}
	b, err := jsontext.AppendUnquote(nil, v)
	return string(b), err
}

// optString is a string or null.
func optString(v jsontext.Value) (*string, error) {
	if v.Kind() == 'n' {
		return nil, nil
	}
	s, err := str(v)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// optInt64 is an integer or null.
func optInt64(v jsontext.Value) (*int64, error) {
	if v.Kind() == 'n' {
		return nil, nil
	}
	if v.Kind() != '0' {
		return nil, errUnexpected
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// recordSink appends decoded records to an answer's Records: their data in
// one buffer for the whole answer (two at most), their strings and times in
// jsonRecords, so that a record needs no allocation of its own. With
// Buffers, those of the caller's last answer are used again when large
// enough.
type recordSink struct {
	out      *kinesis.GetRecordsOutput
	body     int    // bytes of the answer
	bound    int    // DecodedLen(body): no answer holds more data
	reserved int    // DecodedLen of the records' base64 so far
	decoded  int    // bytes of data decoded
	data     []byte // the buffer records' data are decoded into
	first    []byte // the first such buffer, sized from lastShape
	wire     []jsonRecord
	bufs     *Buffers // nil: none
	strs     []byte   // memory of the records' strings (str)
}

// strChunk is the memory str takes at a time: ~100 records' sequence
// numbers and partition keys.
const strChunk = 8 << 10

// str is v as a string in memory shared by many records' sequence numbers
// and partition keys: one allocation where each string was one of its
// own, two a record. The memory is never reused, so a string kept (a
// checkpoint's sequence number) stays as it is, keeping its chunk alive.
func (s *recordSink) str(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	if len(s.strs)+len(v) > cap(s.strs) {
		s.strs = make([]byte, 0, max(strChunk, len(v)))
	}
	s.strs = append(s.strs, v...)
	return unsafe.String(&s.strs[len(s.strs)-len(v)], len(v))
}

// lastShape is the proportions of the last large JSON answer the process
// decoded, per byte of answer in 1/shapeOne: bytes of record data, and
// records. An answer's buffers are sized from them, 1/16 over. Sized from
// the answer's length alone (the most its base64 can decode to, and a
// record every 200 bytes), the buffers were ~35% larger than the data of
// the end-to-end traffic's records, and 2.8x as many record slots: memory
// every shard's batch in flight held, and zeroed at allocation.
var lastShape struct{ data, records atomic.Uint32 }

const (
	shapeOne = 1 << 16
	// shapeMinBody: smaller answers (idle polls, a shard's first call) do
	// not teach the proportions.
	shapeMinBody = 64 << 10
)

func newRecordSink(body []byte, out *kinesis.GetRecordsOutput, bufs *Buffers) *recordSink {
	s := &recordSink{out: out, body: len(body), bound: base64.StdEncoding.DecodedLen(len(body)), bufs: bufs}
	dataCap, recCap := s.bound, len(body)/200+1
	if d, r := lastShape.data.Load(), lastShape.records.Load(); d > 0 && r > 0 {
		dataCap = min(dataCap, int(uint64(len(body))*uint64(d)/shapeOne*17/16)+1024)
		recCap = min(recCap, int(uint64(len(body))*uint64(r)/shapeOne*17/16)+8)
	}
	var data []byte
	var records []types.Record
	if bufs != nil {
		data, records, s.wire = bufs.data, bufs.records, bufs.wire[:0]
	}
	if cap(records) >= recCap {
		out.Records = records[:0]
	} else {
		out.Records = make([]types.Record, 0, recCap)
	}
	if cap(data) < dataCap {
		data = make([]byte, 0, dataCap)
	}
	s.data, s.first = data[:0], data[:0]
	return s
}

// done records the answer's proportions for the next answers' buffers,
// and keeps the buffers in the caller's Buffers.
func (s *recordSink) done() {
	if s.bufs != nil {
		s.bufs.keep(s)
	}
	if s.body < shapeMinBody || len(s.out.Records) == 0 {
		return
	}
	lastShape.data.Store(uint32(min(uint64(s.decoded)*shapeOne/uint64(s.body), shapeOne)))
	lastShape.records.Store(uint32(max(uint64(len(s.out.Records))*shapeOne/uint64(s.body), 1)))
}

// data64 decodes a record's base64 data into the shared buffer, with
// segmentio/asm's decoder: AVX2 (NEON on arm64), 4.2x encoding/base64 on a
// record of 428 characters, the hottest loop of the read path. It passes
// the tail and anything from an invalid byte on to encoding/base64, which
// decides what is rejected. Its vector stores stay within the
// DecodedLen(len(b64)) bytes given.
//
// When the buffer sized from the last answer's proportions is full, a
// second one takes the rest of the answer: what the records so far leave
// of the bound, enough for all the answer's other records (the sum of
// their DecodedLens is at most DecodedLen of their sum).
func (s *recordSink) data64(b64 []byte) ([]byte, error) {
	n := base64.StdEncoding.DecodedLen(len(b64))
	if s.reserved+n > s.bound {
		return nil, errUnexpected
	}
	if len(s.data)+n > cap(s.data) {
		s.data = make([]byte, 0, s.bound-s.reserved)
	}
	s.reserved += n
	start := len(s.data)
	n, err := base64.StdEncoding.Decode(s.data[start:start+n], b64)
	if err != nil {
		return nil, err
	}
	// The decoder skips line breaks, which a JSON string cannot hold raw:
	// without them every 4 characters are 3 bytes but the padding's.
	if len(b64)%4 != 0 || n != len(b64)/4*3-padding(b64) {
		return nil, errUnexpected
	}
	s.decoded += n
	s.data = s.data[:start+n]
	return s.data[start : start+n : start+n], nil
}

// padding is how many '=' end b64.
func padding(b64 []byte) int {
	n := 0
	for i := len(b64) - 1; i >= 0 && n < 2 && b64[i] == '='; i-- {
		n++
	}
	return n
}

// add appends r, pointing at w's fields for those has marks present
// (sequence number, partition key, arrival time).
func (s *recordSink) add(r types.Record, w jsonRecord, has [3]bool) {
	if cap(s.wire) == 0 {
		s.wire = make([]jsonRecord, 0, cap(s.out.Records))
	}
	if len(s.wire) == cap(s.wire) {
		// The records point into wire: a new backing array for the next
		// ones, never a copy of the old.
		s.wire = make([]jsonRecord, 0, 2*cap(s.wire))
	}
	s.wire = append(s.wire, w)
	pw := &s.wire[len(s.wire)-1]
	if has[0] {
		r.SequenceNumber = &pw.seq
	}
	if has[1] {
		r.PartitionKey = &pw.pk
	}
	if has[2] {
		r.ApproximateArrivalTimestamp = &pw.at
	}
	s.out.Records = append(s.out.Records, r)
}

// epochSeconds is an arrival time as smithy-go's ParseEpochSeconds makes
// it: milliseconds, truncated, UTC.
func epochSeconds(v []byte) (time.Time, error) {
	f, ok := decimal.Float(v)
	if !ok {
		var err error
		if f, err = strconv.ParseFloat(string(v), 64); err != nil {
			return time.Time{}, err
		}
	}
	return time.Unix(0, int64(f*1e3)*1e6).UTC(), nil
}
