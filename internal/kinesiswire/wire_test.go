package kinesiswire_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/fxamacker/cbor/v2"

	"github.com/clickstream-go/clickstream/internal/kinesiswire"
	"github.com/clickstream-go/clickstream/internal/retry"
)

// answer is what the test server sends back.
type answer struct {
	status      int
	contentType string
	header      http.Header
	body        []byte
}

// server answers every request with the answer next returns and records
// the requests it got.
type server struct {
	*httptest.Server
	next  func(*http.Request, []byte) answer
	calls atomic.Int32
	last  atomic.Pointer[recorded]
}

type recorded struct {
	header http.Header
	method string
	path   string
	body   []byte
}

func newServer(t *testing.T, next func(*http.Request, []byte) answer) *server {
	s := &server{next: next}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.calls.Add(1)
		s.last.Store(&recorded{header: r.Header.Clone(), method: r.Method, path: r.URL.Path, body: body})
		a := s.next(r, body)
		for k, v := range a.header {
			w.Header()[k] = v
		}
		if a.contentType != "" {
			w.Header().Set("Content-Type", a.contentType)
		}
		w.WriteHeader(a.status)
		_, _ = w.Write(a.body)
	}))
	t.Cleanup(s.Close)
	return s
}

// client is a kinesis.Client of s that retries without waiting.
func (s *server) client(optFns ...func(*kinesis.Options)) *kinesis.Client {
	cfg := aws.Config{Region: "eu-west-1", BaseEndpoint: aws.String(s.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		Retryer: func() aws.Retryer {
			return awsretry.NewStandard(func(o *awsretry.StandardOptions) {
				o.Backoff = awsretry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			})
		}}
	return kinesis.NewFromConfig(cfg, optFns...)
}

func cborAnswer(t *testing.T, status int, v any) answer {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: status, contentType: kinesiswire.CBORContentType, body: b}
}

var in = &kinesis.GetRecordsInput{ShardIterator: aws.String("it-1"), Limit: aws.Int32(500)}

// The request is the awsCbor 1.1 request Kinesis expects, signed with SigV4
// by the SDK: POST /, X-Amz-Target, the CBOR content type and body.
func TestGetRecords_SendsASignedCBORRequest(t *testing.T) {
	s := newServer(t, func(*http.Request, []byte) answer {
		return cborAnswer(t, 200, map[string]any{"Records": []any{}, "NextShardIterator": "it-2", "MillisBehindLatest": 0})
	})
	out, err := kinesiswire.Wrap(s.client(), kinesiswire.CBOR).GetRecords(context.Background(), &kinesis.GetRecordsInput{
		ShardIterator: aws.String("it-1"), Limit: aws.Int32(500), StreamARN: aws.String("arn:aws:kinesis:eu-west-1:123456789012:stream/s")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.NextShardIterator) != "it-2" || out.Records == nil || len(out.Records) != 0 {
		t.Errorf("answer %+v", out)
	}
	r := s.last.Load()
	if r.method != http.MethodPost || r.path != "/" {
		t.Errorf("%s %s, want POST /", r.method, r.path)
	}
	if got := r.header.Get("X-Amz-Target"); got != "Kinesis_20131202.GetRecords" {
		t.Errorf("X-Amz-Target %q", got)
	}
	if got := r.header.Get("Content-Type"); got != "application/x-amz-cbor-1.1" {
		t.Errorf("Content-Type %q", got)
	}
	if got := r.header.Get("Authorization"); !strings.HasPrefix(got, "AWS4-HMAC-SHA256 Credential=AKID/") || !strings.Contains(got, "/eu-west-1/kinesis/aws4_request") {
		t.Errorf("Authorization %q, want SigV4 for kinesis in eu-west-1", got)
	}
	var body map[string]any
	if err := cbor.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("body is not CBOR: %v", err)
	}
	if len(body) != 3 || body["ShardIterator"] != "it-1" || body["Limit"] != uint64(500) || body["StreamARN"] != "arn:aws:kinesis:eu-west-1:123456789012:stream/s" {
		t.Errorf("body %v", body)
	}
}

// Every form of record the servers send decodes to the same types.Record.
func TestGetRecords_DecodesEveryFormServersSend(t *testing.T) {
	at := time.Date(2026, 12, 5, 3, 22, 29, 595e6, time.UTC)
	ms := at.UnixMilli()
	data := []byte{0xff, 0x00, 0xfe, 'a'}
	chunked := []byte{0x5f, 0x42, 0xff, 0x00, 0x42, 0xfe, 'a', 0xff} // indefinite-length byte string
	forms := map[string]map[string]any{
		"aws: bytes, tag 1 ms":               {"Data": data, "ApproximateArrivalTimestamp": cbor.Tag{Number: 1, Content: ms}},
		"kinesis-local: base64, untagged ms": {"Data": "/wD+YQ==", "ApproximateArrivalTimestamp": ms},
		"kinesalite: base64, float seconds":  {"Data": "/wD+YQ==", "ApproximateArrivalTimestamp": float64(ms) / 1000},
		"rfc 8949: tag 1 float seconds":      {"Data": data, "ApproximateArrivalTimestamp": cbor.Tag{Number: 1, Content: float64(ms) / 1000}},
		"tag 1 float ms":                     {"Data": data, "ApproximateArrivalTimestamp": cbor.Tag{Number: 1, Content: float64(ms)}},
		"chunked byte string":                {"Data": cbor.RawMessage(chunked), "ApproximateArrivalTimestamp": ms},
	}
	for name, f := range forms {
		t.Run(name, func(t *testing.T) {
			rec := map[string]any{"SequenceNumber": "4968", "PartitionKey": "ключ", "EncryptionType": "KMS"}
			for k, v := range f {
				rec[k] = v
			}
			s := newServer(t, func(*http.Request, []byte) answer {
				return cborAnswer(t, 200, map[string]any{"Records": []any{rec}, "NextShardIterator": "it-2", "MillisBehindLatest": 1200, "ChildShards": nil})
			})
			out, err := kinesiswire.Wrap(s.client(), kinesiswire.CBOR).GetRecords(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Records) != 1 {
				t.Fatalf("%d records", len(out.Records))
			}
			r := out.Records[0]
			if !bytes.Equal(r.Data, data) || aws.ToString(r.SequenceNumber) != "4968" || aws.ToString(r.PartitionKey) != "ключ" ||
				r.EncryptionType != types.EncryptionTypeKms || !aws.ToTime(r.ApproximateArrivalTimestamp).Equal(at) ||
				aws.ToTime(r.ApproximateArrivalTimestamp).Location() != time.UTC {
				t.Errorf("record: data %x seq %v pk %v enc %q arrival %v", r.Data, aws.ToString(r.SequenceNumber),
					aws.ToString(r.PartitionKey), r.EncryptionType, aws.ToTime(r.ApproximateArrivalTimestamp))
			}
			if aws.ToInt64(out.MillisBehindLatest) != 1200 || aws.ToString(out.NextShardIterator) != "it-2" || out.ChildShards != nil {
				t.Errorf("MillisBehindLatest %d, NextShardIterator %v, ChildShards %v", aws.ToInt64(out.MillisBehindLatest), out.NextShardIterator, out.ChildShards)
			}
		})
	}
}

// A closed shard's last answer: no iterator, the child shards.
func TestGetRecords_DecodesTheEndOfAShard(t *testing.T) {
	s := newServer(t, func(*http.Request, []byte) answer {
		return cborAnswer(t, 200, map[string]any{"Records": []any{}, "MillisBehindLatest": 0, "ChildShards": []any{
			map[string]any{"ShardId": "shardId-000000000001", "ParentShards": []string{"shardId-000000000000"},
				"HashKeyRange": map[string]any{"StartingHashKey": "0", "EndingHashKey": "170141183460469231731687303715884105727"}},
		}})
	})
	out, err := kinesiswire.Wrap(s.client(), kinesiswire.CBOR).GetRecords(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if out.NextShardIterator != nil || len(out.ChildShards) != 1 {
		t.Fatalf("NextShardIterator %v, ChildShards %+v", out.NextShardIterator, out.ChildShards)
	}
	c := out.ChildShards[0]
	if aws.ToString(c.ShardId) != "shardId-000000000001" || len(c.ParentShards) != 1 || c.ParentShards[0] != "shardId-000000000000" ||
		c.HashKeyRange == nil || aws.ToString(c.HashKeyRange.StartingHashKey) != "0" ||
		aws.ToString(c.HashKeyRange.EndingHashKey) != "170141183460469231731687303715884105727" {
		t.Errorf("child shard %+v", c)
	}
}

// Errors are the SDK's own typed errors, as over JSON, so callers classify
// them with errors.As and retry.IsThrottle as before; and the SDK retries
// what it retries over JSON.
func TestGetRecords_ErrorsAreTheSDKsTypedErrors(t *testing.T) {
	for _, c := range []struct {
		name     string
		a        answer
		code     string
		msg      string
		typed    func(error) bool
		throttle bool
	}{
		{"throttled", cborAnswer(t, 400, map[string]any{"__type": "ProvisionedThroughputExceededException", "message": "Rate exceeded for Shard - 1/s/shardId-0"}),
			"ProvisionedThroughputExceededException", "Rate exceeded for Shard - 1/s/shardId-0", as[*types.ProvisionedThroughputExceededException], true},
		{"kms throttled", cborAnswer(t, 400, map[string]any{"__type": "KMSThrottlingException", "message": "slow down"}),
			"KMSThrottlingException", "slow down", as[*types.KMSThrottlingException], true},
		{"expired iterator, namespaced type, Message", cborAnswer(t, 400, map[string]any{"__type": "com.amazonaws.kinesis.v20131202#ExpiredIteratorException", "Message": "Iterator expired"}),
			"ExpiredIteratorException", "Iterator expired", as[*types.ExpiredIteratorException], false},
		{"not found", cborAnswer(t, 400, map[string]any{"__type": "ResourceNotFoundException", "message": "Shard does not exist"}),
			"ResourceNotFoundException", "Shard does not exist", as[*types.ResourceNotFoundException], false},
		{"code only in the header", answer{status: 400, contentType: kinesiswire.CBORContentType,
			header: http.Header{"X-Amzn-Errortype": {"ExpiredIteratorException:http://internal.amazon.com/coral/com.amazonaws.kinesis/"}}},
			"ExpiredIteratorException", "", as[*types.ExpiredIteratorException], false},
		{"unknown code", cborAnswer(t, 400, map[string]any{"__type": "SomethingNewException", "message": "new"}),
			"SomethingNewException", "new", as[*smithy.GenericAPIError], false},
		{"a JSON error (a proxy's)", answer{status: 400, contentType: "application/x-amz-json-1.1",
			body: []byte(`{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded (injected)"}`)},
			"ProvisionedThroughputExceededException", "Rate exceeded (injected)", as[*types.ProvisionedThroughputExceededException], true},
		{"500 without a body", answer{status: 500}, "UnknownError", "UnknownError", as[*smithy.GenericAPIError], false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newServer(t, func(*http.Request, []byte) answer { return c.a })
			_, err := kinesiswire.Wrap(s.client(), kinesiswire.CBOR).GetRecords(context.Background(), in, func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != c.code || !c.typed(err) {
				t.Fatalf("error %v (%T); want code %s of the SDK's type", err, ae, c.code)
			}
			if ae.ErrorMessage() != c.msg {
				t.Errorf("message %q, want %q", ae.ErrorMessage(), c.msg)
			}
			if retry.IsThrottle(err) != c.throttle {
				t.Errorf("IsThrottle = %v", !c.throttle)
			}
			if s.calls.Load() != 1 {
				t.Errorf("%d calls with RetryMaxAttempts 1", s.calls.Load())
			}
		})
	}
}

func as[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

// The SDK's retryer applies: throttling is retried up to its attempts.
func TestGetRecords_TheSDKRetries(t *testing.T) {
	s := newServer(t, func(*http.Request, []byte) answer {
		return cborAnswer(t, 400, map[string]any{"__type": "ProvisionedThroughputExceededException", "message": "Rate exceeded"})
	})
	_, err := kinesiswire.Wrap(s.client(), kinesiswire.CBOR).GetRecords(context.Background(), in)
	if !as[*types.ProvisionedThroughputExceededException](err) || s.calls.Load() != 3 {
		t.Fatalf("%v after %d calls; want the throttling error after 3", err, s.calls.Load())
	}
}

// A server that answers in JSON is understood too, and other operations
// stay JSON, whether the client was wrapped or built with Use.
func TestUse_LeavesOtherOperationsAndJSONAnswersAlone(t *testing.T) {
	s := newServer(t, func(r *http.Request, _ []byte) answer {
		if r.Header.Get("X-Amz-Target") == "Kinesis_20131202.ListShards" {
			return answer{status: 200, contentType: "application/x-amz-json-1.1", body: []byte(`{"Shards":[{"ShardId":"shardId-000000000000"}]}`)}
		}
		return answer{status: 200, contentType: "application/x-amz-json-1.1",
			body: []byte(`{"Records":[{"SequenceNumber":"1","PartitionKey":"p","Data":"/wD+YQ==","ApproximateArrivalTimestamp":1796440949.595}],"NextShardIterator":"it-2","MillisBehindLatest":0}`)}
	})
	for name, kc := range map[string]interface {
		ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
		GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	}{"Wrap": kinesiswire.Wrap(s.client(), kinesiswire.CBOR), "Use": s.client(kinesiswire.UseCBOR, kinesiswire.UseCBOR)} {
		ls, err := kc.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String("s")})
		if err != nil || len(ls.Shards) != 1 {
			t.Fatalf("%s: ListShards: %v", name, err)
		}
		if got := s.last.Load().header.Get("Content-Type"); got != "application/x-amz-json-1.1" {
			t.Errorf("%s: ListShards sent %q", name, got)
		}
		out, err := kc.GetRecords(context.Background(), in)
		if err != nil || len(out.Records) != 1 || !bytes.Equal(out.Records[0].Data, []byte{0xff, 0, 0xfe, 'a'}) {
			t.Fatalf("%s: GetRecords: %v %+v", name, err, out)
		}
		if got := s.last.Load().header.Get("Content-Type"); got != kinesiswire.CBORContentType {
			t.Errorf("%s: GetRecords sent %q", name, got)
		}
	}
}

// Records share the answer's buffer, but appending to one never overwrites
// the next; absent fields stay unset.
func TestGetRecords_AppendingToDataCopies(t *testing.T) {
	s := newServer(t, func(*http.Request, []byte) answer {
		return cborAnswer(t, 200, map[string]any{"Records": []any{
			map[string]any{"SequenceNumber": "1", "PartitionKey": "p", "Data": []byte("aa")},
			map[string]any{"SequenceNumber": "2", "PartitionKey": "p", "Data": []byte("bb")},
		}})
	})
	out, err := kinesiswire.Wrap(s.client(), kinesiswire.CBOR).GetRecords(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range out.Records {
		if cap(r.Data) != len(r.Data) {
			t.Errorf("record %s: cap %d, len %d: an append would write into the answer", aws.ToString(r.SequenceNumber), cap(r.Data), len(r.Data))
		}
	}
	if string(out.Records[1].Data) != "bb" || out.Records[0].ApproximateArrivalTimestamp != nil || out.Records[0].EncryptionType != "" {
		t.Errorf("record 1 data %q, record 0 arrival %v encryption %q", out.Records[1].Data, out.Records[0].ApproximateArrivalTimestamp, out.Records[0].EncryptionType)
	}
}

// A body that is not what it claims fails as the SDK fails on a bad body.
func TestGetRecords_ABadBodyIsADeserializationError(t *testing.T) {
	s := newServer(t, func(*http.Request, []byte) answer {
		b, _ := cbor.Marshal(map[string]any{"Records": []any{map[string]any{"Data": "not base64!"}}})
		return answer{status: 200, contentType: kinesiswire.CBORContentType, body: b[:len(b)-3]}
	})
	_, err := kinesiswire.Wrap(s.client(), kinesiswire.CBOR).GetRecords(context.Background(), in)
	var de *smithy.DeserializationError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T), want a DeserializationError", err, err)
	}
}

// DecodeInto decodes answer after answer into the same memory, in both
// formats, each answer as it would be decoded on its own; an answer
// without records releases that memory; and on a client without this
// package's protocol it changes nothing.
func TestDecodeInto_ReusesTheLastAnswersMemory(t *testing.T) {
	// Answers of 300, 200 (fits in the first's memory), 0 (releases it),
	// 100 and 400 (larger: new memory) records.
	sizes := []int{300, 200, 0, 100, 400}
	for _, c := range []struct {
		format kinesiswire.Format
		sized  bool // Content-Length set, else chunked
	}{{kinesiswire.JSON, true}, {kinesiswire.JSON, false}, {kinesiswire.CBOR, true}, {kinesiswire.CBOR, false}} {
		format := c.format
		t.Run(fmt.Sprintf("%s sized %v", map[kinesiswire.Format]string{kinesiswire.JSON: "json", kinesiswire.CBOR: "cbor"}[format], c.sized), func(t *testing.T) {
			var call atomic.Int32
			s := newServer(t, func(*http.Request, []byte) answer {
				a := answerOf(t, format, sizes, &call)
				if c.sized {
					a.header = http.Header{"Content-Length": {fmt.Sprint(len(a.body))}}
				}
				return a
			})
			c := kinesiswire.Wrap(s.client(), format)
			var bufs kinesiswire.Buffers
			var prev []byte // the memory the last answer's data is in
			var kept [][2]string
			for i, n := range sizes {
				out, err := c.GetRecords(context.Background(), in, kinesiswire.DecodeInto(&bufs))
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range out.Records {
					kept = append(kept, [2]string{aws.ToString(r.SequenceNumber), aws.ToString(r.PartitionKey)})
				}
				if len(out.Records) != n {
					t.Fatalf("answer %d: %d records, want %d", i, len(out.Records), n)
				}
				for j, r := range out.Records {
					want := fmt.Sprintf(`{"n":%d,"tag":"%d"}`, j, i)
					if string(r.Data) != want || aws.ToString(r.SequenceNumber) != fmt.Sprint(j) || aws.ToString(r.PartitionKey) != fmt.Sprint("u-", i) ||
						aws.ToTime(r.ApproximateArrivalTimestamp).UnixMilli() != 1796440980250 {
						t.Fatalf("answer %d record %d: data %s seq %s pk %s at %v", i, j, r.Data, aws.ToString(r.SequenceNumber),
							aws.ToString(r.PartitionKey), aws.ToTime(r.ApproximateArrivalTimestamp))
					}
				}
				// Decoded into the memory the answer before left?
				reused := false
				if n > 0 && len(prev) > 0 {
					first, start := uintptr(unsafe.Pointer(unsafe.SliceData(out.Records[0].Data))), uintptr(unsafe.Pointer(&prev[0]))
					reused = first >= start && first < start+uintptr(len(prev))
				}
				mem, held := kinesiswire.BuffersMemory(&bufs)
				switch {
				case n == 0 && held != 0:
					t.Errorf("answer %d, without records: %d bytes still held", i, held)
				case n > 0 && held == 0:
					t.Errorf("answer %d: its memory was not kept", i)
				case i == 1 && !reused:
					t.Errorf("answer %d, smaller than the one before, was decoded into new memory", i)
				case i == 4 && reused:
					t.Errorf("answer %d, larger than the one before, was decoded into its memory", i)
				}
				prev = mem
			}
			// The answers' sequence numbers and partition keys (the
			// strings, which a checkpoint keeps; the pointers to them are
			// in reused memory too) are as they were, whatever memory
			// later answers reused.
			k := 0
			for i, n := range sizes {
				for j := range n {
					if got := kept[k]; got != [2]string{fmt.Sprint(j), fmt.Sprint("u-", i)} {
						t.Fatalf("answer %d record %d: sequence number and partition key now %q", i, j, got)
					}
					k++
				}
			}
		})
	}
	t.Run("other client", func(t *testing.T) {
		s := newServer(t, func(*http.Request, []byte) answer {
			b, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{"SequenceNumber": "1", "Data": "YQ==", "PartitionKey": "p"}}})
			return answer{status: 200, contentType: "application/x-amz-json-1.1", body: b}
		})
		var bufs kinesiswire.Buffers
		out, err := s.client().GetRecords(context.Background(), in, kinesiswire.DecodeInto(&bufs))
		if err != nil || len(out.Records) != 1 || string(out.Records[0].Data) != "a" {
			t.Fatalf("%v %+v", err, out)
		}
		if !reflect.DeepEqual(bufs, kinesiswire.Buffers{}) {
			t.Errorf("the SDK's own decoding used the Buffers")
		}
	})
}

// answerOf is the next of the answers of sizes records, in format: the
// data of record j of answer i is {"n":j,"tag":"i"}, its sequence number
// j and its partition key u-i.
func answerOf(t *testing.T, format kinesiswire.Format, sizes []int, call *atomic.Int32) answer {
	i := int(call.Add(1)) - 1
	var rs []any
	for j := range sizes[i] {
		data := fmt.Sprintf(`{"n":%d,"tag":"%d"}`, j, i)
		r := map[string]any{"SequenceNumber": fmt.Sprint(j), "PartitionKey": fmt.Sprint("u-", i)}
		if format == kinesiswire.CBOR {
			// As AWS sends it: data as bytes, epoch milliseconds.
			r["Data"], r["ApproximateArrivalTimestamp"] = []byte(data), cbor.Tag{Number: 1, Content: int64(1796440980250)}
		} else {
			r["Data"], r["ApproximateArrivalTimestamp"] = base64.StdEncoding.EncodeToString([]byte(data)), 1796440980.25
		}
		rs = append(rs, r)
	}
	body := map[string]any{"Records": rs, "NextShardIterator": "it", "MillisBehindLatest": 0}
	if format == kinesiswire.CBOR {
		return cborAnswer(t, 200, body)
	}
	b, _ := json.Marshal(body)
	return answer{status: 200, contentType: "application/x-amz-json-1.1", body: b}
}
