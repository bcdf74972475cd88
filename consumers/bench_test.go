package consumers_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/kpl"
	"github.com/clickstream-go/clickstream/producers/loadgen"
)

// benchEvent is a realistic click event (~330 bytes).
func benchEvent(i int) []byte {
	return fmt.Appendf(nil, `{"v":1,"id":"01JD3ZQ4X8%016d","type":"click","ts":"2026-11-22T10:00:00.123Z","user_id":"u-%d","session_id":"s-%d","item_id":"a-%d","app":"ios","placement":"home_feed","position":3,"features":{"cat:sports":1,"tag:soccer":0.5},"attrs":{"ab_bucket":"B"}}`,
		i, i%5000, i%997, i%20000)
}

// getRecordsJSON renders a GetRecords response as Kinesis sends it
// (awsJson1_1): n Kinesis records, each aggregating perAgg user records
// (perAgg 0: plain records).
func getRecordsJSON(n, perAgg int) ([]byte, int) {
	type rec struct {
		SequenceNumber              string
		ApproximateArrivalTimestamp float64
		Data                        string
		PartitionKey                string
	}
	var recs []rec
	users := 0
	var a kpl.Aggregator
	for i := range n {
		var data []byte
		pk := fmt.Sprintf("u-%d", i)
		if perAgg == 0 {
			data = benchEvent(i)
			users++
		} else {
			for j := range perAgg {
				a.Add(kpl.Record{PartitionKey: fmt.Sprintf("u-%d", i*perAgg+j), Data: benchEvent(i*perAgg + j)})
				users++
			}
			data, pk, _ = a.Build()
		}
		recs = append(recs, rec{
			SequenceNumber:              fmt.Sprintf("49590338271490256608559692538361571095921575989%09d", i),
			ApproximateArrivalTimestamp: 1.7638056e9, Data: base64.StdEncoding.EncodeToString(data), PartitionKey: pk,
		})
	}
	b, _ := json.Marshal(map[string]any{"Records": recs, "NextShardIterator": "it-next", "MillisBehindLatest": 5000})
	return b, users
}

// replayServer answers like Kinesis for one endless shard whose every
// GetRecords returns the same recorded page.
func replayServer(tb testing.TB, page []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		switch op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "Kinesis_20131202."); op {
		case "ListShards":
			fmt.Fprint(w, `{"Shards":[{"ShardId":"shardId-000000000000","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"340282366920938463463374607431768211455"},"SequenceNumberRange":{"StartingSequenceNumber":"1"}}]}`)
		case "GetShardIterator":
			fmt.Fprint(w, `{"ShardIterator":"it-0"}`)
		case "GetRecords":
			w.Header().Set("Content-Length", strconv.Itoa(len(page)))
			_, _ = w.Write(page)
		default:
			http.Error(w, op, http.StatusBadRequest)
		}
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// replayClient is the real SDK client pointed at the replay server.
//
// Its transport buffers each request body first: on loopback the response can
// arrive while net/http's write loop still makes its final read of the
// request body, and the SDK closes that body as soon as Do returns, so the
// write loop fails and closes the connection under the response being read
// ("use of closed network connection"; the SDK then retries after a sleep).
// Over a real network the response cannot overtake the request write.
func replayClient(srv *httptest.Server) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("k", "s", ""),
		HTTPClient:       &http.Client{Transport: bufferedBody{http.DefaultTransport}},
		RetryMaxAttempts: 1, // a failed call must show, not hide in retry sleeps
	})
}

type bufferedBody struct{ rt http.RoundTripper }

func (b bufferedBody) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		data, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(data))
	}
	return b.rt.RoundTrip(r)
}

// errCountingKinesis counts failed GetRecords calls.
type errCountingKinesis struct {
	consumers.KinesisAPI
	errs atomic.Int64
}

func (k *errCountingKinesis) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	out, err := k.KinesisAPI.GetRecords(ctx, in, opts...)
	if err != nil {
		k.errs.Add(1)
	}
	return out, err
}

// countingProcessor counts records and signals when target is reached.
type countingProcessor struct {
	n      atomic.Int64
	target atomic.Int64
	done   chan struct{}
	fired  atomic.Bool
}

func (c *countingProcessor) Name() string { return "bench" }
func (c *countingProcessor) OpenShard(context.Context, consumers.Shard) (consumers.ShardProcessor, error) {
	return c, nil
}
func (c *countingProcessor) Process(_ context.Context, b consumers.Batch) (consumers.Position, error) {
	if c.n.Add(int64(len(b.Records))) >= c.target.Load() && c.fired.CompareAndSwap(false, true) {
		close(c.done)
	}
	return b.Last(), nil
}
func (c *countingProcessor) Flush(context.Context) (consumers.Position, error) {
	return consumers.Position{}, nil
}
func (c *countingProcessor) Close() {}

// BenchmarkRuntime measures the runtime's overhead per user record: the real
// SDK client decoding a recorded GetRecords response from an httptest server,
// de-aggregation, event decoding, batch building and dispatch to a processor
// that does nothing, plus checkpoints (in memory).
func BenchmarkRuntime(b *testing.B) {
	for _, tc := range []struct {
		name      string
		n, perAgg int
	}{
		{"plain_500", 500, 0},
		{"kpl_10x100", 10, 100},
	} {
		b.Run(tc.name, func(b *testing.B) {
			page, users := getRecordsJSON(tc.n, tc.perAgg)
			srv := replayServer(b, page)
			p := &countingProcessor{done: make(chan struct{})}
			kc := &errCountingKinesis{KinesisAPI: replayClient(srv)}
			p.target.Store(int64(users)) // warm-up: one page
			r, err := consumers.NewRunner(consumers.Config{
				Stream: "bench", Processor: p, Kinesis: kc, Leases: leases.NewMemoryStore(),
				DeadLetter: consumers.NewMemoryDeadLetter(), PollInterval: time.Nanosecond, CheckpointInterval: -1,
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			runDone := make(chan error, 1)
			go func() { runDone <- r.Run(ctx) }()
			<-p.done
			p.done, p.fired = make(chan struct{}), atomic.Bool{}
			p.target.Store(p.n.Load() + int64(b.N))
			start := p.n.Load()
			b.ReportAllocs()
			b.ResetTimer()
			<-p.done
			b.StopTimer()
			cancel()
			if err := <-runDone; err != nil {
				b.Fatal(err)
			}
			if errs := kc.errs.Load(); errs > 0 {
				b.Fatalf("%d GetRecords calls failed", errs)
			}
			b.ReportMetric(float64(len(page))/float64(users), "response-bytes/record")
			_ = start
		})
	}
}

// BenchmarkSDKGetRecords is the SDK's share alone: one GetRecords call
// decoding the same recorded page, per Kinesis record.
func BenchmarkSDKGetRecords(b *testing.B) {
	page, _ := getRecordsJSON(500, 0)
	kc := replayClient(replayServer(b, page))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 500 {
		if _, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("it")}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordDecoder(b *testing.B) {
	plain := benchEvent(1)
	var a kpl.Aggregator
	for j := range 100 {
		a.Add(kpl.Record{PartitionKey: fmt.Sprintf("u-%d", j), Data: benchEvent(j)})
	}
	agg, pk, _ := a.Build()
	d, _ := consumers.NewRecordDecoder("shardId-0", consumers.HashKeyRange{Start: "0", End: "170141183460469231731687303715884105727"})
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		var buf []consumers.Record
		for b.Loop() {
			buf = d.Append(buf[:0], consumers.KinesisRecord{SequenceNumber: "1", PartitionKey: "u", Data: plain})
		}
	})
	b.Run("kpl_per_user_record", func(b *testing.B) {
		b.ReportAllocs()
		var buf []consumers.Record
		for i := 0; i < b.N; i += 100 {
			buf = d.Append(buf[:0], consumers.KinesisRecord{SequenceNumber: "1", PartitionKey: pk, Data: agg})
		}
	})
}

// BenchmarkRecordDecoder_LoadgenAggregates: the end-to-end benchmarks'
// traffic (loadgen: 10,000 users, 200 sessions open at once) aggregated as
// the producer does (~15 KB a Kinesis record), decoded with a shard's
// range check, per user record.
func BenchmarkRecordDecoder_LoadgenAggregates(b *testing.B) {
	g, err := loadgen.NewGenerator(loadgen.GeneratorConfig{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var aggs []consumers.KinesisRecord
	var a kpl.Aggregator
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i := range 20_000 {
		e := g.NextAt(start.Add(time.Duration(i) * time.Millisecond))
		r := kpl.Record{PartitionKey: e.UserID, Data: e.AppendJSON(nil)}
		if a.SizeWith(r) > 15<<10 {
			data, pk, _ := a.Build()
			aggs = append(aggs, consumers.KinesisRecord{SequenceNumber: fmt.Sprint(len(aggs)), PartitionKey: pk, ArrivalTime: start, Data: data})
		}
		a.Add(r)
	}
	d, _ := consumers.NewRecordDecoder("shardId-0", consumers.HashKeyRange{Start: "0", End: "170141183460469231731687303715884105727"})
	b.ReportAllocs()
	var buf []consumers.Record
	n := 0
	for b.Loop() {
		for _, kr := range aggs {
			buf = d.Append(buf[:0], kr)
			n += len(buf)
			d.RecycleMaps(buf)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/record")
}
