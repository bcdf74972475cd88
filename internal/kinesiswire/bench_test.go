package kinesiswire

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"github.com/fxamacker/cbor/v2"
)

const benchRecords = 1000

// benchEvent is a realistic click event (~300 bytes of JSON).
func benchEvent(i int) []byte {
	return fmt.Appendf(nil, `{"v":1,"id":"01JD3ZQ4X8%016d","type":"click","ts":"2026-11-22T10:00:00.123Z","user_id":"u-%d","session_id":"s-%d","item_id":"a-%d","app":"ios","placement":"home_feed","position":3,"features":{"cat:sports":1,"tag:soccer":0.5},"attrs":{"ab_bucket":"B"}}`,
		i, i%5000, i%997, i%20000)
}

// benchAnswer is one GetRecords answer of n records as AWS sends it over
// JSON (base64 data, epoch seconds) and over CBOR (byte strings, tag 1
// epoch milliseconds), and as kinesis-local sends it over CBOR (base64
// text, untagged milliseconds).
func benchAnswer(n int) (jsonBody, cborBody, emulatorBody []byte) {
	type jrec struct {
		SequenceNumber              string
		ApproximateArrivalTimestamp json.Number
		Data                        string
		PartitionKey                string
		EncryptionType              string
	}
	var jr []jrec
	var cr, er []map[string]any
	arrival := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixMilli()
	for i := range n {
		seq := fmt.Sprintf("49590338271490256608559692538361571095921575989%09d", i)
		// Records put together arrive in the same millisecond: 82% of
		// kinesalite's records on the archive benchmark's stream had the
		// last one's arrival time.
		pk, data, ms := fmt.Sprintf("u-%d", i%5000), benchEvent(i), arrival+int64(i/5)
		jr = append(jr, jrec{seq, json.Number(strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)), base64.StdEncoding.EncodeToString(data), pk, "NONE"})
		cr = append(cr, map[string]any{"SequenceNumber": seq, "ApproximateArrivalTimestamp": cbor.Tag{Number: 1, Content: ms},
			"Data": data, "PartitionKey": pk, "EncryptionType": "NONE"})
		er = append(er, map[string]any{"SequenceNumber": seq, "ApproximateArrivalTimestamp": ms,
			"Data": base64.StdEncoding.EncodeToString(data), "PartitionKey": pk, "EncryptionType": "NONE"})
	}
	iter := "AAAAAAAAAAFY0XVrDwyuQ7is4/liqGT2GdJxtN6LGuFnzsPzmOfvYrSDfeF99XuJOlebL0Tj1QEMZZxd5KaghedP1e+bjNXp4sHAAT3NFO+2V54X9EGR9rpWktXmNBQvUWZf7An5iBBhcX9Fn4sGt46r6XH16YyKL95AyxwNvpl+9oxhFpqi0/02+J6bmf0sSgWr+8E2jL3Ky05+RWSzHrp3cFG2i0Zw"
	jsonBody, _ = json.Marshal(map[string]any{"Records": jr, "NextShardIterator": iter, "MillisBehindLatest": 1200})
	cborBody, _ = cbor.Marshal(map[string]any{"Records": cr, "NextShardIterator": iter, "MillisBehindLatest": 1200})
	emulatorBody, _ = cbor.Marshal(map[string]any{"Records": er, "NextShardIterator": iter, "MillisBehindLatest": 1200, "ChildShards": nil})
	return jsonBody, cborBody, emulatorBody
}

// perRecord reports ns and allocations per record of the benchmark's loop.
func perRecord(b *testing.B, records int, loop func()) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	loop()
	b.StopTimer()
	runtime.ReadMemStats(&after)
	n := float64(b.N * records)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/record")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/record")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/record")
}

// BenchmarkDecode compares the decoding of one GetRecords answer of 1,000
// ~300-byte events: the SDK's JSON protocol against this package's JSON
// and CBOR decoders, all called as the client calls them.
func BenchmarkDecode(b *testing.B) {
	jsonBody, cborBody, emulatorBody := benchAnswer(benchRecords)
	op := smithy.NewOperationSchema(schemas.GetRecords, schemas.GetRecordsInput, schemas.GetRecordsOutput)
	js := awsjson.New11(schemas.Kinesis_20131202)
	for _, c := range []struct {
		name, contentType string
		body              []byte
		p                 smithyhttp.ClientProtocol
	}{
		{"sdk-json", "application/x-amz-json-1.1", jsonBody, js},
		{"json", "application/x-amz-json-1.1", jsonBody, &protocol{ClientProtocol: js, format: JSON}},
		{"json-into", "application/x-amz-json-1.1", jsonBody, &protocol{ClientProtocol: js, format: JSON, bufs: &Buffers{}}},
		{"cbor", CBORContentType, cborBody, &protocol{ClientProtocol: js, format: CBOR}},
		{"cbor-into", CBORContentType, cborBody, &protocol{ClientProtocol: js, format: CBOR, bufs: &Buffers{}}},
		{"cbor-base64-data", CBORContentType, emulatorBody, &protocol{ClientProtocol: js, format: CBOR}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			r := bytes.NewReader(c.body)
			resp := &smithyhttp.Response{Response: &http.Response{StatusCode: 200, ContentLength: int64(len(c.body)),
				Header: http.Header{"Content-Type": {c.contentType}}, Body: io.NopCloser(r)}}
			perRecord(b, benchRecords, func() {
				for range b.N {
					r.Reset(c.body)
					out := &kinesis.GetRecordsOutput{}
					if err := c.p.DeserializeResponse(context.Background(), op, kinesis.TypeRegistry, resp, out); err != nil || len(out.Records) != benchRecords {
						b.Fatal(err, len(out.Records))
					}
				}
			})
		})
	}
}

// BenchmarkGetRecords is the whole call against a local server replaying
// the answer: the SDK over JSON against the same client with this
// package's JSON and CBOR decoding.
func BenchmarkGetRecords(b *testing.B) {
	jsonBody, cborBody, _ := benchAnswer(benchRecords)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Header.Get("Content-Type") == CBORContentType {
			w.Header().Set("Content-Type", CBORContentType)
			_, _ = w.Write(cborBody)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write(jsonBody)
	}))
	defer srv.Close()
	kc := kinesis.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
	for _, c := range []struct {
		name string
		kc   interface {
			GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
		}
		into bool // DecodeInto
	}{{"sdk-json", kc, false}, {"json", Wrap(kc, JSON), false}, {"json-into", Wrap(kc, JSON), true},
		{"cbor", Wrap(kc, CBOR), false}, {"cbor-into", Wrap(kc, CBOR), true}} {
		b.Run(c.name, func(b *testing.B) {
			in := &kinesis.GetRecordsInput{ShardIterator: aws.String("AAAAAAAAAAFY0XVrDwyuQ7is4"), Limit: aws.Int32(10000)}
			var opts []func(*kinesis.Options)
			if c.into {
				opts = append(opts, DecodeInto(&Buffers{}))
			}
			perRecord(b, benchRecords, func() {
				for range b.N {
					out, err := c.kc.GetRecords(context.Background(), in, opts...)
					if err != nil || len(out.Records) != benchRecords {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
