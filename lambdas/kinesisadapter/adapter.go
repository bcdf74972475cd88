// Package kinesisadapter runs a consumers.Processor inside AWS Lambda: it
// turns an events.KinesisEvent into the same consumers.Batch the
// long-running runtime builds (KPL de-aggregation included, which no Go
// library does for Lambda events), and maps a processor failure to
// KinesisEventResponse.BatchItemFailures naming the first record that is not
// durable, so the event source mapping (with ReportBatchItemFailures) retries
// from there. Bad records are dead-lettered and never fail the batch, so one
// bad record cannot block a shard for the retention period.
package kinesisadapter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers"
)

// Handler is the Lambda handler: lambda.Start(h.Handle).
type Handler struct {
	proc  consumers.Processor
	dlq   consumers.DeadLetter
	state func(shardID string) consumers.StateStore
	log   *slog.Logger
	now   func() time.Time

	// dedup holds each shard's window of recent event ids across the
	// invocations of this (warm) instance; see WithDedup.
	dedupAge time.Duration
	dedupIDs int
	dedup    map[string]*consumers.DedupWindow

	m adapterMetrics
}

// adapterMetrics are the runtime's figures in Lambda, named as the
// long-running runtime names them (without the shard label).
type adapterMetrics struct {
	records, bad, dups, failures *prometheus.CounterVec // app
}

func (m adapterMetrics) add(c *prometheus.CounterVec, app string, n int) {
	if c != nil && n > 0 {
		c.WithLabelValues(app).Add(float64(n))
	}
}

// maxDedupShards bounds the windows one instance keeps; an event source
// mapping sends an instance one shard at a time, so more means it moved on.
const maxDedupShards = 64

// WithDedup sets the de-duplication window by event id (see
// consumers.DedupWindow): copies of an event arriving within age of it on
// the same shard, among the last maxIDs, are marked Duplicate and skipped.
// In Lambda the window lives in the instance's memory: a cold start, or a
// shard's batches reaching another instance, starts it empty, and a failed
// batch drops it (the retry must not mistake its own records for copies).
// Default consumers.DefaultDedupWindow and DefaultDedupMaxIDs; 0 or
// negative disables.
func WithDedup(age time.Duration, maxIDs int) Option {
	return func(h *Handler) { h.dedupAge, h.dedupIDs = age, maxIDs }
}

// window returns the shard's de-duplication window, nil when disabled.
func (h *Handler) window(shardID string) *consumers.DedupWindow {
	if w, ok := h.dedup[shardID]; ok {
		return w
	}
	w := consumers.NewDedupWindow(h.dedupAge, h.dedupIDs)
	if w == nil {
		return nil
	}
	if len(h.dedup) >= maxDedupShards {
		clear(h.dedup)
	}
	h.dedup[shardID] = w
	return w
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithClock sets the clock for Batch.Now. Default time.Now.
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// WithRegisterer registers the handler's metrics (records, bad records,
// duplicates, failed batches per application) with reg; the consumer
// functions report them, with the processors', as CloudWatch EMF lines.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(h *Handler) {
		const ns, sub = "clickstream", "consumer"
		vec := func(name, help string) *prometheus.CounterVec {
			c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, []string{"app"})
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					return are.ExistingCollector.(*prometheus.CounterVec)
				}
				return nil
			}
			return c
		}
		h.m = adapterMetrics{
			records:  vec("records_total", "User records handed to the processor (after de-aggregation)."),
			bad:      vec("bad_records_total", "Bad records (undecodable, invalid, corrupt aggregates), dead-lettered."),
			dups:     vec("duplicate_events_total", "Events dropped as copies of an event id already handed on the shard (a retried PutRecords)."),
			failures: vec("batch_failures_total", "Shard batches reported failed to the event source mapping (retried from the first record not durable)."),
		}
	}
}

// WithStateStore gives processors a per-shard StateStore. Default: none —
// Load returns nil and Save fails with consumers.ErrNoStateStore (every
// invocation ends with Flush, so Lambda processors need no pending state).
func WithStateStore(fn func(shardID string) consumers.StateStore) Option {
	return func(h *Handler) { h.state = fn }
}

// New returns a handler running p; bad records go to dlq (required, as in
// the long-running runtime).
func New(p consumers.Processor, dlq consumers.DeadLetter, opts ...Option) (*Handler, error) {
	if p == nil || dlq == nil {
		return nil, errors.New("kinesisadapter: a Processor and a DeadLetter are required")
	}
	h := &Handler{proc: p, dlq: dlq, log: slog.New(slog.DiscardHandler), now: time.Now,
		state:    func(string) consumers.StateStore { return noState{} },
		dedupAge: consumers.DefaultDedupWindow, dedupIDs: consumers.DefaultDedupMaxIDs,
		dedup: map[string]*consumers.DedupWindow{}}
	for _, o := range opts {
		o(h)
	}
	return h, nil
}

// Handle processes one invocation. Every shard's records are de-aggregated,
// decoded, dead-lettered if bad, handed to one ShardProcessor in one Batch
// and flushed. It returns an error only for an event it cannot read at all;
// processor failures become BatchItemFailures.
func (h *Handler) Handle(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
	var resp events.KinesisEventResponse
	groups, err := groupByShard(ev.Records)
	if err != nil {
		return resp, err
	}
	for _, g := range groups {
		if seq, ok := h.handleShard(ctx, g); !ok {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.KinesisBatchItemFailure{ItemIdentifier: seq})
		}
	}
	return resp, nil
}

// shardGroup is one shard's records of an event, in order.
type shardGroup struct {
	shardID string
	records []events.KinesisEventRecord
}

// groupByShard splits records by the shard named in their eventID
// ("shardId-000000000000:SEQUENCE"). Lambda sends one shard per invocation;
// grouping keeps a hand-built event with several shards correct too.
func groupByShard(recs []events.KinesisEventRecord) ([]shardGroup, error) {
	var groups []shardGroup
	index := map[string]int{}
	for i, r := range recs {
		shard, _, ok := strings.Cut(r.EventID, ":")
		if !ok || shard == "" || r.Kinesis.SequenceNumber == "" {
			return nil, fmt.Errorf("kinesisadapter: record %d: eventID %q does not name a shard, or no sequence number", i, r.EventID)
		}
		j, ok := index[shard]
		if !ok {
			j = len(groups)
			index[shard] = j
			groups = append(groups, shardGroup{shardID: shard})
		}
		groups[j].records = append(groups[j].records, r)
	}
	return groups, nil
}

// handleShard runs one shard's records. On failure it returns the sequence
// number of the first Kinesis record that is not durable.
func (h *Handler) handleShard(ctx context.Context, g shardGroup) (string, bool) {
	lg := h.log.With(slog.String("shard", g.shardID))
	dec, _ := consumers.NewRecordDecoder(g.shardID, consumers.HashKeyRange{}) // a zero range never fails
	var records []consumers.Record
	var bad []consumers.Record
	last := make([]consumers.Position, len(g.records)) // last user-record position per Kinesis record
	dec.VerifyAggregates(len(g.records), func(i int) []byte { return g.records[i].Kinesis.Data })
	for i, r := range g.records {
		n := len(records)
		records = dec.Append(records, consumers.KinesisRecord{
			SequenceNumber: r.Kinesis.SequenceNumber, PartitionKey: r.Kinesis.PartitionKey,
			// Lambda sends epoch seconds as a float; Kinesis keeps milliseconds.
			ArrivalTime: r.Kinesis.ApproximateArrivalTimestamp.UTC().Round(time.Millisecond), Data: r.Kinesis.Data,
		})
		for _, rec := range records[n:] {
			if rec.Err != nil {
				bad = append(bad, rec)
			}
		}
		if len(records) > n {
			last[i] = records[len(records)-1].Position
		}
	}
	dups := h.window(g.shardID).Mark(records)
	if dups > 0 {
		lg.Info("duplicate events skipped (same event id already handed on this shard)", slog.Int("count", dups))
	}
	app := h.proc.Name()
	h.m.add(h.m.records, app, len(records))
	h.m.add(h.m.bad, app, len(bad))
	h.m.add(h.m.dups, app, dups)
	firstNotDurable := func(durable consumers.Position) (string, bool) {
		h.m.add(h.m.failures, app, 1)
		delete(h.dedup, g.shardID) // the retry re-reads records this window holds
		for i, r := range g.records {
			if last[i].After(durable) {
				return r.Kinesis.SequenceNumber, false
			}
		}
		return "", true
	}
	if len(bad) > 0 {
		if err := h.dlq.Put(ctx, bad); err != nil {
			lg.Error("dead-letter write failed; retrying the batch", slog.Any("err", err))
			return firstNotDurable(consumers.Position{})
		}
		for _, b := range bad {
			lg.Warn("bad record dead-lettered", slog.String("position", b.Position.String()), slog.Any("reason", b.Err))
		}
	}
	sp, err := h.proc.OpenShard(ctx, consumers.Shard{ID: g.shardID, State: h.state(g.shardID)})
	if err != nil {
		lg.Error("open shard failed", slog.Any("err", err))
		return firstNotDurable(consumers.Position{})
	}
	defer sp.Close()
	b := consumers.Batch{ShardID: g.shardID, Records: records, Now: h.now()}
	durable, err := sp.Process(ctx, b)
	if err != nil {
		var be *consumers.BatchError
		if errors.As(err, &be) && be.Index > 0 && be.Index <= len(records) && records[be.Index-1].Position.After(durable) {
			durable = records[be.Index-1].Position
		}
		lg.Error("process failed", slog.Any("err", err), slog.String("durable", durable.String()))
		return firstNotDurable(durable)
	}
	pos, err := sp.Flush(ctx)
	if err != nil {
		if pos.After(durable) {
			durable = pos
		}
		lg.Error("flush failed", slog.Any("err", err), slog.String("durable", durable.String()))
		return firstNotDurable(durable)
	}
	return "", true
}

// noState is the StateStore of a Lambda host without one.
type noState struct{}

func (noState) Load(context.Context) ([]byte, error) { return nil, nil }
func (noState) Save(context.Context, []byte) error {
	return fmt.Errorf("kinesisadapter: save shard state: %w", consumers.ErrNoStateStore)
}
