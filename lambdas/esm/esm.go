// Package esm is a local stand-in for Lambda's Kinesis event source mapping:
// it invokes a Lambda handler in-process with events.KinesisEvent batches,
// so `clickstream consume --host lambda` runs the exact Lambda code path on
// the local stack and tests can compare it with the long-running host.
//
// It is a consumers.Processor host on top of consumers.Runner, which already
// reads every shard in order with leases and checkpoints in the lease table;
// this package only turns the runner's batches back into Lambda-shaped
// events and plays the mapping's part:
//
//   - BatchSize Kinesis records per invocation at most, waiting up to
//     BatchingWindow for a batch to fill (Lambda's MaximumBatchingWindow);
//     one shard per invocation, one invocation per shard at a time
//     (parallelization factor 1);
//   - ReportBatchItemFailures: the handler's first failed item is where the
//     retry starts; records before it are done. A handler error retries the
//     whole batch. Retries back off (RetryBackoff, doubling, capped at 10s)
//     and go on until MaxRetryAttempts (default -1: until the records
//     expire, i.e. forever locally, as Lambda's default), then the batch is
//     logged as given up (Lambda's on-failure destination) and skipped;
//   - the checkpoint (the runner's, in the lease table under Name) only ever
//     moves past whole Kinesis records that the handler finished.
//
// Fidelity: the runner hands over de-aggregated user records; a KPL aggregate
// is re-aggregated into one Kinesis record (same user records, sub-sequence
// numbers, partition and explicit hash keys — not necessarily the producer's
// bytes), a corrupt aggregate is passed on as its raw bytes, and every event
// goes through a JSON round trip as Lambda's would (arrival times as epoch
// seconds). Bisect-on-error and the record-age limit are not modelled. Bad
// records are dead-lettered twice (by the runner, then by the handler): the
// dead-letter sink is idempotent, so it stores them once.
package esm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/internal/retry"
	"github.com/clickstream-go/clickstream/kpl"
)

// Handler is a Kinesis Lambda handler (kinesisadapter.Handler.Handle).
type Handler func(context.Context, events.KinesisEvent) (events.KinesisEventResponse, error)

// Defaults.
const (
	DefaultBatchSize    = 100 // Lambda's default for Kinesis
	DefaultRetryBackoff = 100 * time.Millisecond
	maxRetryBackoff     = 10 * time.Second
)

// Config configures the mapping. Zero fields take the defaults.
type Config struct {
	// Name is the application name of the mapping's leases and checkpoints.
	// Default "esm-" + the function name given to New, so the mapping's
	// checkpoints never mix with the per-shard state the handler keeps
	// under the function's own name.
	Name string
	// Stream and Region make the events' eventSourceARN and awsRegion.
	// Defaults "clickstream-events" and "us-east-1".
	Stream, Region string
	// BatchSize is the most Kinesis records per invocation. Default 100.
	BatchSize int
	// BatchingWindow is how long records wait for a batch to fill.
	// Default 0: invoke with whatever one read returned.
	BatchingWindow time.Duration
	// MaxRetryAttempts bounds the retries of a failing batch; then it is
	// logged as given up and skipped. Default -1: retry until stopped.
	MaxRetryAttempts int
	// RetryBackoff is the first wait before a retry; it doubles up to 10s.
	// Default 100ms.
	RetryBackoff time.Duration
	// Logger receives the mapping's logs. Default: discard.
	Logger *slog.Logger
	// Now is the clock of the batching window. Default time.Now.
	Now func() time.Time
}

// Mapping is the event source mapping of one function: a consumers.Processor.
type Mapping struct {
	fn      string
	handler Handler
	cfg     Config
	arn     string
}

var _ consumers.Processor = (*Mapping)(nil)

// New returns the mapping of function fn (a name for logs and the default
// lease namespace) invoking h.
func New(fn string, h Handler, cfg Config) (*Mapping, error) {
	if h == nil || fn == "" {
		return nil, errors.New("esm: a function name and a handler are required")
	}
	if cfg.Name == "" {
		cfg.Name = "esm-" + fn
	}
	if cfg.Stream == "" {
		cfg.Stream = "clickstream-events"
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.MaxRetryAttempts == 0 {
		cfg.MaxRetryAttempts = -1
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = DefaultRetryBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	arn := fmt.Sprintf("arn:aws:kinesis:%s:000000000000:stream/%s", cfg.Region, cfg.Stream)
	return &Mapping{fn: fn, handler: h, cfg: cfg, arn: arn}, nil
}

// Name implements consumers.Processor.
func (m *Mapping) Name() string { return m.cfg.Name }

// OpenShard implements consumers.Processor.
func (m *Mapping) OpenShard(ctx context.Context, s consumers.Shard) (consumers.ShardProcessor, error) {
	return &shard{m: m, id: s.ID, log: m.cfg.Logger.With(slog.String("function", m.fn), slog.String("shard", s.ID))}, nil
}

// shard buffers one shard's Kinesis records until a batch is due.
type shard struct {
	m       *Mapping
	id      string
	log     *slog.Logger
	pending []events.KinesisEventRecord
	last    []consumers.Position // last user-record position of each pending record
	since   time.Time            // when the oldest pending record was buffered
	durable consumers.Position   // reported by the last Process or Flush
	agg     kpl.Aggregator
}

// Process implements consumers.ShardProcessor.
func (s *shard) Process(ctx context.Context, b consumers.Batch) (consumers.Position, error) {
	before := len(s.pending)
	s.appendRecords(b.Records)
	now := s.m.cfg.Now()
	if before == 0 && len(s.pending) > 0 {
		s.since = now
	}
	for len(s.pending) >= s.m.cfg.BatchSize {
		if err := s.invoke(ctx, s.m.cfg.BatchSize); err != nil {
			return s.durable, err
		}
	}
	if len(s.pending) > 0 && (b.ShardEnd || now.Sub(s.since) >= s.m.cfg.BatchingWindow) {
		if err := s.invoke(ctx, len(s.pending)); err != nil {
			return s.durable, err
		}
	}
	return s.durable, nil
}

// Flush implements consumers.ShardProcessor.
func (s *shard) Flush(ctx context.Context) (consumers.Position, error) {
	for len(s.pending) > 0 {
		if err := s.invoke(ctx, min(len(s.pending), s.m.cfg.BatchSize)); err != nil {
			return s.durable, err
		}
	}
	return s.durable, nil
}

// Close implements consumers.ShardProcessor: pending records are dropped
// (the next owner replays them from the checkpoint).
func (s *shard) Close() { s.pending, s.last = nil, nil }

// appendRecords turns user records back into Kinesis records: consecutive
// records with one sequence number are one record (re-aggregated when they
// came from a KPL aggregate).
func (s *shard) appendRecords(recs []consumers.Record) {
	for i := 0; i < len(recs); {
		j := i + 1
		for j < len(recs) && recs[j].SequenceNumber == recs[i].SequenceNumber {
			j++
		}
		group := recs[i:j]
		first := &group[0]
		var data []byte
		pk := first.PartitionKey
		switch {
		case !first.Aggregated, errors.Is(first.Err, kpl.ErrCorrupt):
			data = append([]byte(nil), first.Data...) // the runner's buffer is not ours to keep
		default:
			for k := range group {
				s.agg.Add(kpl.Record{PartitionKey: group[k].PartitionKey, ExplicitHashKey: group[k].ExplicitHashKey, Data: group[k].Data})
			}
			var built []byte
			built, pk, _ = s.agg.Build()
			data = append([]byte(nil), built...)
			s.agg.Reset()
		}
		s.pending = append(s.pending, events.KinesisEventRecord{
			AwsRegion: s.m.cfg.Region, EventID: s.id + ":" + first.SequenceNumber, EventName: "aws:kinesis:record",
			EventSource: "aws:kinesis", EventSourceArn: s.m.arn, EventVersion: "1.0",
			InvokeIdentityArn: "arn:aws:iam::000000000000:role/" + s.m.fn,
			Kinesis: events.KinesisRecord{
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: first.ArrivalTime},
				Data:                        data, PartitionKey: pk, SequenceNumber: first.SequenceNumber,
				KinesisSchemaVersion: "1.0",
			},
		})
		s.last = append(s.last, group[len(group)-1].Position)
		i = j
	}
}

// invoke runs the first n pending records through the handler until they
// are all done (or given up), retrying from the first failed item.
func (s *shard) invoke(ctx context.Context, n int) error {
	backoff := s.m.cfg.RetryBackoff
	for attempt := 0; n > 0; attempt++ {
		done, err := s.call(ctx, s.pending[:n])
		if done > 0 {
			s.durable = s.last[done-1]
			s.pending, s.last, n = s.pending[done:], s.last[done:], n-done
			if len(s.pending) == 0 {
				s.pending, s.last = nil, nil
			}
			attempt = -1 // progress starts a new retry count for the rest
			backoff = s.m.cfg.RetryBackoff
		}
		if n == 0 {
			break
		}
		if s.m.cfg.MaxRetryAttempts >= 0 && attempt >= s.m.cfg.MaxRetryAttempts {
			s.log.Error("batch given up after retries (on-failure destination)", slog.Int("records", n),
				slog.String("first_sequence", s.pending[0].Kinesis.SequenceNumber),
				slog.String("last_sequence", s.pending[n-1].Kinesis.SequenceNumber), slog.Any("err", err))
			s.durable = s.last[n-1]
			s.pending, s.last = s.pending[n:], s.last[n:]
			return nil
		}
		s.log.Warn("invocation failed; retrying", slog.Int("records", n),
			slog.String("from_sequence", s.pending[0].Kinesis.SequenceNumber), slog.Any("err", err))
		if err := retry.Sleep(ctx, backoff); err != nil {
			return err
		}
		backoff = min(2*backoff, maxRetryBackoff)
	}
	if len(s.pending) > 0 && len(s.pending) < s.m.cfg.BatchSize {
		s.since = s.m.cfg.Now()
	}
	return nil
}

// call invokes the handler once with recs and returns how many leading
// records are done.
func (s *shard) call(ctx context.Context, recs []events.KinesisEventRecord) (int, error) {
	// A JSON round trip, as Lambda delivers it: what the handler sees is
	// what it would see in AWS (epoch-second arrival times, base64 data).
	raw, err := json.Marshal(events.KinesisEvent{Records: recs})
	if err != nil {
		return 0, fmt.Errorf("encode event: %w", err)
	}
	var ev events.KinesisEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return 0, fmt.Errorf("decode event: %w", err)
	}
	resp, err := s.m.handler(ctx, ev)
	if err != nil {
		return 0, fmt.Errorf("invoke %s: %w", s.m.fn, err)
	}
	if len(resp.BatchItemFailures) == 0 {
		return len(recs), nil
	}
	// Lambda retries from the lowest failed sequence number.
	first := len(recs)
	for _, f := range resp.BatchItemFailures {
		found := false
		for i, r := range recs {
			if r.Kinesis.SequenceNumber == f.ItemIdentifier {
				first, found = min(first, i), true
				break
			}
		}
		if !found {
			// An identifier not in the batch: Lambda treats the batch as
			// failed as a whole.
			return 0, fmt.Errorf("invoke %s: batch item failure %q names no record of the batch", s.m.fn, f.ItemIdentifier)
		}
	}
	return first, fmt.Errorf("invoke %s: records from %s failed", s.m.fn, recs[first].Kinesis.SequenceNumber)
}
