package producers

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"math/big"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/kpl"
)

// streamRecord is one user record read back from a real stream.
type streamRecord struct {
	kpl.Record
	shard     types.Shard
	seq       string
	aggregate bool
}

// readStream reads every shard from TRIM_HORIZON until it is caught up
// and returns the de-aggregated user records, shard by shard in order.
func readStream(t *testing.T, kc *kinesis.Client, stream string, want int) []streamRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatalf("list shards: %v", err)
	}
	var got []streamRecord
	for _, sh := range out.Shards {
		it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatalf("get shard iterator: %v", err)
		}
		iter := it.ShardIterator
		for empty := 0; iter != nil && empty < 2; {
			res, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
			if err != nil {
				t.Fatalf("get records from %s: %v", aws.ToString(sh.ShardId), err)
			}
			if len(res.Records) == 0 && aws.ToInt64(res.MillisBehindLatest) == 0 {
				empty++
			}
			for _, r := range res.Records {
				urs, err := kpl.Deaggregate(r.Data, aws.ToString(r.PartitionKey))
				if err != nil {
					t.Fatalf("record %s on %s: %v", aws.ToString(r.SequenceNumber), aws.ToString(sh.ShardId), err)
				}
				for _, u := range urs {
					got = append(got, streamRecord{Record: u, shard: sh, seq: aws.ToString(r.SequenceNumber), aggregate: kpl.IsAggregated(r.Data)})
				}
			}
			iter = res.NextShardIterator
		}
	}
	if len(got) < want {
		t.Fatalf("read %d user records back, want at least %d", len(got), want)
	}
	return got
}

// verifyStream checks that every record of want was read back, exactly once
// unless duplicates are allowed, on the shard whose hash key range holds
// MD5(partition key), each key's records in Put order. It returns the
// number of duplicates.
func verifyStream(t *testing.T, got []streamRecord, want []Record, allowDuplicates bool) (duplicates int) {
	t.Helper()
	seen := make([]int, len(want))
	last := map[string]int{}
	for _, u := range got {
		i := recordIndex(t, u.Data)
		if i >= len(want) || !bytes.Equal(u.Data, want[i].Data) || u.PartitionKey != want[i].PartitionKey {
			t.Fatalf("record read back does not match record %d that was put", i)
		}
		seen[i]++
		sum := md5.Sum([]byte(u.PartitionKey))
		h := new(big.Int).SetBytes(sum[:])
		start, _ := new(big.Int).SetString(aws.ToString(u.shard.HashKeyRange.StartingHashKey), 10)
		end, _ := new(big.Int).SetString(aws.ToString(u.shard.HashKeyRange.EndingHashKey), 10)
		if h.Cmp(start) < 0 || h.Cmp(end) > 0 {
			t.Fatalf("record %d (key %s) is on %s, whose range does not hold MD5 of its key", i, u.PartitionKey, aws.ToString(u.shard.ShardId))
		}
		if seen[i] > 1 {
			// A duplicate replays a call whose answer was lost; a consumer
			// that drops records it has seen (by event id) gets them in order.
			continue
		}
		if prev, ok := last[u.PartitionKey]; ok && i < prev {
			var hist []string
			for _, v := range got {
				if v.PartitionKey == u.PartitionKey {
					hist = append(hist, fmt.Sprintf("%d@%s", recordIndex(t, v.Data), v.seq))
				}
			}
			t.Fatalf("key %s: record %d read after record %d on shard %s; the key's records: %v", u.PartitionKey, i, prev, aws.ToString(u.shard.ShardId), hist)
		}
		last[u.PartitionKey] = i
	}
	for i, n := range seen {
		switch {
		case n == 0:
			t.Fatalf("record %d was not read back", i)
		case n > 1 && !allowDuplicates:
			t.Fatalf("record %d read back %d times", i, n)
		}
		duplicates += max(0, n-1)
	}
	return duplicates
}

func TestProducer_KinesisLocal_DeliversEveryRecordOnItsShard(t *testing.T) {
	c := testenv.Clients(t)
	for _, m := range []struct {
		name string
		n    int
		opts []Option
	}{
		{"aggregated", 2000, nil},
		{"aggregated-small", 1000, []Option{WithMaxAggregateBytes(4096)}},
		{"plain", 600, []Option{WithAggregation(false)}},
	} {
		t.Run(m.name, func(t *testing.T) {
			stream := testenv.Stream(t, c, 4)
			p, err := New(c.Kinesis, stream, append([]Option{WithLinger(20 * time.Millisecond)}, m.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			want := testRecords(m.n, 300, 350)
			putAll(t, p, want)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := p.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if st := p.Stats(); st.RecordsSent != int64(m.n) || st.RecordsFailed != 0 {
				t.Fatalf("stats %+v", st)
			}
			got := readStream(t, c.Kinesis, stream, m.n)
			verifyStream(t, got, want, false)
			aggregated := 0
			for _, u := range got {
				if u.aggregate {
					aggregated++
				}
			}
			if (m.name == "plain") != (aggregated == 0) {
				t.Fatalf("%d of %d records arrived inside aggregates", aggregated, len(got))
			}
		})
	}
}

func TestProducer_KinesisLocal_EveryRecordArrivesDespiteFaults(t *testing.T) {
	c := testenv.Clients(t)
	for _, m := range []struct {
		name string
		n    int
		opts []Option
	}{
		{"aggregated", 1500, []Option{WithMaxAggregateBytes(8 << 10)}},
		{"plain", 600, []Option{WithAggregation(false)}},
	} {
		t.Run(m.name, func(t *testing.T) {
			stream := testenv.Stream(t, c, 4)
			proxy := newFaultProxy(t, os.Getenv("AWS_ENDPOINT_URL_KINESIS"), faultRates{
				failEntry: 0.2, throttleCall: 0.05, dropBefore: 0.05, dropAfter: 0.05,
			})
			kc := kinesis.NewFromConfig(c.Config, func(o *kinesis.Options) {
				o.BaseEndpoint = aws.String(proxy.URL)
				// The SDK's own retries stay on (3 attempts), with a short
				// backoff so the test takes seconds.
				o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) { so.MaxBackoff = 100 * time.Millisecond })
			})
			var failures []error
			p, err := New(kc, stream, append([]Option{
				WithLinger(10 * time.Millisecond), WithMaxRetryBackoff(200 * time.Millisecond), WithRecordTTL(2 * time.Minute),
				WithOnFailure(func(_ Record, err error) { failures = append(failures, err) }),
			}, m.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			want := testRecords(m.n, 200, 300)
			putAll(t, p, want)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := p.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if len(failures) > 0 {
				t.Fatalf("%d records failed, first: %v", len(failures), failures[0])
			}
			f := proxy.stats()
			if f.entriesFailed == 0 || f.callsThrottled == 0 || f.dropsBefore == 0 || f.dropsAfter == 0 {
				t.Fatalf("faults not all injected: %+v", f)
			}
			dups := verifyStream(t, readStream(t, c.Kinesis, stream, m.n), want, true)
			st := p.Stats()
			t.Logf("faults %+v; producer retried %d records (%d throttled) in %d calls; %d duplicates read back",
				f, st.Retries, st.Throttles, st.Requests, dups)
			// Duplicates can only come from calls whose connection dropped
			// after Kinesis had written them.
			if dups > f.userRecordsWrittenThenDropped {
				t.Fatalf("%d duplicates, but only %d user records were written by calls whose answer was dropped", dups, f.userRecordsWrittenThenDropped)
			}
		})
	}
}

// cpuTime is the process's user+system CPU time.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchProduce puts ~350-byte events for the benchmark's duration (or
// -benchtime Nx) and reports events/s, including the final flush, and the
// producer's CPU per event (this process: producer and SDK; the emulator is
// another process).
func benchProduce(b *testing.B, kc KinesisAPI, stream string, opts ...Option) {
	p, err := New(kc, stream, append([]Option{WithMaxBufferedRecords(20000)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	rs := testRecords(50000, 10000, 350)
	ctx := context.Background()
	// A classic b.N loop, not b.Loop: the timed region must include the
	// final Close. Puts into the 20,000-record buffer return at once, so a
	// timer that stopped before the drain made b.N's ramp predict rounds
	// of 1,000,000 events (~15 minutes into kinesis-local).
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	n := b.N
	for i := range n {
		if err := p.Put(ctx, rs[i%len(rs)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
	b.StopTimer()
	st := p.Stats()
	if st.RecordsFailed > 0 || st.RecordsSent != int64(n) {
		b.Fatalf("sent %d of %d, %d failed", st.RecordsSent, n, st.RecordsFailed)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
	b.ReportMetric(float64(st.KinesisRecordsSent)/elapsed.Seconds(), "kinesis-records/s")
	b.ReportMetric(float64(st.Retries)/float64(n), "retries/event")
}

// kinesisLocalOptions suit kinesis-local, whose cost grows faster than the
// size of a call: probed here, calls of one 100-200 KiB record moved
// ~2.5 MiB/s, one call of four 100 KiB records ~0.8 MiB/s. So: aggregates up
// to 100 KiB, calls of about one aggregate, two in flight. Both benchmarks
// use them, so the comparison is like for like (plain records are not
// helped by them: ~830 records/s with 100 or 370 per call).
var kinesisLocalOptions = []Option{
	WithMaxAggregateBytes(100 << 10), WithMaxRequestBytes(128 << 10), WithMaxInFlightRequests(2),
}

func benchKinesisLocal(b *testing.B, opts ...Option) {
	c := testenv.Clients(b)
	stream := testenv.Stream(b, c, 4)
	benchProduce(b, c.Kinesis, stream, append(kinesisLocalOptions, opts...)...)
}

// BenchmarkProducer_KinesisLocal_Aggregated and _Plain compare throughput
// into kinesis-local (capped near 1,200 records/s and 1.5 MiB/s).
// Run: go test -run XXX -bench KinesisLocal -benchtime 10000x ./producers
func BenchmarkProducer_KinesisLocal_Aggregated(b *testing.B) { benchKinesisLocal(b) }

func BenchmarkProducer_KinesisLocal_Plain(b *testing.B) {
	benchKinesisLocal(b, WithAggregation(false))
}

// kinesaliteEnv names a kinesalite endpoint for throughput runs, e.g.
// http://127.0.0.1:4599 after starting
// `node localstack/node_modules/kinesalite/cli.js --port 4599`.
const kinesaliteEnv = "CLICKSTREAM_KINESALITE_ENDPOINT"

func benchKinesalite(b *testing.B, opts ...Option) {
	ep := os.Getenv(kinesaliteEnv)
	if ep == "" {
		b.Skipf("set %s to a kinesalite endpoint", kinesaliteEnv)
	}
	ctx := context.Background()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		b.Fatal(err)
	}
	kc := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(ep) })
	stream := testenv.Name("bench")
	if _, err := setup.EnsureStream(ctx, kc, stream, 4, false); err != nil {
		b.Fatalf("create stream on kinesalite: %v", err)
	}
	b.Cleanup(func() { _, _ = kc.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(stream)}) })
	benchProduce(b, kc, stream, opts...)
}

// BenchmarkProducer_Kinesalite_Aggregated and _Plain measure throughput
// into kinesalite (no throughput limits) when CLICKSTREAM_KINESALITE_ENDPOINT is set.
func BenchmarkProducer_Kinesalite_Aggregated(b *testing.B) { benchKinesalite(b) }

func BenchmarkProducer_Kinesalite_Plain(b *testing.B) {
	benchKinesalite(b, WithAggregation(false))
}
