package producers

import (
	"context"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy/proxytest"
)

// Behind the shard-limit proxy with limits far below kinesis-local's own
// speed, the producer is throttled the way AWS throttles it (entries of a
// PutRecords call fail one by one); it must retry them without losing,
// duplicating or reordering any user's records, and still use most of the
// shards' capacity.
func TestProducer_BehindShardLimits_RetriesThrottledEntriesInOrderAndLosesNothing(t *testing.T) {
	c := testenv.Clients(t)
	const perShard = 100 // records/s, or its byte equivalent
	throttledCases := 0
	for _, m := range []struct {
		name   string
		shards int
		n      int
		size   int
		limits kinesisproxy.Limits
		opts   []Option
	}{
		{"plain-1-shard", 1, 300, 200, kinesisproxy.Limits{WriteRecordsPerSec: perShard}, []Option{WithAggregation(false)}},
		{"plain-2-shards", 2, 600, 200, kinesisproxy.Limits{WriteRecordsPerSec: perShard}, []Option{WithAggregation(false)}},
		{"plain-4-shards", 4, 1200, 200, kinesisproxy.Limits{WriteRecordsPerSec: perShard}, []Option{WithAggregation(false)}},
		// Aggregated, the byte limit binds: ~100 records of ~300 bytes a second per shard.
		{"aggregated-2-shards", 2, 600, 300, kinesisproxy.Limits{WriteBytesPerSec: perShard * 310},
			[]Option{WithMaxAggregateBytes(4 << 10)}},
	} {
		t.Run(m.name, func(t *testing.T) {
			stream := testenv.Stream(t, c, m.shards)
			ps := proxytest.Start(t, c, kinesisproxy.Config{Limits: m.limits})
			var failures []error
			p, err := New(ps.Kinesis, stream, append([]Option{
				WithLinger(10 * time.Millisecond), WithRecordTTL(2 * time.Minute),
				WithOnFailure(func(_ Record, err error) { failures = append(failures, err) }),
			}, m.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			want := testRecords(m.n, 50, m.size)
			start := time.Now()
			putAll(t, p, want)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := p.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			elapsed := time.Since(start)
			if len(failures) > 0 {
				t.Fatalf("%d records failed, first: %v", len(failures), failures[0])
			}
			st, ps2 := p.Stats(), ps.Stats()
			if st.RecordsSent != int64(m.n) {
				t.Fatalf("producer %+v; proxy %+v: want every record sent", st, ps2)
			}
			// Exactly once (only throttling here: nothing can be written twice),
			// on the right shard, each user's records in order.
			verifyStream(t, readStream(t, ps.Upstream, stream, m.n), want, false)
			rate := float64(m.n) / elapsed.Seconds()
			capacity := float64(perShard * m.shards)
			t.Logf("%d shards: %d records in %v = %.0f records/s (limit %.0f/s + 1 s burst); %d Kinesis records, %d entries throttled by the proxy, %d PutRecords calls, %d retries",
				m.shards, m.n, elapsed.Round(time.Millisecond), rate, capacity, st.KinesisRecordsSent, ps2.PutEntriesThrottled, st.Requests, st.Retries)
			// The proxy lets through at most capacity × (elapsed + burst).
			if max := capacity * (elapsed.Seconds() + 1.5); float64(m.n) > max {
				t.Fatalf("%d records in %v through shards limited to %.0f/s", m.n, elapsed, capacity)
			}
			if st.Throttles == 0 || ps2.PutEntriesThrottled == 0 {
				// A loaded machine once answered slowly enough that 1,200
				// records went to 4 shards under their limits: nothing to
				// retry here, which the last check below catches if every
				// case is like it.
				t.Logf("not throttled (producer %d, proxy %d): the emulator answered below the limits", st.Throttles, ps2.PutEntriesThrottled)
				return
			}
			throttledCases++
			// Backing off must not waste most of the capacity.
			if rate < 0.4*capacity {
				t.Fatalf("%.0f records/s is under 40%% of the shards' %.0f/s", rate, capacity)
			}
		})
	}
	if throttledCases == 0 {
		t.Fatal("no case was throttled: the retry path was not exercised")
	}
}
