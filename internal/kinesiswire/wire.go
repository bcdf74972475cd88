// Package kinesiswire decodes GetRecords answers without the SDK's generic
// deserializer, which is a large share of a busy consumer's CPU (~3 µs and
// 11 allocations a record, most of it base64 inside encoding/json tokens),
// in either wire format:
//
//   - JSON (the JSON 1.1 protocol aws-sdk-go-v2 speaks): the answer is read
//     in one buffer sized from Content-Length and decoded by a byte scanner
//     when it has the usual shape (scan.go), else by the jsontext tokenizer,
//     every record's data base64-decoded into one shared buffer; anything
//     neither expects is handed to the SDK's decoder, so the result is the
//     SDK's own (checked field by field in the tests).
//   - CBOR (application/x-amz-cbor-1.1, what the AWS Java SDK uses): record
//     data is a byte string used where it lies, with no copy.
//
// A caller that keeps nothing of an answer once it reads the next can have
// each decoded into the memory of the one before (DecodeInto, Buffers).
//
// It is a protocol for the SDK's own client, not a client of its own: the
// kinesis.Client still resolves the endpoint, signs (SigV4), retries, counts
// and logs the call, and only the GetRecords request body (CBOR) and the
// answer's decoding change. Every other operation, and every error answer,
// go through the client's JSON protocol; a CBOR error answer is rendered as
// JSON for it, so errors are the SDK's own typed errors
// (*types.ExpiredIteratorException, ...) in both formats.
//
// What servers send over CBOR differs, and the decoder accepts every form:
// data as a byte string (the point of CBOR) or as base64 text (kinesis-local
// and kinesalite send that); ApproximateArrivalTimestamp as epoch
// milliseconds, tagged 1 (how the AWS Java SDK, Kinesis' CBOR client, writes
// and reads timestamps) or untagged (kinesis-local), or as epoch seconds
// (kinesalite: an untagged float; RFC 8949's tag 1). kinesalite cuts CBOR
// answers of more than about 16 KiB short, so CBOR is for kinesis-local and
// AWS; and the shard-limit proxy (localstack/kinesisproxy) reads only JSON
// bodies, so it forwards CBOR reads without metering them.
package kinesiswire

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/fxamacker/cbor/v2"
)

// Format is the wire format of GetRecords.
type Format int

const (
	// JSON is the SDK's protocol, its GetRecords answers decoded here.
	JSON Format = iota
	// CBOR sends GetRecords as CBOR and decodes the CBOR answer.
	CBOR
)

// CBORContentType is the CBOR content type Kinesis accepts.
const CBORContentType = "application/x-amz-cbor-1.1"

// UseCBOR is a kinesis.Options function that sends GetRecords over CBOR;
// every other operation is unchanged. For a new client:
// kinesis.NewFromConfig(cfg, kinesiswire.UseCBOR), or per call.
func UseCBOR(o *kinesis.Options) { o.Protocol = wrapProtocol(o.Protocol, CBOR) }

func wrapProtocol(p smithyhttp.ClientProtocol, f Format) smithyhttp.ClientProtocol {
	if w, ok := p.(*protocol); ok {
		p = w.ClientProtocol
	}
	return &protocol{ClientProtocol: p, format: f}
}

// Client is a kinesis.Client whose GetRecords answers are decoded here, in
// its Format; every other method is the wrapped client's.
type Client struct {
	*kinesis.Client
	use func(*kinesis.Options)
}

// Wrap returns c with GetRecords in format f. c is not changed and may
// still be used as it is.
func Wrap(c *kinesis.Client, f Format) *Client {
	p := wrapProtocol(c.Options().Protocol, f)
	return &Client{Client: c, use: func(o *kinesis.Options) { o.Protocol = p }}
}

// GetRecords is kinesis.Client.GetRecords in the client's format. The
// records' Data share one buffer per call: a caller that keeps a few
// records of a large answer for long should copy their Data, or the whole
// buffer stays in memory. With DecodeInto among optFns, the answer is
// decoded into the caller's Buffers.
func (c *Client) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	// The client's protocol first, so that a DecodeInto option finds it.
	return c.Client.GetRecords(ctx, in, append([]func(*kinesis.Options){c.use}, optFns...)...)
}

// protocol is the client's own protocol (awsJson 1.1) with GetRecords
// handled here.
type protocol struct {
	smithyhttp.ClientProtocol
	format Format
	bufs   *Buffers // DecodeInto's, or nil: an answer's memory is its own
}

// getRecordsInput is GetRecordsInput on the wire.
type getRecordsInput struct {
	ShardIterator *string `cbor:"ShardIterator,omitempty"`
	Limit         *int32  `cbor:"Limit,omitempty"`
	StreamARN     *string `cbor:"StreamARN,omitempty"`
	StreamId      *string `cbor:"StreamId,omitempty"`
	DryRun        *bool   `cbor:"DryRun,omitempty"`
}

func (p *protocol) SerializeRequest(ctx context.Context, schema *smithy.OperationSchema, in smithy.Serializable, req *smithyhttp.Request) error {
	gr, ok := in.(*kinesis.GetRecordsInput)
	if !ok || p.format != CBOR {
		return p.ClientProtocol.SerializeRequest(ctx, schema, in, req)
	}
	// Let the JSON protocol set the method, path and X-Amz-Target, then
	// replace the body and its type.
	if err := p.ClientProtocol.SerializeRequest(ctx, schema, in, req); err != nil {
		return err
	}
	body, err := cbor.Marshal(getRecordsInput{ShardIterator: gr.ShardIterator, Limit: gr.Limit,
		StreamARN: gr.StreamARN, StreamId: gr.StreamId, DryRun: gr.DryRun})
	if err != nil {
		return &smithy.SerializationError{Err: err}
	}
	req.Header.Set("Content-Type", CBORContentType)
	sreq, err := req.SetStream(bytes.NewReader(body))
	if err != nil {
		return &smithy.SerializationError{Err: err}
	}
	*req = *sreq
	return nil
}

func (p *protocol) DeserializeResponse(ctx context.Context, schema *smithy.OperationSchema, reg *smithy.TypeRegistry, resp *smithyhttp.Response, out smithy.Deserializable) error {
	gr, ok := out.(*kinesis.GetRecordsOutput)
	ok2xx := resp.StatusCode >= 200 && resp.StatusCode < 300
	inCBOR := isCBOR(resp.Header.Get("Content-Type"))
	if !ok || !inCBOR && !ok2xx {
		return p.ClientProtocol.DeserializeResponse(ctx, schema, reg, resp, out)
	}
	// A JSON answer's records are copied out of the body (data decoded from
	// base64, strings copied), so its buffer is pooled once decoded; a CBOR
	// answer's records point into theirs.
	pooled := !inCBOR
	var into []byte
	if inCBOR && ok2xx && p.bufs != nil {
		into = p.bufs.body
	}
	body, err := readBody(resp, pooled, into)
	if err != nil {
		return &smithy.DeserializationError{Err: fmt.Errorf("read response body: %w", err)}
	}
	switch {
	case inCBOR && !ok2xx:
		// The JSON protocol turns the error into the SDK's typed error.
		return p.sdkDecode(ctx, schema, reg, resp, out, errorAsJSON(body))
	case inCBOR:
		if err := decodeGetRecords(body, gr); err != nil {
			// A copy: with DecodeInto, the body is memory the next answer
			// is read into, and the error may outlive that.
			return &smithy.DeserializationError{Err: err, Snapshot: bytes.Clone(body[:min(len(body), 1024)])}
		}
		p.bufs.keepBody(body)
		p.bufs.answered(len(gr.Records))
		return nil
	}
	if decodeGetRecordsJSON(body, gr, p.bufs) != nil {
		// Not the answer this decoder knows: the SDK's decoder decides (and
		// the buffer is left to the GC).
		gr.Records, gr.NextShardIterator, gr.MillisBehindLatest, gr.ChildShards = nil, nil, nil, nil
		err := p.sdkDecode(ctx, schema, reg, resp, out, body)
		p.bufs.answered(len(gr.Records))
		return err
	}
	p.bufs.answered(len(gr.Records))
	putBody(body)
	return nil
}

// sdkDecode has the client's own protocol decode body as resp's.
func (p *protocol) sdkDecode(ctx context.Context, schema *smithy.OperationSchema, reg *smithy.TypeRegistry, resp *smithyhttp.Response, out smithy.Deserializable, body []byte) error {
	resp.Body = struct {
		io.Reader
		io.Closer
	}{bytes.NewReader(body), resp.Body}
	return p.ClientProtocol.DeserializeResponse(ctx, schema, reg, resp, out)
}

func isCBOR(contentType string) bool {
	return strings.HasPrefix(contentType, "application/x-amz-cbor-")
}

// readBody reads the whole body into a buffer of its own (CBOR records
// alias it), sized from Content-Length when known so a 10 MB answer is read
// without regrowing; with pooled, a pooled one when it is large enough
// (see putBody); else into when it is. It reads to EOF, so the connection
// can be reused.
func readBody(resp *smithyhttp.Response, pooled bool, into []byte) ([]byte, error) {
	n := resp.ContentLength
	if n <= 0 || n > 64<<20 {
		if !pooled && into == nil {
			return io.ReadAll(resp.Body)
		}
		// A chunked answer (a proxy that does not pass Content-Length on):
		// read into a pooled buffer (or into), grown as needed.
		// io.ReadAll's buffers were 10% of the live heap of an archive
		// reading 8 shards through such a proxy: none was pooled, and each
		// held up to twice its answer.
		buf := into[:0]
		if pooled {
			if b, _ := bodies.Get().(*[]byte); b != nil {
				buf = (*b)[:0]
			}
		}
		bb := bytes.NewBuffer(buf)
		if _, err := bb.ReadFrom(resp.Body); err != nil {
			return nil, err
		}
		return bb.Bytes(), nil
	}
	var buf []byte
	if pooled {
		if b, _ := bodies.Get().(*[]byte); b != nil && int64(cap(*b)) > n {
			buf = (*b)[:n+1]
		}
	} else if int64(cap(into)) > n {
		buf = into[:n+1]
	}
	if buf == nil {
		c := n + 1
		if pooled {
			c += c / bodySlack
		}
		buf = make([]byte, n+1, c)
	}
	switch m, err := io.ReadFull(resp.Body, buf); {
	case err == io.ErrUnexpectedEOF && int64(m) == n:
		return buf[:n], nil
	case err == nil:
		return nil, fmt.Errorf("body longer than its Content-Length %d", n)
	default:
		return nil, err
	}
}

// bodies are the buffers of JSON answers decoded, for the next answers:
// they were ~15% of the bytes a consumer allocates (the records' data, the
// other large part, is handed to the processors and never reused).
var bodies sync.Pool // *[]byte

// putBody pools a body read with pooled set, once nothing points into it;
// one over maxPooledBody is left to the GC (a pooled buffer lives until two
// collections pass without a Get, and a 10,000-record answer can be 10 MB).
func putBody(b []byte) {
	if cap(b) <= maxPooledBody {
		bodies.Put(&b)
	}
}

// bodySlack: a body read into a buffer of its own gets 1/bodySlack more
// room, so that the next answers, about as large (1 MiB of records give
// bodies of 1.3-1.4 MB), fit in it once it is pooled. Sized exactly, most
// pooled bodies were a little too small for the next answer: bodies were
// 32 MB of the 177 MB an archive allocated reading 200,000 records.
const bodySlack = 8

// maxPooledBody: answers of the default 1 MiB of record data are ~1.4 MB.
const maxPooledBody = 4 << 20

// errorAsJSON renders a CBOR error body ({"__type", "message"}) as the JSON
// the JSON protocol decodes errors from. A body that is not a CBOR error is
// passed on as it is, and the JSON protocol says what it makes of it.
func errorAsJSON(body []byte) []byte {
	var e struct {
		Type     string  `cbor:"__type"`
		Message  *string `cbor:"message"`
		MessageU *string `cbor:"Message"`
	}
	if len(body) == 0 || cbor.Unmarshal(body, &e) != nil {
		return body
	}
	j := map[string]string{}
	if e.Type != "" {
		j["__type"] = e.Type
	}
	if e.Message == nil {
		e.Message = e.MessageU
	}
	if e.Message != nil {
		j["message"] = *e.Message
	}
	b, _ := json.Marshal(j)
	return b
}

var _ smithyhttp.ClientProtocol = (*protocol)(nil)
