package kinesiswire

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
)

// decodeBoth decodes body as a 200 JSON GetRecords answer with the SDK's
// own protocol and with this package's; the results must be the same.
func decodeBoth(t *testing.T, body string) {
	t.Helper()
	op := smithy.NewOperationSchema(schemas.GetRecords, schemas.GetRecordsInput, schemas.GetRecordsOutput)
	js := awsjson.New11(schemas.Kinesis_20131202)
	decode := func(p smithyhttp.ClientProtocol, chunked bool) (*kinesis.GetRecordsOutput, error) {
		resp := &smithyhttp.Response{Response: &http.Response{StatusCode: 200, ContentLength: int64(len(body)),
			Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}}, Body: io.NopCloser(strings.NewReader(body))}}
		if chunked {
			// No Content-Length (a proxy answering chunked), read in pieces.
			resp.ContentLength, resp.Body = -1, io.NopCloser(iotest.HalfReader(strings.NewReader(body)))
		}
		out := &kinesis.GetRecordsOutput{}
		return out, p.DeserializeResponse(context.Background(), op, kinesis.TypeRegistry, resp, out)
	}
	want, wantErr := decode(js, false)
	for _, c := range []struct {
		chunked bool
		bufs    *Buffers
	}{{false, nil}, {true, nil}, {false, sharedBufs}, {true, sharedBufs}} {
		chunked := c.chunked
		got, gotErr := decode(&protocol{ClientProtocol: js, format: JSON, bufs: c.bufs}, chunked)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%s (chunked %v):\nerror %v, the SDK's %v", body, chunked, gotErr, wantErr)
		}
		if gotErr != nil {
			return
		}
		if !reflect.DeepEqual(got.Records, want.Records) || !reflect.DeepEqual(got.NextShardIterator, want.NextShardIterator) ||
			!reflect.DeepEqual(got.MillisBehindLatest, want.MillisBehindLatest) || !reflect.DeepEqual(got.ChildShards, want.ChildShards) {
			t.Fatalf("%s (chunked %v):\n got %s\nwant %s", body, chunked, show(got), show(want))
		}
	}
}

// sharedBufs is decoded into by every decodeBoth, answer after answer of
// every size, as a consumer's reader does (DecodeInto).
var sharedBufs = &Buffers{}

// randomAnswer is a GetRecords answer as Kinesis sends it, of fewer than
// maxRecords records of random data shorter than maxData bytes.
func randomAnswer(r *rand.Rand, maxRecords, maxData int) string {
	var b strings.Builder
	b.WriteString(`{"Records":[`)
	at := 1.7e9
	for i := range r.IntN(maxRecords) {
		if i > 0 {
			b.WriteByte(',')
		}
		data := make([]byte, r.IntN(maxData))
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		if r.IntN(3) == 0 { // else the last record's arrival, as records put together have
			at = 1.7e9 + r.Float64()*1e8
		}
		fmt.Fprintf(&b, `{"SequenceNumber":"%d","ApproximateArrivalTimestamp":%.3f,"Data":%q,"PartitionKey":"u-%d","EncryptionType":"NONE"}`,
			r.Uint64(), at, base64.StdEncoding.EncodeToString(data), r.IntN(1000))
	}
	fmt.Fprintf(&b, `],"NextShardIterator":"it-%d","MillisBehindLatest":%d}`, r.IntN(100), r.IntN(100000))
	return b.String()
}

func show(o *kinesis.GetRecordsOutput) string {
	var b strings.Builder
	fmt.Fprintf(&b, "next %v behind %v children %+v records:", o.NextShardIterator, o.MillisBehindLatest, o.ChildShards)
	if o.Records == nil {
		b.WriteString(" nil")
	}
	for _, r := range o.Records {
		fmt.Fprintf(&b, " {data %q seq %v pk %v at %v enc %q}", r.Data, r.SequenceNumber, r.PartitionKey, r.ApproximateArrivalTimestamp, r.EncryptionType)
	}
	return b.String()
}

// The JSON decoder gives the SDK's very output for what Kinesis and the
// emulators send, edge cases included; what it does not expect goes to
// the SDK's decoder, so the output is the SDK's anyway.
func TestJSON_DecodesAsTheSDKDoes(t *testing.T) {
	for _, body := range []string{
		`{"Records":[],"NextShardIterator":"AAA","MillisBehindLatest":0}`,
		`{"NextShardIterator":null,"MillisBehindLatest":12,"ChildShards":[{"ShardId":"shardId-000000000002","ParentShards":["shardId-000000000000"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"170141183460469231731687303715884105727"}}],"Records":[]}`,
		`{"Records":[{"Data":"eyJ2IjoxfQ==","PartitionKey":"u-1","SequenceNumber":"49590338271490256608559692538361571095921575989136588898","ApproximateArrivalTimestamp":1.796440980261E9,"EncryptionType":"NONE"}],"NextShardIterator":"it","MillisBehindLatest":5}`,
		`{"Records":[{"Data":"","PartitionKey":"\u00e9\"x\\y","SequenceNumber":"1","ApproximateArrivalTimestamp":1796440980.2617,"EncryptionType":"KMS","Unknown":{"a":[1]}}],"Other":true}`,
		`{"Records":[{"SequenceNumber":"2"},{"Data":"AA==","ApproximateArrivalTimestamp":1796440980}]}`,
		`{"Records":[{"Data":"AA==","ApproximateArrivalTimestamp":0.0005},{"Data":"AA==","ApproximateArrivalTimestamp":-1.5}]}`,
		// Arrival times equal to the last record's, and near them.
		`{"Records":[{"Data":"AA==","ApproximateArrivalTimestamp":1796440980.261},{"Data":"AQ==","ApproximateArrivalTimestamp":1796440980.261},{"Data":"Ag==","ApproximateArrivalTimestamp":1796440980.26},{"Data":"Aw==","ApproximateArrivalTimestamp":1796440980.2612},{"Data":"BA=="},{"Data":"BQ==","ApproximateArrivalTimestamp":1796440980.261},{"Data":"Bg==","ApproximateArrivalTimestamp":1.796440980261E9}]}`,
		`{"Records":[{"Data":null}]}`,
		`{"Records":[{"Data":"!!!"}]}`,
		`{"Records":[{"Data":"AA==","ApproximateArrivalTimestamp":"2026-12-05T00:00:00Z"}]}`,
		`{"Records":null,"MillisBehindLatest":null}`,
		`{"MillisBehindLatest":1.5}`,
		`{}`, `[]`, `{"Records":[`, ``,
	} {
		decodeBoth(t, body)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		body := randomAnswer(r, 20, 600)
		decodeBoth(t, body)
		// Decoded here, not handed to the SDK's decoder.
		if err := decodeGetRecordsJSON([]byte(body), &kinesis.GetRecordsOutput{}, nil); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
	}
}

// A JSON answer's buffer is pooled once decoded and read into by the next
// answers: nothing the records hold may point into it. Answers decoded one
// after another, all kept, must still equal the SDK's decoding of each.
func TestJSON_RecordsOutliveTheirPooledBody(t *testing.T) {
	op := smithy.NewOperationSchema(schemas.GetRecords, schemas.GetRecordsInput, schemas.GetRecordsOutput)
	js := awsjson.New11(schemas.Kinesis_20131202)
	decode := func(p smithyhttp.ClientProtocol, body string) *kinesis.GetRecordsOutput {
		resp := &smithyhttp.Response{Response: &http.Response{StatusCode: 200, ContentLength: int64(len(body)),
			Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}}, Body: io.NopCloser(strings.NewReader(body))}}
		out := &kinesis.GetRecordsOutput{}
		if err := p.DeserializeResponse(context.Background(), op, kinesis.TypeRegistry, resp, out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	ours := &protocol{ClientProtocol: js, format: JSON}
	r := rand.New(rand.NewPCG(3, 4))
	var bodies []string
	var got []*kinesis.GetRecordsOutput
	for range 100 {
		body := randomAnswer(r, 30, 400)
		bodies = append(bodies, body)
		got = append(got, decode(ours, body))
	}
	for i, body := range bodies {
		if want := decode(js, body); !reflect.DeepEqual(got[i].Records, want.Records) ||
			!reflect.DeepEqual(got[i].NextShardIterator, want.NextShardIterator) {
			t.Fatalf("answer %d changed after later answers were decoded:\n got %s\nwant %s", i, show(got[i]), show(want))
		}
	}
}

// The records' data share one buffer but never overlap: appending to one
// record's data copies instead of overwriting the next record's.
func TestJSON_RecordsDoNotShareBytes(t *testing.T) {
	body := `{"Records":[{"Data":"AQI="},{"Data":"AwQ="}]}`
	out := &kinesis.GetRecordsOutput{}
	if err := decodeGetRecordsJSON([]byte(body), out, nil); err != nil {
		t.Fatal(err)
	}
	_ = append(out.Records[0].Data, 9)
	if !bytes.Equal(out.Records[1].Data, []byte{3, 4}) {
		t.Fatalf("second record's data is %v after appending to the first", out.Records[1].Data)
	}
}

// The byte scanner decodes the answers Kinesis sends exactly as the
// tokenizer does, and leaves to the tokenizer whatever it is not sure of:
// over typical answers and thousands of mutations of them (whitespace,
// escapes, non-ASCII, bad numbers, duplicate and unknown names, cuts), it
// either matches the tokenizer's output or declines.
func TestScan_AgreesWithTheTokenizerOrDeclines(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var bodies []string
	for range 50 {
		bodies = append(bodies, randomAnswer(r, 8, 300))
	}
	scanned := 0
	check := func(body string) {
		t.Helper()
		var got, want kinesis.GetRecordsOutput
		if scanGetRecords([]byte(body), &got, nil) != nil {
			return
		}
		scanned++
		if err := tokenizeGetRecords([]byte(body), &want, nil); err != nil {
			t.Fatalf("%s: the scanner decoded what the tokenizer rejects (%v)", body, err)
		}
		if !reflect.DeepEqual(got.Records, want.Records) || !reflect.DeepEqual(got.NextShardIterator, want.NextShardIterator) ||
			!reflect.DeepEqual(got.MillisBehindLatest, want.MillisBehindLatest) {
			t.Fatalf("%s:\n scanner   %s\n tokenizer %s", body, show(&got), show(&want))
		}
	}
	for _, body := range bodies {
		check(body)
	}
	if scanned != len(bodies) {
		t.Fatalf("the scanner declined %d of %d typical answers", len(bodies)-scanned, len(bodies))
	}
	inserts := []string{" ", "\n", "\r", "\t", "=", "A", `\u0041`, `\"`, "é", "\x01", "-", "0", ".", "e5", "+", ",", `"`, "{", "}", "[", "]", ":", "null",
		`"Data":"AA==",`, `"X":1,`, `"MillisBehindLatest":1,`, `"Records":[],`}
	for range 20000 {
		body := []byte(bodies[r.IntN(len(bodies))])
		for range 1 + r.IntN(3) {
			i := r.IntN(len(body) + 1)
			switch r.IntN(3) {
			case 0:
				body = slices.Insert(body, i, []byte(inserts[r.IntN(len(inserts))])...)
			case 1:
				if i < len(body) {
					body = slices.Delete(body, i, i+1)
				}
			case 2:
				body = body[:i]
			}
		}
		check(string(body))
	}
}

// TestData64_AcceptsAndRejectsAsTheStandardLibrary: the vector decoder
// behind data64 gives encoding/base64's bytes and verdict on valid data of
// every length around its 32-byte blocks, and on data damaged at every
// position (a byte outside the alphabet, padding too early, a cut) — but
// for line breaks, which encoding/base64 skips and data64 rejects (a JSON
// string cannot hold them raw): the scanner leaves all validation of
// record data to it.
func TestData64_AcceptsAndRejectsAsTheStandardLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 64))
	check := func(b64 []byte) {
		t.Helper()
		want, wantErr := base64.StdEncoding.DecodeString(string(b64))
		if bytes.ContainsAny(b64, "\r\n") {
			wantErr = errUnexpected
		}
		// The record's slot sits between other records' bytes in the
		// shared buffer: nothing around it may change.
		s := &recordSink{bound: base64.StdEncoding.DecodedLen(len(b64)), data: make([]byte, 0, 64+base64.StdEncoding.DecodedLen(len(b64))+64)}
		s.data = append(s.data, bytes.Repeat([]byte{0xAA}, 64)...)
		got, err := s.data64(b64)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: error %v, encoding/base64 says %v", b64, err, wantErr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("%q: decoded %x, want %x", b64, got, want)
		}
		if !bytes.Equal(s.data[:64], bytes.Repeat([]byte{0xAA}, 64)) {
			t.Fatalf("%q: the bytes before the record's slot changed", b64)
		}
	}
	for n := range 400 {
		raw := make([]byte, n)
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		b64 := []byte(base64.StdEncoding.EncodeToString(raw))
		check(b64)
		if len(b64) == 0 {
			continue
		}
		for _, bad := range []byte{'!', '\n', '\r', '=', '-', '_', ' ', 0x80, 0} {
			at := rng.IntN(len(b64))
			damaged := slices.Clone(b64)
			damaged[at] = bad
			check(damaged)
		}
		check(b64[:len(b64)-1])
		check(slices.Insert(slices.Clone(b64), rng.IntN(len(b64)), '\n'))
		check(slices.Insert(slices.Clone(b64), rng.IntN(len(b64)), '\r', '\n', '\r', '\n'))
	}
}

// TestPlainASCII_IsTheByteTest: the word-at-a-time check says what testing
// each byte says, for every byte value at every position of strings of
// every length around the word size.
func TestPlainASCII_IsTheByteTest(t *testing.T) {
	byByte := func(v []byte) bool {
		for _, c := range v {
			if c < 0x20 || c >= 0x7f || c == '\\' {
				return false
			}
		}
		return true
	}
	for n := 1; n <= 24; n++ {
		v := bytes.Repeat([]byte{'7'}, n)
		for at := range n {
			for c := range 256 {
				v[at] = byte(c)
				if got, want := plainASCII(v), byByte(v); got != want {
					t.Fatalf("%q: plainASCII %v, byte by byte %v", v, got, want)
				}
			}
			v[at] = '7'
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100_000 {
		v := make([]byte, rng.IntN(70))
		for i := range v {
			v[i] = byte(0x18 + rng.IntN(0x6c)) // mostly printable, now and then not
		}
		if got, want := plainASCII(v), byByte(v); got != want {
			t.Fatalf("%q: plainASCII %v, byte by byte %v", v, got, want)
		}
	}
}

// An answer's buffers are sized from the proportions of the last large
// answer: close to what a like answer needs. When the next answer's
// records are much larger or smaller, its records still decode as the
// SDK decodes them (a second data buffer takes the rest).
func TestJSON_SizesBuffersFromTheLastAnswer(t *testing.T) {
	uniform := func(records, dataBytes int) (string, int) {
		var b strings.Builder
		b.WriteString(`{"Records":[`)
		for i := range records {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"SequenceNumber":"4959033827149025660855969253836157109592157598913658%04d","ApproximateArrivalTimestamp":1796440980.%03d,"Data":%q,"PartitionKey":"u-%d"}`,
				i, i%1000, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(i)}, dataBytes)), i)
		}
		b.WriteString(`],"NextShardIterator":"it","MillisBehindLatest":0}`)
		return b.String(), records * dataBytes
	}
	body, data := uniform(400, 300)
	if err := decodeGetRecordsJSON([]byte(body), &kinesis.GetRecordsOutput{}, nil); err != nil {
		t.Fatal(err)
	}
	out := &kinesis.GetRecordsOutput{}
	s := newRecordSink([]byte(body), out, nil)
	if c := cap(s.data); c < data || c > data*17/16+1024+16 {
		t.Errorf("data buffer of %d bytes for %d bytes of data", c, data)
	}
	if c := cap(out.Records); c < 400 || c > 400*17/16+8+1 {
		t.Errorf("room for %d records for 400", c)
	}
	r := rand.New(rand.NewPCG(8, 9))
	for i := range 12 {
		// Large answers (they teach the proportions), alternately of tiny
		// and of large records, then small ones.
		records, maxData := 1200, 16
		if i%2 == 1 {
			records, maxData = 100, 4000
		}
		if i >= 8 {
			records, maxData = 5, 50
		}
		body := randomAnswer(r, records, maxData)
		decodeBoth(t, body)
		if err := decodeGetRecordsJSON([]byte(body), &kinesis.GetRecordsOutput{}, nil); err != nil {
			t.Fatalf("answer %d (%d bytes): %v", i, len(body), err)
		}
	}
}

// A body read into a new buffer has room for the next answers, about as
// large, once the buffer is pooled (putBody): sized exactly, most pooled
// bodies were a little too small for the next answer and another was
// made. (Whether the pool hands the buffer back is sync.Pool's affair:
// under the race detector it drops a quarter of what it is given.)
func TestReadBody_APooledBodyHasRoomForALittleLargerAnswer(t *testing.T) {
	const n = 1_400_000
	body := bytes.Repeat([]byte{'x'}, n)
	resp := &smithyhttp.Response{Response: &http.Response{ContentLength: n, Body: io.NopCloser(bytes.NewReader(body))}}
	b, err := readBody(resp, true, nil)
	if err != nil || !bytes.Equal(b, body) {
		t.Fatalf("read %d bytes: %d, %v", n, len(b), err)
	}
	if cap(b) <= n+n/10 {
		t.Fatalf("a %d-byte body got a buffer of %d: no room for an answer 10%% larger", n, cap(b))
	}
}
