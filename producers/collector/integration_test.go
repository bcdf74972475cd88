package collector_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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
	"github.com/clickstream-go/clickstream/producers"
	"github.com/clickstream-go/clickstream/producers/collector"
)

// recordingSink passes batches to the real producer and remembers what it
// accepted, so the test can compare the stream's bytes with them.
type recordingSink struct {
	p  *producers.Producer
	mu sync.Mutex
	// accepted holds the data of every record the producer took.
	accepted [][]byte
}

func (s *recordingSink) TryPutBatch(rs []producers.Record) error {
	if err := s.p.TryPutBatch(rs); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		s.accepted = append(s.accepted, r.Data)
	}
	return nil
}

// pipeline is a collector served over real HTTP, backed by the real
// producer writing to a fresh stream on the local Kinesis.
type pipeline struct {
	kc     *kinesis.Client
	stream string
	sink   *recordingSink
	srv    *httptest.Server
	failed chan error // records the producer finally failed
	// retries counts requests repeated after 503 (producer back-pressure).
	retries atomic.Int64
}

func newPipeline(t *testing.T, shards int) *pipeline {
	t.Helper()
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, shards)
	pl := &pipeline{kc: c.Kinesis, stream: stream, failed: make(chan error, 100)}
	p, err := producers.New(c.Kinesis, stream,
		producers.WithRegisterer(prometheus.NewRegistry()),
		producers.WithOnFailure(func(r producers.Record, err error) {
			select {
			case pl.failed <- fmt.Errorf("%s: %w", r.PartitionKey, err):
			default:
			}
		}))
	if err != nil {
		t.Fatalf("producers.New: %v", err)
	}
	pl.sink = &recordingSink{p: p}
	s, err := collector.New(collector.Config{APIKeys: []string{testKey}, RatePerKey: -1}, pl.sink, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	pl.srv = httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		pl.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return pl
}

// drain flushes the producer and fails the test if it dropped anything.
func (pl *pipeline) drain(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := pl.sink.p.Flush(ctx); err != nil {
		t.Fatalf("flush producer: %v", err)
	}
	select {
	case err := <-pl.failed:
		t.Fatalf("producer failed a record: %v", err)
	default:
	}
}

// postEvents posts one request, retrying 503 (the producer's back-pressure)
// like a client should, and returns the 202 answer.
func (pl *pipeline) postEvents(t *testing.T, contentType string, body []byte, gzipped bool) collector.Response {
	t.Helper()
	if gzipped {
		body = gz(t, body)
	}
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequest(http.MethodPost, pl.srv.URL+"/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header.Set("Content-Type", contentType)
		if gzipped {
			req.Header.Set("Content-Encoding", "gzip")
		}
		resp, err := pl.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && attempt < 200 {
			pl.retries.Add(1)
			time.Sleep(100 * time.Millisecond) // shorter than Retry-After: the test is in a hurry
			continue
		}
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		var r collector.Response
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// streamRecord is one user record read back from the stream.
type streamRecord struct {
	shard        string
	seq          string // Kinesis sequence number of the (aggregated) record
	sub          int    // index inside the aggregate
	partitionKey string
	data         []byte
}

type shardRange struct{ lo, hi *big.Int }

// readAll reads every shard from TRIM_HORIZON, one goroutine per shard,
// until want user records arrived and every shard is caught up,
// de-aggregating KPL records. It returns the records in stream order per
// shard (shards one after another), and the shards' hash ranges.
func readAll(t *testing.T, kc *kinesis.Client, stream string, want int) ([]streamRecord, map[string]shardRange) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ls, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatalf("list shards: %v", err)
	}
	ranges := map[string]shardRange{}
	for _, sh := range ls.Shards {
		lo, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
		hi, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
		ranges[aws.ToString(sh.ShardId)] = shardRange{lo, hi}
	}
	var (
		mu       sync.Mutex
		perShard = map[string][]streamRecord{}
		total    atomic.Int64
		idle     atomic.Int64 // shards currently caught up
		wg       sync.WaitGroup
		errs     = make(chan error, len(ls.Shards))
	)
	for _, sh := range ls.Shards {
		shard := aws.ToString(sh.ShardId)
		wg.Go(func() {
			it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
				StreamName: aws.String(stream), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
			})
			if err != nil {
				errs <- fmt.Errorf("shard iterator %s: %w", shard, err)
				return
			}
			iter, wasIdle := it.ShardIterator, false
			for iter != nil && !(wasIdle && total.Load() >= int64(want) && idle.Load() == int64(len(ranges))) {
				if ctx.Err() != nil {
					errs <- fmt.Errorf("shard %s: read %d of %d records before the deadline", shard, total.Load(), want)
					return
				}
				res, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
				var pt *types.ProvisionedThroughputExceededException
				if errors.As(err, &pt) {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("get records from %s: %w", shard, err)
					return
				}
				iter = res.NextShardIterator
				var got []streamRecord
				for _, r := range res.Records {
					urs, err := kpl.Deaggregate(r.Data, aws.ToString(r.PartitionKey))
					if err != nil {
						errs <- fmt.Errorf("de-aggregate %s/%s: %w", shard, aws.ToString(r.SequenceNumber), err)
						return
					}
					for i, u := range urs {
						got = append(got, streamRecord{shard, aws.ToString(r.SequenceNumber), i, u.PartitionKey, bytes.Clone(u.Data)})
					}
				}
				mu.Lock()
				perShard[shard] = append(perShard[shard], got...)
				mu.Unlock()
				total.Add(int64(len(got)))
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
	var out []streamRecord
	for _, recs := range perShard {
		out = append(out, recs...)
	}
	return out, ranges
}

func inRange(pk string, r shardRange) bool {
	sum := md5.Sum([]byte(pk))
	h := new(big.Int).SetBytes(sum[:])
	return h.Cmp(r.lo) >= 0 && h.Cmp(r.hi) <= 0
}

func TestIntegration_EventsPostedToTheCollectorReachTheStream(t *testing.T) {
	pl := newPipeline(t, 2)
	var lines []string
	for i := range 40 {
		lines = append(lines, click(fmt.Sprintf("u-%d", i%7), i))
	}
	r1 := pl.postEvents(t, "application/json", []byte("["+strings.Join(lines[:20], ",")+`,{"type":"click","ts":"2026-11-22T10:00:00Z"}]`), false)
	r2 := pl.postEvents(t, "application/x-ndjson", []byte(strings.Join(lines[20:], "\n")+"\n"+access(99)+"\n"), true)
	if r1.Accepted != 20 || len(r1.Rejected) != 1 || r1.Rejected[0].Index != 20 || r2.Accepted != 21 || len(r2.Rejected) != 0 {
		t.Fatalf("answers %+v %+v", r1, r2)
	}
	pl.drain(t)
	got, ranges := readAll(t, pl.kc, pl.stream, 41)
	if len(got) != 41 {
		t.Fatalf("read %d records, want 41", len(got))
	}
	want := map[string]bool{}
	for _, d := range pl.sink.accepted {
		want[string(d)] = true
	}
	for _, r := range got {
		if !want[string(r.data)] {
			t.Errorf("unexpected record %s", r.data)
		}
		delete(want, string(r.data))
		if !inRange(r.partitionKey, ranges[r.shard]) {
			t.Errorf("record with key %s on shard %s outside its hash range", r.partitionKey, r.shard)
		}
		e, err := event.Decode(r.data)
		if err != nil {
			t.Fatalf("stream record does not decode: %v", err)
		}
		if e.PartitionKey() != r.partitionKey || e.ID == "" || e.ReceivedAt.IsZero() {
			t.Errorf("record %s: key %q, id %q, received_at %v", r.data, r.partitionKey, e.ID, e.ReceivedAt)
		}
	}
	if len(want) != 0 {
		t.Errorf("%d accepted events missing from the stream", len(want))
	}
}

// TestIntegration_Acceptance20000EventsWithMalformedOnesMixedIn is issue 2's
// acceptance test: 20,000 events through the collector with malformed ones
// mixed in → every valid event read back exactly once, on the shard whose
// hash range holds MD5(user_id), per-user order kept, aggregated records
// de-aggregating to the bytes the collector produced, and every malformed
// one rejected with its reason.
func TestIntegration_Acceptance20000EventsWithMalformedOnesMixedIn(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	pl := newPipeline(t, 4)
	start := time.Now()

	const total, perRequest, users = 20_000, 500, 700
	type bad struct{ body, reason string }
	malformed := []bad{
		{`{"type":"click","ts":"2026-11-22T10:00:00Z","item_id":"a-1"}`, "user_id"},
		{`{"type":"impression","ts":"2026-11-22T10:00:00Z","user_id":"u-1","position":"third"}`, "position"},
		{`{"type":"click","ts":true,"user_id":"u-1"}`, "ts"},
		{`["not","an","object"]`, "object"},
		{`{"type":"click","ts":"2026-11-22T10:00:00Z","user_id":"u-1","features":{"cat:x":"heavy"}}`, "features"},
		{`{"ts":"2026-11-22T10:00:00Z","user_id":"u-1"}`, "type"},
	}
	truncated := bad{`{"type":"click","ts":"2026-11-22T10:0`, ""} // NDJSON only: a JSON array could not be framed

	seqOf := map[string]int{} // per user, the next sequence number
	var (
		valid, rejected int
		wantReason      = map[string]string{} // "req/index" → expected substring
	)
	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for req := 0; req*perRequest < total; req++ {
		ndjson := req%2 == 1
		var events []string
		var reasons []string
		for i := range perRequest {
			n := req*perRequest + i
			if n%97 == 13 {
				b := malformed[(n/97)%len(malformed)]
				if ndjson && n%2 == 0 {
					b = truncated
				}
				events = append(events, b.body)
				reasons = append(reasons, b.reason)
				continue
			}
			u := fmt.Sprintf("u-%d", (n*7919)%users)
			seq := seqOf[u]
			seqOf[u]++
			id := ""
			if n%2 == 0 {
				id = fmt.Sprintf(`"id":"ev-%d",`, n) // the rest get ULIDs from the collector
			}
			typ := []string{"impression", "impression", "click", "access"}[n%4]
			events = append(events, fmt.Sprintf(`{%s"type":%q,"ts":%d,"user_id":%q,"item_id":"a-%d","placement":"home_feed","position":%d,"features":{"cat:c%d":1,"tag:t%d":0.5},"attrs":{"n":"%d","seq":"%d"}}`,
				id, typ, ts.Add(time.Duration(n)*time.Millisecond).UnixMilli(), u, n%1000, n%20, n%12, n%40, n, seq))
			reasons = append(reasons, "-")
		}
		var body string
		if ndjson {
			body = strings.Join(events, "\n") + "\n"
		} else {
			body = "[" + strings.Join(events, ",") + "]"
		}
		ct := map[bool]string{false: "application/json", true: "application/x-ndjson"}[ndjson]
		resp := pl.postEvents(t, ct, []byte(body), req%3 == 0)
		bads := 0
		for i, r := range reasons {
			if r != "-" {
				bads++
				wantReason[fmt.Sprintf("%d/%d", req, i)] = r
			}
		}
		if resp.Accepted != len(events)-bads || len(resp.Rejected) != bads {
			t.Fatalf("request %d: accepted %d rejected %d, want %d and %d", req, resp.Accepted, len(resp.Rejected), len(events)-bads, bads)
		}
		for _, rj := range resp.Rejected {
			k := fmt.Sprintf("%d/%d", req, rj.Index)
			sub, ok := wantReason[k]
			if !ok {
				t.Fatalf("request %d: valid event %d rejected: %s", req, rj.Index, rj.Error)
			}
			if rj.Error == "" || !strings.Contains(rj.Error, sub) {
				t.Errorf("request %d event %d: reason %q, want one mentioning %q", req, rj.Index, rj.Error, sub)
			}
			delete(wantReason, k)
		}
		valid += resp.Accepted
		rejected += len(resp.Rejected)
	}
	if len(wantReason) != 0 || rejected == 0 {
		t.Fatalf("malformed events not rejected: %v", wantReason)
	}
	postedOnly := time.Since(start)
	pl.drain(t)
	posted := time.Since(start)
	t.Logf("posting took %s, flushing %s; producer stats %+v", postedOnly.Round(time.Millisecond), (posted - postedOnly).Round(time.Millisecond), pl.sink.p.Stats())

	got, ranges := readAll(t, pl.kc, pl.stream, valid)
	kinesisRecords := map[string]bool{}
	for _, r := range got {
		kinesisRecords[r.shard+r.seq] = true
	}
	t.Logf("%d events (%d valid, %d malformed) posted in %s (%d retries after 503), read back in %s as %d Kinesis records",
		total, valid, rejected, posted.Round(time.Millisecond), pl.retries.Load(), (time.Since(start) - posted).Round(time.Millisecond), len(kinesisRecords))

	accepted := map[string]int{}
	for _, d := range pl.sink.accepted {
		accepted[string(d)]++
	}
	seen := map[string]bool{}
	lastSeq := map[string]int{}
	lastAt := map[string]string{}
	var orderErrs []string
	aggregated := 0
	for _, r := range got {
		if r.sub > 0 {
			aggregated++
		}
		if accepted[string(r.data)] != 1 {
			t.Fatalf("record on %s is not one of the accepted events' bytes: %s", r.shard, r.data)
		}
		e, err := event.Decode(r.data)
		if err != nil {
			t.Fatalf("stream record does not decode: %v", err)
		}
		n := e.Attrs["n"]
		if seen[n] {
			t.Fatalf("event n=%s read twice", n)
		}
		seen[n] = true
		if r.partitionKey != e.UserID {
			t.Fatalf("event n=%s: partition key %q, want user %q", n, r.partitionKey, e.UserID)
		}
		if !inRange(e.UserID, ranges[r.shard]) {
			t.Fatalf("event n=%s of %s on shard %s, outside the shard's hash range", n, e.UserID, r.shard)
		}
		seq, _ := strconv.Atoi(e.Attrs["seq"])
		last, ok := lastSeq[e.UserID]
		if !ok {
			last = -1
		}
		if seq != last+1 {
			orderErrs = append(orderErrs, fmt.Sprintf("user %s: seq %d read after %d (shard %s, record %s/%d; previous %s)", e.UserID, seq, last, r.shard, r.seq, r.sub, lastAt[e.UserID]))
		}
		lastSeq[e.UserID] = seq
		lastAt[e.UserID] = fmt.Sprintf("%s/%d", r.seq, r.sub)
	}
	if len(orderErrs) > 0 {
		t.Errorf("per-user order broken %d times; first ones:\n%s", len(orderErrs), strings.Join(orderErrs[:min(10, len(orderErrs))], "\n"))
	}
	if len(seen) != valid || len(got) != valid {
		t.Fatalf("read %d records (%d distinct), want exactly %d", len(got), len(seen), valid)
	}
	if aggregated == 0 {
		t.Errorf("no aggregated records: aggregation is supposed to be on by default")
	}
}
