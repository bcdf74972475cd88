package consumers_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy/proxytest"
)

// With enhanced fan-out, behind the proxy's AWS limits (one SubscribeToShard
// per second per consumer-shard, one subscription at a time) and with
// subscriptions ended every 2 s, two processes share the shards (a lease
// moves to the second when it starts) while the stream is split and merged:
// every record reaches a processor, in order per key, parents before
// children — as with polling.
func TestRunner_EnhancedFanOut_ResubscribesMovesLeasesAndFollowsResharding(t *testing.T) {
	e := newEnv(t, 2)
	ps := proxytest.Start(t, e.c, kinesisproxy.Config{Limits: kinesisproxy.AWSLimits(), SubscriptionLifetime: 2 * time.Second},
		func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
	p := newProducer(e.c, e.stream)
	us := users(10)
	stopProducing := background(100*time.Millisecond, func(ctx context.Context) error { return p.put(ctx, us) })
	defer func() { _ = stopProducing() }()

	reg := prometheus.NewRegistry()
	efo := func(rec *recorder, owner string) consumers.Config {
		cfg := e.config(t, rec, owner)
		cfg.Kinesis, cfg.ReadMode, cfg.Registerer = ps.Kinesis, consumers.ReadEFO, reg
		return cfg
	}
	ra, rb := newRecorder("efo", "a"), newRecorder("efo", "b")
	a := start(t, efo(ra, "a"))
	time.Sleep(2 * time.Second)
	b := start(t, efo(rb, "b")) // takes one of a's two shards
	time.Sleep(3 * time.Second)
	reshard(t, e, 4)
	time.Sleep(time.Second)
	reshard(t, e, 2)
	time.Sleep(time.Second)
	if err := stopProducing(); err != nil {
		t.Fatal(err)
	}
	want := p.produced()
	waitSeenByAny(t, time.Minute, want, ra, rb)
	a.stop(t)
	b.stop(t)
	e.store.check(t)
	if len(ra.all()) == 0 || len(rb.all()) == 0 {
		t.Fatalf("records read by a: %d, by b: %d; the lease never moved", len(ra.all()), len(rb.all()))
	}
	checkKeyOrderByLineage(t, ra, rb)
	dups := len(ra.all()) + len(rb.all()) - len(want)
	st := ps.Stats()
	subs := counterSum(t, reg, "clickstream_consumer_subscriptions_total")
	t.Logf("%d records (%d delivered twice, across lease moves), %d subscriptions, proxy: %d SubscribeToShard calls, %d refused, %d events, %d GetRecords calls",
		len(want), dups, int(subs), st.SubscribeCalls, st.SubscribeRejected, st.FanOutEvents, st.GetRecordsCalls)
	// GetRecords calls are only the small reads that rebuild a restarted
	// session's de-duplication window.
	if st.FanOutRecords < int64(len(want)) {
		t.Fatalf("%d records pushed for %d produced: not reading through fan-out", st.FanOutRecords, len(want))
	}
	// Each of the 8 shards needs one subscription; more are re-subscriptions
	// after the 2 s lifetime.
	if subs <= 8 {
		t.Fatalf("%v subscriptions: the runner did not re-subscribe when subscriptions ended", subs)
	}
}
