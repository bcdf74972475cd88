package functions_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/clickstream-go/clickstream/consumers/apps"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/archive"
	"github.com/clickstream-go/clickstream/consumers/leases"
	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/consumers/vectors"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/kpl"
	"github.com/clickstream-go/clickstream/lambdas/esm"
	"github.com/clickstream-go/clickstream/lambdas/functions"
)

// putTraffic puts a deterministic mix on the stream: clicks and impressions
// with features, access logs, every fourth request as KPL aggregates, and a
// few bad records. It returns the number of good events and the last
// sequence number per shard.
func putTraffic(t *testing.T, c *awsx.Clients, stream string, start time.Time) (int, map[string]string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	routes := []string{"/api/items/:id", "/api/feed", "/api/users/:id"}
	caches := []string{"HIT", "MISS", "EXPIRED", "STALE", "-"}
	good := 0
	event := func(i int) (string, []byte) {
		ts := start.Add(time.Duration(i) * 700 * time.Millisecond)
		good++
		if i%3 == 2 {
			return fmt.Sprintf("srv-%d", i%5), accessJSON(fmt.Sprintf("acc-%d", i), routes[rng.IntN(len(routes))], caches[rng.IntN(len(caches))],
				[]int{200, 200, 304, 404, 503}[rng.IntN(5)], ts, float64(rng.IntN(400))+0.5)
		}
		u := fmt.Sprintf("u-%d", rng.IntN(12))
		typ := "impression"
		if rng.IntN(3) == 0 {
			typ = "click"
		}
		return u, clickJSON(fmt.Sprintf("ev-%d", i), u, typ, ts, fmt.Sprintf(`{"cat:c%d":1,"tag:t%d":%g}`, rng.IntN(4), rng.IntN(6), float64(rng.IntN(4))/2+0.5))
	}
	var entries []ktypes.PutRecordsRequestEntry
	i := 0
	for k := range 100 {
		switch {
		case k%10 == 3:
			entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint("bad-", k)), Data: []byte(`{"type":"click","ts":"yesterday"`)})
		case k%4 == 0:
			var a kpl.Aggregator
			for range 4 {
				pk, data := event(i)
				a.Add(kpl.Record{PartitionKey: pk, Data: data})
				i++
			}
			data, pk, _ := a.Build()
			entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(pk), Data: append([]byte(nil), data...)})
		default:
			pk, data := event(i)
			entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(pk), Data: data})
			i++
		}
	}
	last := map[string]string{}
	for len(entries) > 0 {
		n := min(len(entries), 100)
		out, err := c.Kinesis.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries[:n]})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt32(out.FailedRecordCount) > 0 {
			t.Fatalf("%d records failed", aws.ToInt32(out.FailedRecordCount))
		}
		for _, r := range out.Records {
			if s := aws.ToString(r.SequenceNumber); leases.CompareSequence(s, last[aws.ToString(r.ShardId)]) > 0 {
				last[aws.ToString(r.ShardId)] = s
			}
		}
		entries = entries[n:]
	}
	return good, last
}

// TestHosts_LongRunningAndLambdaGiveIdenticalOutputs reads one stream with
// the three long-running consumers and with the three Lambda handlers under
// the local event source mapping (small batches, so the cuts differ from the
// runtime's), each host with its own tables and archive prefix, and checks
// that archive rows, dead letters, vectors and metrics are identical.
func TestHosts_LongRunningAndLambdaGiveIdenticalOutputs(t *testing.T) {
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 2)
	bucket := testenv.Bucket(t, c)
	rt := newEnv(t, c, bucket, "runtime/")
	lm := newEnv(t, c, bucket, "lambda/")

	start := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Second)
	good, last := putTraffic(t, c, stream, start)

	runner := func(p consumers.Processor, e env) *consumers.Runner {
		r, err := consumers.NewRunner(consumers.Config{
			Stream: stream, Processor: p, Kinesis: c.Kinesis, Leases: leases.NewDynamoStore(c.DynamoDB, e.lse),
			DeadLetter: consumers.NewS3DeadLetter(c.S3, bucket, e.prefix), LeaseDuration: 2 * time.Second,
			PollInterval: 50 * time.Millisecond, IdleInterval: 100 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var runners []*consumers.Runner
	// The long-running host, as `clickstream consume` builds it.
	ap, err := archive.New(c.S3, archive.Config{Bucket: bucket, Prefix: rt.prefix, MaxAge: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	vp, err := vectors.New(c.DynamoDB, vectors.Config{Table: rt.vectorsTable})
	if err != nil {
		t.Fatal(err)
	}
	mp, err := metrics.NewProcessor(metrics.NewDynamoStore(c.DynamoDB, rt.metricsTable), metrics.Config{})
	if err != nil {
		t.Fatal(err)
	}
	runners = append(runners, runner(ap, rt), runner(vp, rt), runner(mp, rt))
	// The Lambda host, as `clickstream consume --host lambda` builds it.
	for _, name := range apps.Names() {
		cfg := lm.config()
		cfg.Stream = stream
		h, err := functions.NewConsumer(name, c, cfg)
		if err != nil {
			t.Fatal(err)
		}
		m, err := esm.New(name, h.Handle, esm.Config{Stream: stream, Region: c.Config.Region, BatchSize: 7})
		if err != nil {
			t.Fatal(err)
		}
		runners = append(runners, runner(m, lm))
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consumers.RunAll(ctx, runners...) }()
	// Wait until every application checkpointed the last record of every shard.
	apps := map[string][]string{rt.lse: {"archive", "vectors", "metrics"}, lm.lse: {"esm-archive", "esm-vectors", "esm-metrics"}}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		behind := ""
		for table, names := range apps {
			store := leases.NewDynamoStore(c.DynamoDB, table)
			for _, app := range names {
				ls, err := store.List(ctx, app)
				if err != nil {
					t.Fatal(err)
				}
				cp := map[string]string{}
				for _, l := range ls {
					cp[l.ShardID] = l.Checkpoint.SequenceNumber
				}
				for shard, seq := range last {
					if leases.CompareSequence(cp[shard], seq) < 0 {
						behind = app + " " + shard
					}
				}
			}
		}
		if behind == "" {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("%s did not reach the end of the stream", behind)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Archive: the same rows (every column, shard and sequence numbers
	// included) in different objects.
	rtKeys, rtRows := archiveRows(t, c, bucket, rt.prefix)
	lmKeys, lmRows := archiveRows(t, c, bucket, lm.prefix)
	if len(rtRows) != good {
		t.Fatalf("runtime archived %d rows, want %d", len(rtRows), good)
	}
	sameJSON(t, "archive rows", rtRows, lmRows)
	t.Logf("archive: %d rows in %d runtime objects, %d Lambda objects", good, len(rtKeys), len(lmKeys))
	sameJSON(t, "dead letters", relKeys(listKeys(t, c, bucket, rt.prefix+"errors/"), rt.prefix), relKeys(listKeys(t, c, bucket, lm.prefix+"errors/"), lm.prefix))
	if n := len(listKeys(t, c, bucket, rt.prefix+"errors/")); n != 10 {
		t.Fatalf("%d dead letters, want 10", n)
	}

	// Vectors: the same users with the same decayed sums and event counts.
	at := start.Add(time.Hour)
	users := scanUsers(t, c, rt.vectorsTable)
	sameJSON(t, "vector users", users, scanUsers(t, c, lm.vectorsTable))
	if len(users) != 12 {
		t.Fatalf("%d users, want 12", len(users))
	}
	sameVectors(t, vectorsOf(t, c, rt.vectorsTable, users, at), vectorsOf(t, c, lm.vectorsTable, users, at))

	// Metrics: the same merged values per window. Whether a window is
	// published yet differs by host (the runtime's idle polls advance the
	// watermark; Lambda gets no empty batches), so "open" is not compared.
	from, to := start.Add(-time.Hour).Truncate(time.Minute), time.Now().UTC().Add(time.Minute)
	rtm, lmm := metricsOf(t, c, rt.metricsTable, from, to), metricsOf(t, c, lm.metricsTable, from, to)
	for _, res := range []map[string]*metrics.Result{rtm, lmm} {
		for _, r := range res {
			for i := range r.Rows {
				r.Rows[i].Open = false
			}
		}
	}
	if len(rtm["access"].Rows) == 0 || len(rtm["engagement"].Rows) == 0 {
		t.Fatalf("no metrics: %+v", rtm)
	}
	sameJSON(t, "metrics", rtm, lmm)
}

// sameVectors compares vectors feature by feature. Event counts and feature
// sets must be equal; the decayed sums may differ in the last bits, since
// a batch's events are summed in floating point before each exact DynamoDB
// ADD and the hosts cut batches differently (the vectors package documents
// a relative error of at most 1e-9 per write).
func sameVectors(t *testing.T, a, b map[string]*vectors.Vector) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("runtime has %d vectors, lambda %d", len(a), len(b))
	}
	close := func(x, y float64) bool { return math.Abs(x-y) <= 1e-12*math.Max(math.Abs(x), math.Abs(y)) }
	for u, va := range a {
		vb := b[u]
		if vb == nil || va.Events != vb.Events || len(va.Features) != len(vb.Features) {
			sameJSON(t, "vector of "+u, va, vb)
		}
		fb := map[string]vectors.Feature{}
		for _, f := range vb.Features {
			fb[f.Name] = f
		}
		for _, f := range va.Features {
			g, ok := fb[f.Name]
			if !ok || !close(f.Clicks, g.Clicks) || !close(f.Impressions, g.Impressions) {
				t.Fatalf("user %s feature %s: runtime %+v, lambda %+v", u, f.Name, f, g)
			}
		}
	}
}

func sameJSON(t *testing.T, what string, a, b any) {
	t.Helper()
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	if string(x) != string(y) {
		t.Fatalf("%s differ between hosts:\nruntime %s\nlambda  %s", what, x, y)
	}
}
