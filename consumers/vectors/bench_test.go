package vectors

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/vectors/client"
	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/internal/testenv"
)

// zipfRecords makes n click/impression records: users Zipf(s=1.07) over
// users ids, 1–4 features Zipf over 200 names, a quarter clicks, event times
// over the last day. Sequence numbers continue from seq.
func zipfRecords(r *rand.Rand, n, users, seq int) []consumers.Record {
	uz := rand.NewZipf(r, 1.07, 1, uint64(users-1))
	fz := rand.NewZipf(r, 1.1, 1, 199)
	names := make([]string, 200)
	for i := range names {
		names[i] = fmt.Sprintf("cat:%03d", i)
	}
	out := make([]consumers.Record, n)
	for i := range out {
		feats := make(map[string]float64, 4)
		for range 1 + r.IntN(4) {
			feats[names[fz.Uint64()]] = 0.5 + r.Float64()
		}
		typ := event.TypeImpression
		if r.IntN(4) == 0 {
			typ = event.TypeClick
		}
		out[i] = rec(seq+i, typ, fmt.Sprintf("user-%06d", uz.Uint64()), testNow.Add(-time.Duration(r.Int64N(int64(24*time.Hour)))), feats)
	}
	return out
}

// BenchmarkAggregate is the CPU work of a batch before any I/O: grouping by
// user and summing each user's decayed feature weights. Run with -cpu 1
// for events/s per core.
func BenchmarkAggregate(b *testing.B) {
	for _, n := range []int{500, 10000} {
		b.Run(fmt.Sprint("batch=", n), func(b *testing.B) {
			recs := zipfRecords(rand.New(rand.NewPCG(1, 1)), n, 100_000, 1)
			cfg, _ := Config{}.withDefaults()
			hl := cfg.HalfLife.Milliseconds()
			var agg aggregator
			skip := func(string, string, string) {}
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				for _, run := range agg.group(recs, &cfg, skip) {
					d := buildDelta(run.evs, gridLandmark(maxTS(run.evs), hl), hl)
					_ = d
				}
			}
			reportEventRates(b, n*b.N, cpuTime()-cpu)
		})
	}
}

// BenchmarkAggregateAndRender adds rendering the UpdateItem requests (the
// fixed-point numbers and the expression): everything but the network.
func BenchmarkAggregateAndRender(b *testing.B) {
	recs := zipfRecords(rand.New(rand.NewPCG(1, 1)), 10000, 100_000, 1)
	cfg, _ := Config{}.withDefaults()
	hl := cfg.HalfLife.Milliseconds()
	var agg aggregator
	skip := func(string, string, string) {}
	b.ReportAllocs()
	cpu := cpuTime()
	rewrites := 0
	for b.Loop() {
		for _, run := range agg.group(recs, &cfg, skip) {
			d := buildDelta(run.evs, gridLandmark(maxTS(run.evs), hl), hl)
			_, err := buildAdd("t", addReq{user: run.user, shard: "shardId-000000000000", halfLife: hl, d: d, room: 400})
			if errors.Is(err, errNeedRewrite) {
				rewrites++ // a head user with more features than one 4 KB expression holds
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
	reportEventRates(b, 10000*b.N, cpuTime()-cpu)
	b.ReportMetric(float64(rewrites)/float64(b.N), "rewrites/batch")
}

// cpuTime is the process's user+system CPU time: on a shared, loaded
// machine events per CPU-second is the honest per-core figure; wall-clock
// events/s understates it by however much CPU the benchmark did not get.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportEventRates(b *testing.B, events int, cpu time.Duration) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	if cpu > 0 {
		b.ReportMetric(float64(events)/cpu.Seconds(), "events/cpu-s")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
	b.ReportMetric(0, "ns/op")
}

// countingDB counts the DynamoDB calls of the processor.
type countingDB struct {
	DynamoDBAPI
	updates, gets atomic.Int64
}

func (c *countingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.updates.Add(1)
	return c.DynamoDBAPI.UpdateItem(ctx, in, o...)
}

func (c *countingDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.gets.Add(1)
	return c.DynamoDBAPI.GetItem(ctx, in, o...)
}

// BenchmarkWritesPerEvent_Zipf measures, on DynamoDB Local, how many
// UpdateItem calls the processor makes per event at a Zipf user
// distribution (100k users, s=1.07) in steady state (after a warm-up of
// 20k events), by batch size. "users/event" is the floor batching allows
// (one write per distinct user per batch); the rest are new users (a failed
// ADD, then the create) and landmark/prune rewrites.
func BenchmarkWritesPerEvent_Zipf(b *testing.B) {
	c := testenv.Clients(b)
	for _, size := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint("batch=", size), func(b *testing.B) {
			table := testenv.Table(b, c, setup.VectorsTable)
			db := &countingDB{DynamoDBAPI: c.DynamoDB}
			p, err := New(db, Config{Table: table})
			if err != nil {
				b.Fatal(err)
			}
			sp := open(b, p)
			r := rand.New(rand.NewPCG(2, 2))
			seq := 1
			for range 20000 / size { // warm-up
				if _, err := sp.Process(context.Background(), batchOf(zipfRecords(r, size, 100_000, seq)...)); err != nil {
					b.Fatal(err)
				}
				seq += size
			}
			db.updates.Store(0)
			db.gets.Store(0)
			users, events := 0, 0
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				recs := zipfRecords(r, size, 100_000, seq)
				seq += size
				distinct := map[string]bool{}
				for _, rc := range recs {
					distinct[rc.Event.UserID] = true
				}
				users += len(distinct)
				events += size
				b.StartTimer()
				if _, err := sp.Process(context.Background(), batchOf(recs...)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(db.updates.Load())/float64(events), "updates/event")
			b.ReportMetric(float64(users)/float64(events), "users/event")
			b.ReportMetric(float64(db.gets.Load())/float64(events), "gets/event")
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkReadAPI is GET /v1/users/{id}/vector?k=20 through the Go client,
// the HTTP handler and a Reader on DynamoDB Local, users with 50 features.
func BenchmarkReadAPI(b *testing.B) {
	c := testenv.Clients(b)
	table := testenv.Table(b, c, setup.VectorsTable)
	p, err := New(c.DynamoDB, Config{Table: table})
	if err != nil {
		b.Fatal(err)
	}
	sp := open(b, p)
	var recs []consumers.Record
	for u := range 200 {
		feats := map[string]float64{}
		for f := range 50 {
			feats[fmt.Sprintf("cat:%03d", (u+f*7)%300)] = float64(f%5) + 0.5
		}
		recs = append(recs, rec(u+1, event.TypeClick, fmt.Sprintf("user-%03d", u), testNow, feats))
	}
	if _, err := sp.Process(context.Background(), batchOf(recs...)); err != nil {
		b.Fatal(err)
	}
	h, err := NewHandler(NewReader(c.DynamoDB, ReaderConfig{Table: table}), HandlerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	cl := client.New(srv.URL, srv.Client())
	var lat []time.Duration
	i := 0
	for b.Loop() {
		t := time.Now()
		v, err := cl.Vector(context.Background(), fmt.Sprintf("user-%03d", i%200), 20)
		lat = append(lat, time.Since(t))
		if err != nil || len(v.Features) != 20 {
			b.Fatalf("%v %v", v, err)
		}
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkVectorOf is the read side's CPU: decay, sort, top k of a
// 500-feature item.
func BenchmarkVectorOf(b *testing.B) {
	it := &item{UserID: "u", Landmark: gridLandmark(testNow.UnixMilli(), 168*hour), HalfLife: 168 * hour,
		Clicks: map[string]float64{}, Imps: map[string]float64{}}
	for f := range 500 {
		it.Clicks[fmt.Sprint("cat:", f)] = float64(f % 17)
		it.Imps[fmt.Sprint("cat:", f)] = float64(f % 23)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := vectorOf(it, testNow, 20); err != nil {
			b.Fatal(err)
		}
	}
}
