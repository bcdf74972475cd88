package kinesisproxy_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy/proxytest"
)

// noRetries makes the SDK report the proxy's first answer.
func noRetries(o *kinesis.Options) { o.RetryMaxAttempts = 1 }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// shardOf is where Kinesis puts a key, computed here independently of the
// proxy: the open shard (listed on the emulator) whose range holds MD5(key).
func shardOf(t *testing.T, kc *kinesis.Client, stream string) func(hash *big.Int) string {
	t.Helper()
	out, err := kc.ListShards(ctxT(t), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	return func(h *big.Int) string {
		for _, s := range out.Shards {
			if s.SequenceNumberRange.EndingSequenceNumber != nil {
				continue
			}
			lo, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
			hi, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
			if h.Cmp(lo) >= 0 && h.Cmp(hi) <= 0 {
				return aws.ToString(s.ShardId)
			}
		}
		t.Fatalf("no shard holds %s", h)
		return ""
	}
}

func md5Int(key string) *big.Int {
	s := md5.Sum([]byte(key))
	return new(big.Int).SetBytes(s[:])
}

// readAll returns the data of every record on the stream, read from the
// emulator directly.
func readAll(t *testing.T, kc *kinesis.Client, stream string) map[string]string {
	t.Helper()
	ctx := ctxT(t)
	out, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{} // data → shard
	for _, s := range out.Shards {
		it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: s.ShardId,
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for empty := 0; iter != nil && empty < 2; {
			res, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res.Records {
				got[string(r.Data)] = aws.ToString(s.ShardId)
			}
			if len(res.Records) == 0 && aws.ToInt64(res.MillisBehindLatest) == 0 {
				empty++
			}
			iter = res.NextShardIterator
		}
	}
	return got
}

func entries(n, size int, key func(i int) string) []types.PutRecordsRequestEntry {
	out := make([]types.PutRecordsRequestEntry, n)
	for i := range out {
		data := fmt.Appendf(nil, "record-%04d-", i)
		data = append(data, bytes.Repeat([]byte("x"), max(0, size-len(data)))...)
		out[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(key(i)), Data: data}
	}
	return out
}

func TestProxy_PutRecordsRejectsEntriesOverTheShardLimitOneByOne(t *testing.T) {
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 2)
	ps := proxytest.Start(t, c, kinesisproxy.Config{Limits: kinesisproxy.Limits{WriteRecordsPerSec: 50}}, noRetries)
	want := shardOf(t, ps.Upstream, stream)
	in := entries(200, 100, func(i int) string { return fmt.Sprintf("user-%d", i) })
	start := time.Now()
	out, err := ps.Kinesis.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: in})
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	accepted, offered := map[string]int{}, map[string]int{}
	failed := 0
	for i, r := range out.Records {
		shard := want(md5Int(aws.ToString(in[i].PartitionKey)))
		offered[shard]++
		if r.ErrorCode != nil {
			failed++
			if aws.ToString(r.ErrorCode) != "ProvisionedThroughputExceededException" ||
				!strings.Contains(aws.ToString(r.ErrorMessage), "Rate exceeded for shard "+shard+" in stream "+stream) {
				t.Fatalf("entry %d: %s %s", i, aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage))
			}
			if r.SequenceNumber != nil || r.ShardId != nil {
				t.Fatalf("failed entry %d has a sequence number", i)
			}
			continue
		}
		if aws.ToString(r.ShardId) != shard {
			t.Fatalf("entry %d (key %s) written to %s, MD5 says %s", i, aws.ToString(in[i].PartitionKey), aws.ToString(r.ShardId), shard)
		}
		accepted[shard]++
	}
	if int(aws.ToInt32(out.FailedRecordCount)) != failed {
		t.Fatalf("FailedRecordCount %d, %d entries failed", aws.ToInt32(out.FailedRecordCount), failed)
	}
	// Each shard: its 1 s burst of 50, plus what refilled during the call.
	most := 50 + int(50*elapsed.Seconds()) + 1
	for shard, n := range offered {
		if n <= most {
			t.Fatalf("shard %s was offered only %d entries; the test needs more than %d", shard, n, most)
		}
		if accepted[shard] < 50 || accepted[shard] > most {
			t.Fatalf("shard %s accepted %d of %d entries, want 50..%d", shard, accepted[shard], n, most)
		}
	}
	// Rejected entries were not written; accepted ones were.
	written := readAll(t, ps.Upstream, stream)
	for i, r := range out.Records {
		_, ok := written[string(in[i].Data)]
		if ok != (r.ErrorCode == nil) {
			t.Fatalf("entry %d: written %v, error %v", i, ok, aws.ToString(r.ErrorCode))
		}
	}
	if len(written) != len(in)-failed {
		t.Fatalf("%d records on the stream, %d accepted", len(written), len(in)-failed)
	}
	st := ps.Stats()
	t.Logf("accepted %v of %v in %v; stats %+v", accepted, offered, elapsed, st)
	if st.PutEntriesThrottled != int64(failed) || st.RouteMismatches != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestProxy_ExplicitHashKeyDecidesWhichShardIsCharged(t *testing.T) {
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 2)
	ps := proxytest.Start(t, c, kinesisproxy.Config{Limits: kinesisproxy.Limits{WriteRecordsPerSec: 20}}, noRetries)
	shards, err := ps.Upstream.ListShards(ctxT(t), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	second := shards.Shards[1]
	// 60 entries whose keys hash anywhere, all sent to the second shard.
	in := entries(60, 50, func(i int) string { return fmt.Sprintf("k%d", i) })
	for i := range in {
		in[i].ExplicitHashKey = second.HashKeyRange.StartingHashKey
	}
	out, err := ps.Kinesis.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: in})
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for _, r := range out.Records {
		if r.ErrorCode == nil {
			ok++
			if aws.ToString(r.ShardId) != aws.ToString(second.ShardId) {
				t.Fatalf("written to %s", aws.ToString(r.ShardId))
			}
		}
	}
	if ok < 20 || ok > 22 {
		t.Fatalf("%d of 60 accepted on one shard limited to 20/s", ok)
	}
	// The first shard's budget is untouched.
	first := shards.Shards[0]
	in = entries(20, 50, func(i int) string { return fmt.Sprintf("f%d", i) })
	for i := range in {
		in[i].ExplicitHashKey = first.HashKeyRange.StartingHashKey
	}
	out, err = ps.Kinesis.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: in})
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("first shard: %v, %d failed", err, aws.ToInt32(out.FailedRecordCount))
	}
}

func TestProxy_WriteBytesLimitCountsDataAndPartitionKey(t *testing.T) {
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 1)
	ps := proxytest.Start(t, c, kinesisproxy.Config{Limits: kinesisproxy.Limits{WriteBytesPerSec: 10_000}}, noRetries)
	// 3,000 bytes + a 4-byte key: three fit in 10,000, the fourth does not.
	in := entries(6, 3000, func(i int) string { return fmt.Sprintf("k%03d", i) })
	out, err := ps.Kinesis.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: in})
	if err != nil {
		t.Fatal(err)
	}
	if n := aws.ToInt32(out.FailedRecordCount); n != 3 {
		t.Fatalf("%d of 6 failed, want 3", n)
	}
	for i, r := range out.Records {
		if (r.ErrorCode == nil) != (i < 3) {
			t.Fatalf("entry %d: error %v", i, aws.ToString(r.ErrorCode))
		}
	}
}

func TestProxy_PutRecordFailsWholeWhenTheShardIsOverItsLimit(t *testing.T) {
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 1)
	ps := proxytest.Start(t, c, kinesisproxy.Config{Limits: kinesisproxy.Limits{WriteRecordsPerSec: 5}}, noRetries)
	// All 10 at once: one after the other, a loaded machine answered them
	// slowly enough for the bucket to refill.
	ok, throttled := 0, 0
	errs := make(chan error, 10)
	ctx := ctxT(t)
	for i := range 10 {
		go func() {
			_, err := ps.Kinesis.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream),
				PartitionKey: aws.String(fmt.Sprint(i)), Data: fmt.Appendf(nil, "r%d", i)})
			errs <- err
		}()
	}
	for i := range 10 {
		err := <-errs
		var pte *types.ProvisionedThroughputExceededException
		var re *smithyhttp.ResponseError
		switch {
		case err == nil:
			ok++
		case errors.As(err, &pte) && errors.As(err, &re) && re.HTTPStatusCode() == 400:
			throttled++
		default:
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if ok < 5 || ok > 6 || throttled == 0 {
		t.Fatalf("%d written, %d throttled, want 5 (or 6 with a refill) written", ok, throttled)
	}
	if got := len(readAll(t, ps.Upstream, stream)); got != ok {
		t.Fatalf("%d records on the stream, %d acknowledged", got, ok)
	}
}

func TestProxy_GetRecordsIsLimitedToFiveCallsAndItsBytesPerShard(t *testing.T) {
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 1)
	in := entries(20, 1000, func(i int) string { return fmt.Sprint(i) })
	if _, err := c.Kinesis.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: in}); err != nil {
		t.Fatal(err)
	}
	ps := proxytest.Start(t, c, kinesisproxy.Config{Limits: kinesisproxy.Limits{ReadBytesPerSec: 4000}}, noRetries)
	ctx := ctxT(t)
	it, err := ps.Kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
		ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeLatest})
	if err != nil {
		t.Fatal(err)
	}
	// Calls: 5 per second (LATEST reads nothing, so bytes do not interfere).
	// All 10 at once: one after the other, a loaded machine answered them
	// slowly enough for the bucket to refill.
	ok, throttled := 0, 0
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			_, err := ps.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
			errs <- err
		}()
	}
	for range 10 {
		err := <-errs
		var pte *types.ProvisionedThroughputExceededException
		switch {
		case err == nil:
			ok++
		case errors.As(err, &pte):
			throttled++
			if !strings.Contains(pte.ErrorMessage(), "/"+stream+"/shardId-000000000000") {
				t.Fatalf("message %q", pte.ErrorMessage())
			}
		default:
			t.Fatal(err)
		}
	}
	if ok < 5 || ok > 6 || throttled < 4 {
		t.Fatalf("%d calls answered, %d throttled; want 5 (or 6) answered", ok, throttled)
	}
	// Bytes: one call reads ~20 KB from a shard allowed 4 KB/s; the debt
	// throttles the next calls for ~4 s even though calls are available.
	time.Sleep(1100 * time.Millisecond)
	it, err = ps.Kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
		ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ps.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil || len(res.Records) != 20 {
		t.Fatalf("big read: %v, %d records", err, len(res.Records))
	}
	readAt := time.Now()
	time.Sleep(1100 * time.Millisecond)
	if _, err := ps.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: res.NextShardIterator}); err == nil {
		t.Fatal("a read 1 s after reading 5 s worth of bytes was not throttled")
	}
	deadline := readAt.Add(10 * time.Second)
	for {
		_, err := ps.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: res.NextShardIterator})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still throttled 10 s after the big read: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if waited := time.Since(readAt); waited < 3*time.Second {
		t.Fatalf("reads resumed %v after ~20 KB on a 4 KB/s shard, want about 4 s", waited)
	}
	if st := ps.Stats(); st.ReadRecords != 20 || st.GetRecordsThrottled < 5 {
		t.Fatalf("stats %+v", st)
	}
}

func TestProxy_ChargesTheChildShardsAfterASplit(t *testing.T) {
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 1)
	ps := proxytest.Start(t, c, kinesisproxy.Config{Limits: kinesisproxy.Limits{WriteRecordsPerSec: 30}}, noRetries)
	ctx := ctxT(t)
	keys := func(i int) string { return fmt.Sprintf("key-%d", i) }
	if _, err := ps.Kinesis.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries(10, 10, keys)}); err != nil {
		t.Fatal(err)
	}
	mid := new(big.Int).Lsh(big.NewInt(1), 127).String()
	if _, err := ps.Kinesis.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream),
		ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String(mid)}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, ps.Kinesis, stream)
	time.Sleep(1100 * time.Millisecond) // buckets full again
	want := shardOf(t, ps.Upstream, stream)
	in := entries(150, 10, keys)
	out, err := ps.Kinesis.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: in})
	if err != nil {
		t.Fatal(err)
	}
	perShard := map[string]int{}
	for i, r := range out.Records {
		if r.ErrorCode == nil {
			if s := want(md5Int(keys(i))); aws.ToString(r.ShardId) != s {
				t.Fatalf("entry %d on %s, want %s", i, aws.ToString(r.ShardId), s)
			}
			perShard[aws.ToString(r.ShardId)]++
		}
	}
	// Two open children with 30 each; a proxy still charging the parent
	// would accept 30 in all.
	if len(perShard) != 2 || perShard["shardId-000000000000"] != 0 {
		t.Fatalf("accepted per shard %v", perShard)
	}
	for s, n := range perShard {
		if n < 30 || n > 32 {
			t.Fatalf("accepted per shard %v; %s should take 30", perShard, s)
		}
	}
	if st := ps.Stats(); st.RouteMismatches != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// waitActive waits until the stream is ACTIVE again (after a reshard).
func waitActive(t *testing.T, kc *kinesis.Client, stream string) {
	t.Helper()
	ctx := ctxT(t)
	for {
		d, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err != nil {
			t.Fatal(err)
		}
		if d.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// admin posts to the proxy's admin API.
func admin(t *testing.T, url, method, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestProxy_InjectsFaultsSetThroughTheAdminAPI(t *testing.T) {
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 1)
	ps := proxytest.Start(t, c, kinesisproxy.Config{}, noRetries)
	ctx := ctxT(t)
	faults := ps.URL + "/__faults"
	put := func(n int) (*kinesis.PutRecordsOutput, error) {
		return ps.Kinesis.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream),
			Records: entries(n, 10, func(i int) string { return fmt.Sprint(i) })})
	}
	if code := admin(t, faults, "POST", `{"error_rate":2}`); code != 400 {
		t.Fatalf("a rate of 2 accepted: %d", code)
	}
	if code := admin(t, faults, "POST", `{"eror_rate":0.5}`); code != 400 {
		t.Fatalf("a misspelt field accepted: %d", code)
	}

	// 500s: not forwarded.
	admin(t, faults, "POST", `{"status500_rate":1}`)
	_, err := put(3)
	var re *smithyhttp.ResponseError
	var ae smithy.APIError
	if !errors.As(err, &re) || re.HTTPStatusCode() != 500 || !errors.As(err, &ae) || ae.ErrorCode() != "InternalFailure" {
		t.Fatalf("status500_rate 1: %v", err)
	}
	// Dropped connections: a transport error, no answer.
	admin(t, faults, "POST", `{"drop_rate":1}`)
	if _, err = put(3); err == nil || errors.As(err, &ae) {
		t.Fatalf("drop_rate 1: %v", err)
	}
	// Per-entry errors on PutRecords: every entry fails, nothing is written.
	admin(t, faults, "POST", `{"error_rate":1,"operations":["PutRecords"]}`)
	out, err := put(5)
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 5 || aws.ToString(out.Records[0].ErrorCode) != "ProvisionedThroughputExceededException" {
		t.Fatalf("error_rate 1: %v %+v", err, out)
	}
	// ... and only on the operations named.
	if _, err := ps.Kinesis.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("a"), Data: []byte("one")}); err != nil {
		t.Fatalf("PutRecord hit by a PutRecords fault: %v", err)
	}
	// Dropped after forwarding: the client sees an error, the record is written.
	admin(t, faults, "POST", `{"drop_after_rate":1,"operations":["PutRecord"]}`)
	if _, err := ps.Kinesis.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("b"), Data: []byte("two")}); err == nil {
		t.Fatal("drop_after_rate 1: no error")
	}
	// Latency.
	admin(t, faults, "POST", `{"latency":"300ms"}`)
	start := time.Now()
	if _, err := ps.Kinesis.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("ListShards took %v with 300ms latency", d)
	}
	admin(t, faults, "DELETE", "")
	if out, err := put(2); err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("after DELETE: %v", err)
	}
	written := readAll(t, ps.Upstream, stream)
	if len(written) != 4 { // "one", "two" and the last two
		t.Fatalf("written: %v", written)
	}
	st := ps.Stats()
	if st.Injected500s != 1 || st.DroppedBefore != 1 || st.InjectedErrors != 5 || st.DroppedAfter != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Kinesis answers with a Content-Length, and so does the proxy: a large
// answer sent chunked made clients read it without knowing its size.
func TestProxy_AnswersWithAContentLength(t *testing.T) {
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 1)
	if _, err := c.Kinesis.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String(stream),
		Records: entries(40, 1000, func(i int) string { return fmt.Sprint(i) })}); err != nil {
		t.Fatal(err)
	}
	ps := proxytest.Start(t, c, kinesisproxy.Config{Limits: kinesisproxy.NoLimits()}, noRetries)
	ctx := ctxT(t)
	it, err := ps.Kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
		ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	out, err := ps.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response)
	if raw == nil || len(out.Records) != 40 {
		t.Fatalf("%d records, raw response %v", len(out.Records), raw)
	}
	// 40 records of 1000 bytes: a body of ~55 KB, well past what an HTTP
	// server sizes by itself.
	if raw.ContentLength < 50_000 || len(raw.TransferEncoding) > 0 {
		t.Fatalf("Content-Length %d, Transfer-Encoding %v: want the body's length", raw.ContentLength, raw.TransferEncoding)
	}
}
