package vectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

// Processor is the vectors application: a consumers.Processor whose shard
// processors are durable on return (nothing is buffered across batches), so
// the long-running runtime and the Lambda adapter give the same vectors
// whatever the batch boundaries. It is safe for concurrent use by many
// shards; build one per process (or per Lambda container) and reuse it.
type Processor struct {
	cfg Config
	w   *writer
	sem chan struct{} // bounds UpdateItem calls in flight across shards
	m   *metrics
	log *slog.Logger
	lim *logLimiter
	// known picks the first move of each user's write (see knownUsers).
	known *knownUsers
}

var _ consumers.Processor = (*Processor)(nil)

// New returns the processor writing to db (cfg.Table).
func New(db DynamoDBAPI, cfg Config) (*Processor, error) {
	return newProcessor(&dynamoStore{db: db}, cfg)
}

func newProcessor(st store, cfg Config) (*Processor, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if ds, ok := st.(*dynamoStore); ok {
		ds.table = cfg.Table
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("vectors: register metrics: %w", err)
	}
	p := &Processor{
		cfg: cfg, sem: make(chan struct{}, cfg.Concurrency), m: m,
		log: cfg.Logger.With(slog.String("app", cfg.Name)), lim: newLogLimiter(10 * time.Second),
		known: newKnownUsers(cfg.KnownUsers),
	}
	p.w = &writer{
		st: st, halfLife: cfg.HalfLife.Milliseconds(), maxFeatures: cfg.MaxFeatures, pruneTo: pruneTo(cfg.MaxFeatures),
		maxRounds: cfg.MaxRounds,
		retry: retryPolicy{
			maxAttempts: cfg.MaxAttempts, base: cfg.RetryBase, max: cfg.RetryMax, retryable: retryableDynamo,
			onRetry: func(err error) {
				reason := "transient"
				if isThrottle(err) {
					reason = "throttle"
				}
				m.retries.WithLabelValues(reason).Inc()
				if p.lim.allow("retry") {
					p.log.Warn("vectors: retrying DynamoDB write", slog.String("reason", reason), slog.Any("error", err))
				}
			},
		},
	}
	return p, nil
}

// Name is the application name (Config.Name, default "vectors").
func (p *Processor) Name() string { return p.cfg.Name }

// OpenShard returns the shard's processor. It keeps no state beyond the
// last durable position: the per-shard guards live in the items.
func (p *Processor) OpenShard(ctx context.Context, s consumers.Shard) (consumers.ShardProcessor, error) {
	return &shardProcessor{p: p, shard: s.ID, last: s.Checkpoint}, nil
}

type shardProcessor struct {
	p     *Processor
	shard string
	last  consumers.Position
	agg   aggregator

	// Config.Coalesce: records of consecutive batches held since since.
	pending []consumers.Record
	since   time.Time
}

// maxCoalesced bounds the records held by Config.Coalesce.
const maxCoalesced = 20000

// Process applies the batch: one conditional UpdateItem per user (more only
// on the rare paths: new user, landmark rebase, pruning, replay overlap), in
// parallel across users. It returns the batch's last position only when
// every write succeeded.
//
// A partial failure returns a *consumers.BatchError whose Index is the
// first record, in batch order, of any user whose write failed or was not
// attempted. Users are written in parallel, so "first failed record" is
// defined by batch order, not by time: every record before Index belongs to
// a user whose write succeeded (else that user's first record would be
// earlier), so it is durable. Records after Index of users that did succeed
// are durable too; the runtime or Lambda replays them, and the per-shard
// guard makes those replays no-ops.
func (sp *shardProcessor) Process(ctx context.Context, b consumers.Batch) (consumers.Position, error) {
	if sp.p.cfg.Coalesce > 0 {
		return sp.coalesce(ctx, b)
	}
	if len(b.Records) == 0 {
		return consumers.Position{}, nil
	}
	failIdx, err := sp.write(ctx, b.Records)
	if err != nil {
		return sp.last, &consumers.BatchError{Index: failIdx, Err: err}
	}
	return sp.last, nil
}

// coalesce holds the records of consecutive batches for up to
// Config.Coalesce and writes them together: one write per user for all of
// them. It reports durable only what is written, so the checkpoint never
// passes a held record; a crash replays them.
func (sp *shardProcessor) coalesce(ctx context.Context, b consumers.Batch) (consumers.Position, error) {
	if len(b.Records) > 0 {
		if len(sp.pending) == 0 {
			sp.since = time.Now()
		}
		sp.pending = append(sp.pending, b.Records...)
	}
	if len(sp.pending) == 0 || !b.ShardEnd && len(sp.pending) < maxCoalesced && time.Since(sp.since) < sp.p.cfg.Coalesce {
		return sp.last, nil
	}
	return sp.flushPending(ctx)
}

func (sp *shardProcessor) flushPending(ctx context.Context) (consumers.Position, error) {
	recs := sp.pending
	sp.pending = nil
	if _, err := sp.write(ctx, recs); err != nil {
		return sp.last, err // the session replays from the checkpoint
	}
	return sp.last, nil
}

// write applies recs and moves sp.last past what is durable. On a failure it
// returns the index of the first record that may not be (see Process).
func (sp *shardProcessor) write(ctx context.Context, recs []consumers.Record) (int, error) {
	start := time.Now()
	p := sp.p
	runs := sp.agg.group(recs, &p.cfg, p.skip)
	failIdx, err := sp.writeAll(ctx, runs)
	sp.agg.release()
	p.m.batchSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		p.m.batchErrors.Inc()
		if failIdx > 0 {
			sp.last = recs[failIdx-1].Position
		}
		return failIdx, err
	}
	sp.last = recs[len(recs)-1].Position
	return 0, nil
}

// Flush writes the records Config.Coalesce holds; without it, Process is
// durable on return and Flush has nothing to do.
func (sp *shardProcessor) Flush(ctx context.Context) (consumers.Position, error) {
	if len(sp.pending) > 0 {
		return sp.flushPending(ctx)
	}
	return sp.last, nil
}

// Close has nothing to drop.
func (sp *shardProcessor) Close() {}

// writeAll applies every run with at most Config.Concurrency writes in
// flight (process-wide). After the first failure no new user is started.
// It returns the BatchError index and the failure of the earliest failed run.
func (sp *shardProcessor) writeAll(ctx context.Context, runs []userRun) (int, error) {
	p := sp.p
	if len(runs) == 0 {
		return 0, nil
	}
	errs := make([]error, len(runs))
	started := make([]bool, len(runs))
	var next atomic.Int64
	var stop atomic.Bool
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= len(runs) || stop.Load() {
				return
			}
			select {
			case p.sem <- struct{}{}:
			case <-ctx.Done():
				stop.Store(true)
				return
			}
			if stop.Load() {
				<-p.sem
				return
			}
			started[i] = true
			errs[i] = sp.writeRun(ctx, &runs[i])
			<-p.sem
			if errs[i] != nil {
				stop.Store(true)
			}
		}
	}
	workers := min(len(runs), p.cfg.Concurrency)
	if workers == 1 {
		work()
	} else {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(work)
		}
		wg.Wait()
	}
	failIdx, failErr := -1, error(nil)
	for i := range runs {
		if started[i] && errs[i] == nil {
			continue
		}
		if failIdx < 0 || runs[i].first < failIdx {
			failIdx = runs[i].first
			failErr = errs[i]
		}
	}
	if failIdx < 0 {
		return 0, nil
	}
	if failErr == nil { // the earliest unfinished run was never started
		for i := range runs {
			if errs[i] != nil {
				failErr = fmt.Errorf("user %q not written after another failed: %w", runs[failIdx].user, errs[i])
				break
			}
		}
		if failErr == nil {
			failErr = ctx.Err()
		}
		if failErr == nil {
			failErr = errors.New("vectors: batch aborted")
		}
	}
	return failIdx, failErr
}

func (sp *shardProcessor) writeRun(ctx context.Context, r *userRun) error {
	p := sp.p
	t := time.Now()
	remembered := p.known.remembered(r.user)
	res, err := p.w.apply(ctx, sp.shard, r.user, r.evs, !remembered && p.known.createFirst(r.user))
	p.m.writeSeconds.Observe(time.Since(t).Seconds())
	p.m.calls.Add(float64(res.calls))
	p.m.conflicts.Add(float64(res.conflicts))
	p.m.replayed.Add(float64(res.replayed))
	if err != nil {
		p.m.writeErrors.Inc()
		p.log.Error("vectors: write failed", slog.String("shard", sp.shard), slog.String("user", r.user), slog.Any("error", err))
		return err
	}
	p.known.written(r.user, remembered, res.kind == kindCreate)
	p.m.writes.WithLabelValues(res.kind.String()).Inc()
	if res.applied > 0 {
		for _, e := range r.evs[len(r.evs)-res.applied:] {
			if e.click {
				p.m.clicks.Inc()
			} else {
				p.m.impressions.Inc()
			}
		}
	}
	p.m.pruned.Add(float64(res.stats.pruned))
	p.m.faded.Add(float64(res.stats.faded))
	if res.stats.saturated > 0 {
		p.m.saturated.Add(float64(res.stats.saturated))
		if p.lim.allow("saturated") {
			p.log.Warn("vectors: values saturated at 1e18", slog.String("user", r.user), slog.Int("features", res.stats.saturated))
		}
	}
	return nil
}

// skip counts and (rate-limited) logs a feature left out of a vector.
func (p *Processor) skip(reason, user, feature string) {
	p.m.skipped.WithLabelValues(reason).Inc()
	if p.lim.allow(reason) {
		if len(feature) > 64 {
			feature = feature[:64] + "…"
		}
		p.log.Warn("vectors: feature skipped", slog.String("reason", reason), slog.String("user", user), slog.String("feature", feature))
	}
}

// userRun is one user's events of a batch, in shard order.
type userRun struct {
	user  string
	first int // index of the user's first record in the batch
	evs   []ev
	n     int // events, while grouping
}

// aggregator groups a batch by user. Its buffers are reused across batches
// of the shard (the runtime calls Process from one goroutine).
type aggregator struct {
	slot map[string]int32
	idx  []int32 // per record: its run, or -1
	runs []userRun
	evs  []ev
}

// release drops what the last group points to (user ids and feature
// names are pieces of the batch's read buffer) until the next batch reuses
// the buffers.
func (a *aggregator) release() {
	clear(a.slot)
	clear(a.runs)
	clear(a.evs)
}

// group returns the batch's click and impression events by user, in order
// of each user's first record. Other types and bad records are skipped (the
// runtime dead-letters bad ones); features with empty or overlong names or
// out-of-range weights are dropped (counted via skip).
func (a *aggregator) group(recs []consumers.Record, cfg *Config, skip func(reason, user, feature string)) []userRun {
	if a.slot == nil {
		a.slot = make(map[string]int32)
	}
	clear(a.slot)
	a.runs = a.runs[:0]
	a.idx = a.idx[:0]
	counts := 0
	for i := range recs {
		r := &recs[i]
		e := &r.Event
		if !r.Applies() || (e.Type != event.TypeClick && e.Type != event.TypeImpression) || e.UserID == "" {
			a.idx = append(a.idx, -1)
			continue
		}
		s, ok := a.slot[e.UserID]
		if !ok {
			s = int32(len(a.runs))
			a.slot[e.UserID] = s
			a.runs = append(a.runs, userRun{user: e.UserID, first: i})
		}
		a.idx = append(a.idx, s)
		counts++
	}
	// One backing array for all events, sliced per run: no allocation per user.
	if cap(a.evs) < counts {
		a.evs = make([]ev, counts)
	}
	a.evs = a.evs[:counts]
	for _, s := range a.idx {
		if s >= 0 {
			a.runs[s].n++
		}
	}
	off := 0
	for s := range a.runs {
		n := a.runs[s].n
		a.runs[s].evs = a.evs[off : off : off+n]
		off += n
	}
	for i, s := range a.idx {
		if s < 0 {
			continue
		}
		r := &recs[i]
		run := &a.runs[s]
		run.evs = append(run.evs, toEv(r, cfg, skip))
	}
	return a.runs
}

// toEv reduces a record to what the vector needs.
func toEv(r *consumers.Record, cfg *Config, skip func(reason, user, feature string)) ev {
	e := &r.Event
	ts := e.TS.UnixMilli()
	if cfg.MaxFutureSkew > 0 && !r.ArrivalTime.IsZero() {
		if limit := r.ArrivalTime.Add(cfg.MaxFutureSkew).UnixMilli(); ts > limit {
			ts = limit
		}
	}
	feats := e.Features
	// Filter only when needed: most events pass and keep their map.
	for name, w := range e.Features {
		if reason := badFeature(name, w, cfg); reason != "" {
			feats = make(map[string]float64, len(e.Features))
			for name, w := range e.Features {
				if reason := badFeature(name, w, cfg); reason != "" {
					skip(reason, e.UserID, name)
					continue
				}
				feats[name] = w
			}
			break
		}
	}
	return ev{pos: r.Position, ts: ts, click: e.Type == event.TypeClick, features: feats}
}

func badFeature(name string, w float64, cfg *Config) string {
	switch {
	case name == "":
		return "empty_name"
	case len(name) > cfg.MaxFeatureNameBytes:
		return "name_too_long"
	case math.IsNaN(w) || math.Abs(w) > cfg.MaxWeight:
		return "weight_out_of_range"
	}
	return ""
}

// logLimiter lets one log line per key through per interval.
type logLimiter struct {
	mu    sync.Mutex
	every time.Duration
	last  map[string]time.Time
}

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every, last: map[string]time.Time{}}
}

func (l *logLimiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.last[key]) < l.every {
		return false
	}
	l.last[key] = now
	return true
}
