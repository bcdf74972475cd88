package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"

	"github.com/clickstream-go/clickstream/internal/retry"
)

// Read modes (Config.ReadMode).
const (
	// ReadPoll shares each shard's 5 GetRecords calls/s and 2 MiB/s with
	// every other application polling it.
	ReadPoll = "poll"
	// ReadEFO is enhanced fan-out: a registered stream consumer per
	// application, records pushed over SubscribeToShard, 2 MiB/s per shard
	// of its own. AWS bills it per consumer-shard-hour and per GB.
	ReadEFO = "efo"
)

// FanOutAPI is the part of the Kinesis client enhanced fan-out uses
// (*kinesis.Client has it).
type FanOutAPI interface {
	DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	RegisterStreamConsumer(context.Context, *kinesis.RegisterStreamConsumerInput, ...func(*kinesis.Options)) (*kinesis.RegisterStreamConsumerOutput, error)
	DescribeStreamConsumer(context.Context, *kinesis.DescribeStreamConsumerInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamConsumerOutput, error)
	ListStreamConsumers(context.Context, *kinesis.ListStreamConsumersInput, ...func(*kinesis.Options)) (*kinesis.ListStreamConsumersOutput, error)
	DeregisterStreamConsumer(context.Context, *kinesis.DeregisterStreamConsumerInput, ...func(*kinesis.Options)) (*kinesis.DeregisterStreamConsumerOutput, error)
	SubscribeToShard(context.Context, *kinesis.SubscribeToShardInput, ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error)
}

var _ FanOutAPI = (*kinesis.Client)(nil)

// StreamConsumer is a registered enhanced fan-out consumer.
type StreamConsumer struct {
	Name, ARN, Status string
	Created           time.Time
}

// streamARN returns the stream's ARN.
func streamARN(ctx context.Context, kc FanOutAPI, stream string) (string, error) {
	out, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		return "", fmt.Errorf("describe stream %s: %w", stream, err)
	}
	return aws.ToString(out.StreamDescriptionSummary.StreamARN), nil
}

// RegisterConsumer returns the ARN of the stream consumer called name,
// registering it when it does not exist, and waits until it is ACTIVE
// (AWS takes seconds; a consumer being deleted is waited out and
// registered again). It is idempotent: every process of an application
// calls it at start.
func RegisterConsumer(ctx context.Context, kc FanOutAPI, stream, name string) (string, error) {
	sarn, err := streamARN(ctx, kc, stream)
	if err != nil {
		return "", err
	}
	bo := retry.Backoff{Min: 250 * time.Millisecond, Max: 5 * time.Second}
	for {
		d, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: aws.String(sarn), ConsumerName: aws.String(name)})
		var nf *types.ResourceNotFoundException
		switch {
		case errors.As(err, &nf):
			_, err = kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(sarn), ConsumerName: aws.String(name)})
			var inUse *types.ResourceInUseException
			if err != nil && !errors.As(err, &inUse) && !retry.IsThrottle(err) && !isLimitExceeded(err) {
				return "", fmt.Errorf("register stream consumer %s on %s: %w", name, stream, err)
			}
		case err != nil && !retry.IsThrottle(err) && !isLimitExceeded(err):
			return "", fmt.Errorf("describe stream consumer %s on %s: %w", name, stream, err)
		case err == nil && d.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive:
			return aws.ToString(d.ConsumerDescription.ConsumerARN), nil
		}
		// CREATING, DELETING (then registered again), or throttled.
		if err := retry.Sleep(ctx, bo.Next()); err != nil {
			return "", fmt.Errorf("register stream consumer %s on %s: %w", name, stream, err)
		}
	}
}

// ListConsumers returns the stream's registered consumers, sorted by name.
func ListConsumers(ctx context.Context, kc FanOutAPI, stream string) ([]StreamConsumer, error) {
	sarn, err := streamARN(ctx, kc, stream)
	if err != nil {
		return nil, err
	}
	var out []StreamConsumer
	in := &kinesis.ListStreamConsumersInput{StreamARN: aws.String(sarn)}
	for {
		page, err := kc.ListStreamConsumers(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list stream consumers of %s: %w", stream, err)
		}
		for _, c := range page.Consumers {
			out = append(out, StreamConsumer{Name: aws.ToString(c.ConsumerName), ARN: aws.ToString(c.ConsumerARN),
				Status: string(c.ConsumerStatus), Created: aws.ToTime(c.ConsumerCreationTimestamp)})
		}
		if page.NextToken == nil {
			break
		}
		in = &kinesis.ListStreamConsumersInput{StreamARN: aws.String(sarn), NextToken: page.NextToken}
	}
	slices.SortFunc(out, func(a, b StreamConsumer) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DeregisterConsumer deregisters the stream consumer called name. Its
// subscriptions end; a running application using it registers it again.
func DeregisterConsumer(ctx context.Context, kc FanOutAPI, stream, name string) error {
	sarn, err := streamARN(ctx, kc, stream)
	if err != nil {
		return err
	}
	if _, err := kc.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{StreamARN: aws.String(sarn), ConsumerName: aws.String(name)}); err != nil {
		return fmt.Errorf("deregister stream consumer %s on %s: %w", name, stream, err)
	}
	return nil
}

func isLimitExceeded(err error) bool {
	var le *types.LimitExceededException
	return errors.As(err, &le)
}

// ownEventCodec gives a subscription an event stream codec of its own.
// aws-sdk-go-v2 (service/kinesis v1.56, smithy-go v1.28) keeps one codec per
// client, with one decode buffer that every event stream of the client
// decodes into: two subscriptions on one client (one per shard) race on it
// (the race detector shows it, and an event may be parsed from another's
// bytes). A Protocol per call gives each stream its own codec.
func ownEventCodec(o *kinesis.Options) { o.Protocol = awsjson.New11(schemas.Kinesis_20131202) }

// subscribeErrKind classifies a SubscribeToShard failure for back-off,
// logs and metrics.
func subscribeErrKind(err error) string {
	var (
		inUse *types.ResourceInUseException
		nf    *types.ResourceNotFoundException
	)
	switch {
	case errors.As(err, &inUse):
		return "in_use" // another subscription of this consumer-shard: a lease moving
	case isLimitExceeded(err):
		return "limit" // over one SubscribeToShard call per second
	case errors.As(err, &nf):
		return "not_found"
	case retry.IsThrottle(err):
		return "throttled"
	}
	return "other"
}

// efoReader reads a shard through enhanced fan-out: a subscription from the
// session's start position, then one from the last ContinuationSequenceNumber
// each time a subscription ends (after 5 minutes on AWS) or breaks.
type efoReader struct {
	w        *shardWorker
	start    Position
	from     time.Time
	cont     string // the last ContinuationSequenceNumber
	lastRead string // the last Kinesis record's sequence number
	behind   int64
	stream   *kinesis.SubscribeToShardEventStream
	cancel   context.CancelFunc // ends stream's connection
	lastCall time.Time
	bo       retry.Backoff
	errs     errLog
	failures int // consecutive failed subscriptions
}

// subscribeSpacing: AWS allows one SubscribeToShard call per second per
// consumer-shard.
const subscribeSpacing = time.Second

func (w *shardWorker) newEFOReader(start Position, from time.Time) *efoReader {
	return &efoReader{w: w, start: start, from: from, bo: retry.Backoff{Min: w.r.cfg.PollInterval, Max: w.r.cfg.MaxBackoff}}
}

// position is where the next subscription starts: after what was read, or
// where the session starts (as the poll reader's first iterator).
func (e *efoReader) position() *types.StartingPosition {
	switch {
	case e.cont != "":
		return &types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(e.cont)}
	case e.lastRead != "":
		return &types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(e.lastRead)}
	case !e.from.IsZero() && !e.start.IsZero():
		return &types.StartingPosition{Type: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(e.from)}
	case e.start.IsZero():
		return &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}
	}
	return &types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(e.start.SequenceNumber)}
}

func (e *efoReader) close() {
	if e.stream != nil {
		_ = e.stream.Close()
		e.cancel()
		e.stream, e.cancel = nil, nil
	}
}

// subscribe opens a subscription, backing off while it fails. It returns
// errStopped on a stop request, errShardGone when the shard is past
// retention, or the shard's context error.
func (e *efoReader) subscribe() error {
	w := e.w
	for {
		if d := time.Until(e.lastCall.Add(subscribeSpacing)); d > 0 {
			if stopped, err := w.sleep(d); err != nil {
				return err
			} else if stopped {
				return errStopped
			}
		}
		arn, err := w.r.consumerARN(w.ctx)
		if err != nil {
			return err
		}
		e.lastCall = time.Now()
		sctx, cancel := context.WithCancel(w.ctx)
		hung := time.AfterFunc(callTimeout, cancel) // the call, not the stream it opens
		out, err := w.r.fanOut.SubscribeToShard(sctx, &kinesis.SubscribeToShardInput{
			ConsumerARN: aws.String(arn), ShardId: aws.String(w.lease.ShardID), StartingPosition: e.position()}, noSDKRetries, ownEventCodec)
		hung.Stop()
		if err == nil {
			e.stream, e.cancel = out.GetStream(), cancel
			w.r.m.subscribed(w.r.cfg.App)
			return nil
		}
		cancel()
		if w.ctx.Err() != nil {
			return w.ctx.Err()
		}
		kind := subscribeErrKind(err)
		w.r.m.subscribeError(w.r.cfg.App, kind)
		if kind == "not_found" {
			if w.goneFromStream() {
				return errShardGone
			}
			// The consumer was deregistered under us: register it again.
			w.r.forgetConsumer(arn)
		}
		e.failures++
		level := slog.LevelWarn
		if kind == "in_use" && e.failures < 5 {
			level = slog.LevelInfo // a lease that just moved: the old subscription ends within seconds
		}
		e.errs.log(w.log, level, "subscribe to shard failed; backing off", err, slog.String("kind", kind), slog.Int("attempts", e.failures))
		if stopped, err := w.sleep(e.bo.Next()); err != nil {
			return err
		} else if stopped {
			return errStopped
		}
	}
}

// next returns the next batch pushed, or an empty one when nothing came for
// PollInterval, so processors that hold records by time (the archive's max
// age, the vectors' coalescing) are called about as often as when polling.
func (e *efoReader) next() (readBatch, error) {
	w := e.w
	idle := time.NewTimer(w.r.cfg.PollInterval)
	defer idle.Stop()
	for {
		if e.stream == nil {
			if err := e.subscribe(); err != nil {
				return readBatch{}, err
			}
		}
		select {
		case <-w.ctx.Done():
			return readBatch{}, w.ctx.Err()
		case <-w.stop:
			return readBatch{}, errStopped
		case <-idle.C:
			return readBatch{behind: e.behind}, nil
		case ev, ok := <-e.stream.Events():
			if !ok {
				err := e.stream.Err()
				e.close()
				if err == nil {
					continue // the subscription's lifetime is over: subscribe again
				}
				if w.ctx.Err() != nil {
					return readBatch{}, w.ctx.Err()
				}
				kind := subscribeErrKind(err)
				w.r.m.subscribeError(w.r.cfg.App, kind)
				e.failures++
				e.errs.log(w.log, slog.LevelWarn, "subscription broke; subscribing again", err, slog.String("kind", kind))
				if stopped, err := w.sleep(e.bo.Next()); err != nil {
					return readBatch{}, err
				} else if stopped {
					return readBatch{}, errStopped
				}
				continue
			}
			m, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !ok {
				continue // an event type this SDK does not know
			}
			e.failures = 0
			e.bo.Reset()
			v := m.Value
			e.behind = aws.ToInt64(v.MillisBehindLatest)
			if n := len(v.Records); n > 0 {
				e.lastRead = aws.ToString(v.Records[n-1].SequenceNumber)
			}
			end := v.ContinuationSequenceNumber == nil
			if !end {
				e.cont = *v.ContinuationSequenceNumber
			} else {
				e.close()
			}
			return readBatch{records: v.Records, behind: e.behind, children: v.ChildShards, end: end}, nil
		}
	}
}

// consumerARN returns the application's stream consumer, registering it
// (and waiting until it is ACTIVE) the first time and after forgetConsumer.
func (r *Runner) consumerARN(ctx context.Context) (string, error) {
	r.arnMu.Lock()
	defer r.arnMu.Unlock()
	if r.arn != "" {
		return r.arn, nil
	}
	arn, err := RegisterConsumer(ctx, r.fanOut, r.cfg.Stream, r.cfg.ConsumerName)
	if err != nil {
		return "", err
	}
	r.log.Info("enhanced fan-out consumer ready", slog.String("consumer", r.cfg.ConsumerName), slog.String("arn", arn))
	r.arn = arn
	return arn, nil
}

// forgetConsumer drops arn (deregistered under us) so the next
// subscription registers the consumer again.
func (r *Runner) forgetConsumer(arn string) {
	r.arnMu.Lock()
	defer r.arnMu.Unlock()
	if r.arn == arn {
		r.arn = ""
	}
}
