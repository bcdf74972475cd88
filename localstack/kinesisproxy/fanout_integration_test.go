package kinesisproxy_test

import (
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy/proxytest"
)

// registerActive registers a stream consumer through the proxy and waits
// until it is ACTIVE.
func registerActive(t *testing.T, kc *kinesis.Client, stream, name string) string {
	t.Helper()
	ctx := ctxT(t)
	sum, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(reg.Consumer.ConsumerARN)
	for {
		d, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		if d.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive {
			return arn
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nextEvent waits up to d for the subscription's next event; nil when the
// stream ended.
func nextEvent(t *testing.T, s *kinesis.SubscribeToShardEventStream, d time.Duration) *types.SubscribeToShardEvent {
	t.Helper()
	select {
	case ev, ok := <-s.Events():
		if !ok {
			return nil
		}
		e, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		if !ok {
			t.Fatalf("unexpected event %T", ev)
		}
		return &e.Value
	case <-time.After(d):
		t.Fatalf("no event within %s", d)
		return nil
	}
}

func put(t *testing.T, kc *kinesis.Client, stream string, data ...string) {
	t.Helper()
	for _, d := range data {
		if _, err := kc.PutRecord(ctxT(t), &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("k"), Data: []byte(d)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestProxy_SubscribeToShardPushesRecordsAndEndsLikeAWS(t *testing.T) {
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 1)
	ps := proxytest.Start(t, c, kinesisproxy.Config{Limits: kinesisproxy.NoLimits(), SubscriptionLifetime: 3 * time.Second}, noRetries)
	ctx := ctxT(t)
	put(t, ps.Kinesis, stream, "a", "b", "c")
	arn := registerActive(t, ps.Kinesis, stream, "app")

	sub, err := ps.Kinesis.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(arn),
		ShardId: aws.String("shardId-000000000000"), StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	if err != nil {
		t.Fatalf("subscribe (the SDK needs the initial-response event): %v", err)
	}
	stream1 := sub.GetStream()
	defer stream1.Close()
	ev := nextEvent(t, stream1, 2*time.Second)
	if len(ev.Records) != 3 || string(ev.Records[0].Data) != "a" || aws.ToString(ev.ContinuationSequenceNumber) != aws.ToString(ev.Records[2].SequenceNumber) {
		t.Fatalf("first event: %d records, continuation %s", len(ev.Records), aws.ToString(ev.ContinuationSequenceNumber))
	}
	cont := aws.ToString(ev.ContinuationSequenceNumber)

	// One subscription per consumer and shard.
	_, err = ps.Kinesis.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(arn),
		ShardId: aws.String("shardId-000000000000"), StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	var inUse *types.ResourceInUseException
	if !errors.As(err, &inUse) {
		t.Fatalf("second subscription within 5 s: %v, want ResourceInUseException", err)
	}

	// A record put now is pushed within the push interval, not a second.
	put(t, ps.Kinesis, stream, "d")
	putAt := time.Now()
	for {
		ev = nextEvent(t, stream1, 2*time.Second)
		if ev == nil {
			t.Fatal("subscription ended before the new record")
		}
		if len(ev.Records) > 0 {
			break
		}
	}
	if lat := time.Since(putAt); len(ev.Records) != 1 || string(ev.Records[0].Data) != "d" || lat > 500*time.Millisecond {
		t.Fatalf("pushed %d records after %s", len(ev.Records), lat)
	}
	cont = aws.ToString(ev.ContinuationSequenceNumber)

	// The subscription ends by itself after its lifetime, without error.
	for ev != nil {
		ev = nextEvent(t, stream1, 5*time.Second)
	}
	if err := stream1.Err(); err != nil {
		t.Fatalf("ended with %v", err)
	}

	// Re-subscribing after the continuation gets only what came later.
	put(t, ps.Kinesis, stream, "e")
	sub, err = ps.Kinesis.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(arn),
		ShardId: aws.String("shardId-000000000000"), StartingPosition: &types.StartingPosition{
			Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(cont)}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.GetStream().Close()
	for {
		ev = nextEvent(t, sub.GetStream(), 2*time.Second)
		if ev == nil || len(ev.Records) > 0 {
			break
		}
	}
	if ev == nil || len(ev.Records) != 1 || string(ev.Records[0].Data) != "e" {
		t.Fatalf("after the continuation: %+v", ev)
	}
	st := ps.Stats()
	for deadline := time.Now().Add(time.Second); st.FanOutRecords < 5 && time.Now().Before(deadline); st = ps.Stats() {
		time.Sleep(10 * time.Millisecond) // counted just after the event is written
	}
	if st.Subscriptions != 2 || st.SubscribeRejected != 1 || st.FanOutRecords != 5 {
		t.Fatalf("stats: %d subscriptions, %d rejected, %d records pushed", st.Subscriptions, st.SubscribeRejected, st.FanOutRecords)
	}
}

func TestProxy_SubscribeToShardEndsAClosedShardWithItsChildren(t *testing.T) {
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 1)
	ps := proxytest.Start(t, c, kinesisproxy.Config{Limits: kinesisproxy.AWSLimits()}, noRetries)
	ctx := ctxT(t)
	put(t, ps.Kinesis, stream, "before")
	mid := new(big.Int).Lsh(big.NewInt(1), 127).String()
	if _, err := ps.Kinesis.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream),
		ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String(mid)}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, ps.Kinesis, stream)
	arn := registerActive(t, ps.Kinesis, stream, "app")
	sub, err := ps.Kinesis.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(arn),
		ShardId: aws.String("shardId-000000000000"), StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.GetStream().Close()
	var records int
	var last *types.SubscribeToShardEvent
	for ev := nextEvent(t, sub.GetStream(), 3*time.Second); ev != nil; ev = nextEvent(t, sub.GetStream(), 3*time.Second) {
		records += len(ev.Records)
		last = ev
	}
	if last == nil || records != 1 || last.ContinuationSequenceNumber != nil {
		t.Fatalf("closed shard: %d records, last event %+v", records, last)
	}
	if testenv.KinesisEmulator() == "kinesis-local" && len(last.ChildShards) != 2 {
		t.Fatalf("last event names %d child shards, want 2", len(last.ChildShards))
	}

	// With AWS limits, one SubscribeToShard call per second per consumer-shard.
	_, err = ps.Kinesis.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(arn),
		ShardId: aws.String("shardId-000000000000"), StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	var limit *types.LimitExceededException
	if !errors.As(err, &limit) {
		t.Fatalf("a second call at once: %v, want LimitExceededException", err)
	}
	// A consumer that is not registered.
	_, err = ps.Kinesis.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(strings.Replace(arn, "/consumer/app:", "/consumer/nobody:", 1)),
		ShardId: aws.String("shardId-000000000001"), StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("unknown consumer: %v, want ResourceNotFoundException", err)
	}
}
