package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/kpl"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy/proxytest"
	"github.com/clickstream-go/clickstream/producers"
	"github.com/clickstream-go/clickstream/producers/collector"
)

// newProducer returns a real producer on a fresh stream; failures of
// records it gave up on land in failed.
func newProducer(t *testing.T, shards int) (*producers.Producer, *kinesis.Client, string, chan error) {
	t.Helper()
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, shards)
	failed := make(chan error, 100)
	p, err := producers.New(c.Kinesis, stream,
		producers.WithRegisterer(prometheus.NewRegistry()),
		producers.WithOnFailure(func(r producers.Record, err error) {
			select {
			case failed <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p, c.Kinesis, stream, failed
}

func TestIntegration_LoadgenThroughTheCollectorDeliversEveryAcceptedEvent(t *testing.T) {
	p, kc, stream, failed := newProducer(t, 2)
	srv, err := collector.New(collector.Config{APIKeys: []string{"k"}}, p, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	now := time.Now()
	cfg := Config{
		GeneratorConfig: GeneratorConfig{Seed: 77, Clock: func() time.Time { return now }},
		Events:          400, BadRate: 0.05, BatchSize: 100,
	}
	st, err := Run(context.Background(), cfg, &CollectorSink{URL: hs.URL, APIKey: "k", Gzip: true}, io.Discard)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Failed != 0 || st.Sent+st.Rejected != 400 || st.Rejected != st.ByType[TypeMalformed] || st.Rejected == 0 {
		t.Fatalf("stats %s: want every valid event sent and exactly the malformed ones rejected", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-failed:
		t.Fatalf("producer failed a record: %v", err)
	default:
	}

	// The same seed and clock regenerate the sequence Run sent.
	g := newGen(t, cfg.GeneratorConfig)
	want := map[string]bool{}
	for range 400 {
		if r := nextRecord(g, cfg.BadRate); r.Type != TypeMalformed {
			e, err := event.Decode(r.Data)
			if err != nil {
				t.Fatal(err)
			}
			want[e.ID] = true
		}
	}
	got := readStream(t, kc, stream, int(st.Sent))
	if len(got) != int(st.Sent) || len(want) != int(st.Sent) {
		t.Fatalf("read %d records; sent %d; generated %d valid", len(got), st.Sent, len(want))
	}
	for _, r := range got {
		e, err := event.Decode(r.Data)
		if err != nil {
			t.Fatalf("stream record does not decode: %v", err)
		}
		if !want[e.ID] {
			t.Fatalf("unexpected or duplicate event %s", e.ID)
		}
		delete(want, e.ID)
		if e.ReceivedAt.IsZero() {
			t.Errorf("event %s lacks received_at: did it bypass the collector?", e.ID)
		}
	}
}

func TestIntegration_LoadgenViaKinesisPutsEveryRecordMalformedOnesIncluded(t *testing.T) {
	p, kc, stream, failed := newProducer(t, 2)
	st, err := Run(context.Background(), Config{
		GeneratorConfig: GeneratorConfig{Seed: 3}, Events: 300, BadRate: 0.1, BatchSize: 50,
	}, ProducerSink{P: p}, io.Discard)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Sent != 300 || st.Failed != 0 || st.Rejected != 0 {
		t.Fatalf("stats %s", st)
	}
	select {
	case err := <-failed:
		t.Fatalf("producer failed a record: %v", err)
	default:
	}
	got := readStream(t, kc, stream, 300)
	bad := 0
	for _, r := range got {
		if _, err := event.Decode(r.Data); err != nil {
			bad++
		}
	}
	if len(got) != 300 || int64(bad) != st.ByType[TypeMalformed] {
		t.Fatalf("read %d records, %d malformed; want 300 and %d", len(got), bad, st.ByType[TypeMalformed])
	}
}

// readStream reads every shard from TRIM_HORIZON, one goroutine per shard,
// until want user records arrived and every shard is caught up, and
// returns the de-aggregated user records.
func readStream(t *testing.T, kc *kinesis.Client, stream string, want int) []kpl.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ls, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatalf("list shards: %v", err)
	}
	var (
		mu    sync.Mutex
		out   []kpl.Record
		total atomic.Int64
		idle  atomic.Int64
		wg    sync.WaitGroup
		errs  = make(chan error, len(ls.Shards))
	)
	for _, sh := range ls.Shards {
		wg.Go(func() {
			it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
				StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
			})
			if err != nil {
				errs <- err
				return
			}
			iter, wasIdle := it.ShardIterator, false
			for iter != nil && !(wasIdle && total.Load() >= int64(want) && idle.Load() == int64(len(ls.Shards))) {
				if ctx.Err() != nil {
					errs <- fmt.Errorf("read %d of %d records before the deadline", total.Load(), want)
					return
				}
				res, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
				var pt *types.ProvisionedThroughputExceededException
				if errors.As(err, &pt) {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				iter = res.NextShardIterator
				for _, r := range res.Records {
					urs, err := kpl.Deaggregate(r.Data, aws.ToString(r.PartitionKey))
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					for _, u := range urs {
						out = append(out, kpl.Record{PartitionKey: u.PartitionKey, Data: bytes.Clone(u.Data)})
					}
					mu.Unlock()
					total.Add(int64(len(urs)))
				}
				nowIdle := len(res.Records) == 0 && aws.ToInt64(res.MillisBehindLatest) == 0
				if nowIdle != wasIdle {
					idle.Add(map[bool]int64{true: 1, false: -1}[nowIdle])
					wasIdle = nowIdle
				}
				if nowIdle {
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return out
}

// Behind shard limits far below what the producer is fed (the way a busy
// kinesis-local or a shard at AWS's limit absorbs), every event loadgen
// generated is either on the stream or reported failed: loadgen's sent=,
// the producer's acknowledged count and the stream agree exactly. With a
// short record TTL some records may expire — they must be counted as
// failed, never as sent — and without one (the default) none may fail.
func TestIntegration_LoadgenBehindSlowShardsCountsOnlyWhatKinesisAcknowledged(t *testing.T) {
	c := testenv.Clients(t)
	for _, tc := range []struct {
		name string
		ttl  time.Duration
	}{
		{"default-no-ttl", 0},
		{"short-ttl", 1500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := testenv.Stream(t, c, 2)
			ps := proxytest.Start(t, c, kinesisproxy.Config{Limits: kinesisproxy.Limits{WriteRecordsPerSec: 100}})
			p, err := producers.New(ps.Kinesis, stream, producers.WithAggregation(false), producers.WithRecordTTL(tc.ttl),
				producers.WithLinger(10*time.Millisecond), producers.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			const events = 1500 // 7.5 s of the two shards' 200 records/s
			st, err := Run(context.Background(), Config{
				GeneratorConfig: GeneratorConfig{Seed: 5}, Events: events, BatchSize: 500, Concurrency: 4,
			}, ProducerSink{P: p}, io.Discard)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := p.Close(ctx); err != nil {
				t.Fatalf("Close: %v (every failure was reported to loadgen through its batch)", err)
			}
			ack := p.Stats()
			got := readStream(t, ps.Upstream, stream, int(st.Sent))
			t.Logf("loadgen %s; producer acknowledged %d, failed %d, throttled %d; stream holds %d; reasons %q",
				st, ack.RecordsSent, ack.RecordsFailed, ack.Throttles, len(got), st.Reasons())
			if st.Sent+st.Failed != events || int64(len(got)) != st.Sent || ack.RecordsSent != st.Sent || ack.RecordsFailed != st.Failed {
				t.Fatalf("loadgen sent=%d failed=%d, producer acknowledged %d failed %d, stream holds %d: they must agree",
					st.Sent, st.Failed, ack.RecordsSent, ack.RecordsFailed, len(got))
			}
			if ack.Throttles == 0 {
				t.Fatal("the proxy never throttled: the stream was not slower than the producer")
			}
			if tc.ttl == 0 && st.Failed != 0 {
				t.Fatalf("%d events failed without a TTL: a slow stream must make Put wait, not drop", st.Failed)
			}
		})
	}
}
