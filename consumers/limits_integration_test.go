package consumers_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/localstack/kinesisproxy"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy/proxytest"
)

// Behind the shard-limit proxy (5 GetRecords calls/s per shard, as on AWS,
// and a read byte limit far below kinesis-local's speed) the runner is
// throttled the way AWS throttles it: it must back off instead of hammering
// the shard, and still hand every record over once, in order.
func TestRunner_BehindShardLimits_BacksOffThrottledReadsAndLosesNothing(t *testing.T) {
	const shards = 2
	e := newEnv(t, shards)
	p := newProducer(e.c, e.stream)
	us := users(20)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// 600 records of ~210 bytes there before the runner starts, so the
	// first reads are big and put the shards into read debt.
	for range 30 {
		if err := p.put(ctx, us); err != nil {
			t.Fatal(err)
		}
	}
	// The SDK's own retries are off, so every throttled call reaches the
	// runner and the back-off measured is the runner's.
	ps := proxytest.Start(t, e.c, kinesisproxy.Config{Limits: kinesisproxy.Limits{ReadBytesPerSec: 16 << 10}},
		func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
	rec := newRecorder("limits", "r")
	cfg := e.config(t, rec, "r") // polls every 50 ms: 20 calls/s per shard if it did not back off
	cfg.Kinesis = ps.Kinesis
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	began := time.Now()
	run := start(t, cfg)
	// Then ~21 KB/s per shard for 4 s, more than the 16 KiB/s it may read.
	stopProducing := background(100*time.Millisecond, func(ctx context.Context) error { return p.put(ctx, us) })
	time.Sleep(4 * time.Second)
	if err := stopProducing(); err != nil {
		t.Fatal(err)
	}
	want := p.produced()
	waitFor(t, time.Minute, "every record behind the shard limits", func() bool {
		for _, id := range want {
			if rec.count(id) == 0 {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(began)
	run.stop(t)
	e.store.check(t)
	for _, id := range want {
		if n := rec.count(id); n != 1 {
			t.Errorf("record %s processed %d times, want once", id, n)
		}
	}
	next := map[string]int{}
	for _, s := range rec.all() {
		if s.Counter != next[s.Key] {
			t.Fatalf("user %s: record %d handed over when %d was due", s.Key, s.Counter, next[s.Key])
		}
		next[s.Key]++
	}
	st := ps.Stats()
	throttled := 0.0
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "clickstream_consumer_get_records_errors_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "kind" && l.GetValue() == "throttled" {
						throttled += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	callRate := float64(st.GetRecordsCalls) / elapsed.Seconds() / shards
	t.Logf("%d records in %v; proxy: %d GetRecords calls (%.1f/s per shard), %d throttled, %d bytes read (%.0f B/s per shard); runner counted %.0f throttled calls",
		len(want), elapsed.Round(time.Millisecond), st.GetRecordsCalls, callRate, st.GetRecordsThrottled, st.ReadBytes,
		float64(st.ReadBytes)/elapsed.Seconds()/shards, throttled)
	if st.GetRecordsThrottled == 0 || throttled == 0 {
		t.Fatalf("never throttled (proxy %d, runner %.0f): the test proves nothing", st.GetRecordsThrottled, throttled)
	}
	if st.Unmetered != 0 {
		t.Fatalf("%d reads were not metered", st.Unmetered)
	}
	// Backing off: far fewer calls than polling every 50 ms would make.
	if callRate > 10 {
		t.Fatalf("%.1f GetRecords calls/s per shard against a limit of 5: the runner does not back off", callRate)
	}
}
