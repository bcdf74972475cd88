package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickstream-go/clickstream/consumers/leases"
)

// Runner runs one application (one Processor) on a stream: it discovers
// shards, takes its fair share of the application's leases, reads each held
// shard in its own goroutine and checkpoints what the processor reports
// durable. Run it with Run; several applications in one process are several
// Runners (see RunAll).
type Runner struct {
	cfg Config
	m   *metrics
	log *slog.Logger

	started atomic.Bool
	wake    chan struct{} // re-plan now: a shard finished
	syncNow atomic.Bool   // list shards at the next round: resharding seen

	mu      sync.Mutex
	shards  map[string]StreamShard // last successful listing
	listed  map[string]bool        // its ids; nil until the first listing
	workers map[string]*shardWorker
	work    context.Context    // set by Run: parent of every shard's context
	abandon context.CancelFunc // cancels work: the crash-like stop used by tests

	// Enhanced fan-out (ReadEFO): the client and the stream consumer's ARN.
	fanOut FanOutAPI
	arnMu  sync.Mutex
	arn    string
}

// NewRunner validates cfg, fills in defaults and registers metrics.
func NewRunner(cfg Config) (*Runner, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("consumers: register metrics: %w", err)
	}
	fanOut, _ := cfg.Kinesis.(FanOutAPI)
	return &Runner{
		fanOut:  fanOut,
		cfg:     cfg,
		m:       m,
		log:     cfg.Logger.With(slog.String("app", cfg.App), slog.String("owner", cfg.Owner)),
		wake:    make(chan struct{}, 1),
		workers: map[string]*shardWorker{},
	}, nil
}

// App returns the application name (the lease namespace).
func (r *Runner) App() string { return r.cfg.App }

// Owner returns this process's owner id in the lease table.
func (r *Runner) Owner() string { return r.cfg.Owner }

// Held returns the ids of the shards this runner is reading now.
func (r *Runner) Held() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id, w := range r.workers {
		if !w.exited() {
			out = append(out, id)
		}
	}
	return out
}

// errStreamMismatch is fatal: the lease namespace belongs to another stream.
var errStreamMismatch = errors.New("lease namespace belongs to another stream")

// Run reads the stream until ctx is cancelled, then shuts down gracefully:
// every shard is flushed, checkpointed and its lease released (with a fresh
// context, bounded by ShutdownTimeout), so another process takes over at once.
// It returns nil after a clean shutdown. It never returns because of one
// shard's trouble: Kinesis, DynamoDB and processor errors are retried with
// capped back-off and logged (rate-limited). Run may be called once.
func (r *Runner) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("consumers: Runner.Run called twice")
	}
	// Shard goroutines outlive ctx by design: graceful shutdown needs a live
	// context for the final Flush, checkpoint and release.
	work, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()
	r.mu.Lock()
	r.work, r.abandon = work, abandon
	r.mu.Unlock()

	r.log.Info("consumer starting", slog.String("stream", r.cfg.Stream), slog.String("read_mode", r.cfg.ReadMode),
		slog.Duration("lease_duration", r.cfg.LeaseDuration), slog.Duration("renew_interval", r.cfg.RenewInterval))
	if r.cfg.ReadMode == ReadEFO {
		// Register before taking leases: a consumer that cannot be
		// registered (permissions, the 20-consumer limit) stops the process
		// with the reason instead of failing every shard.
		if _, err := r.consumerARN(ctx); err != nil {
			return fmt.Errorf("consumers: enhanced fan-out: %w", err)
		}
	}
	var (
		obs      leases.Observations
		lastSync time.Time
		errs     errLog
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return r.shutdown(work, abandon)
		case <-work.Done(): // abandoned: stop like a crash, releasing nothing
			r.waitWorkers()
			return nil
		case <-timer.C:
		case <-r.wake:
		}
		r.renew(work)
		now := r.cfg.Now()
		if r.syncNow.Swap(false) || now.Sub(lastSync) >= r.cfg.ShardSyncInterval {
			if err := r.syncShards(work); err != nil {
				errs.log(r.log, slog.LevelWarn, "list shards failed; retrying", err)
				r.syncNow.Store(true)
			} else {
				lastSync = now
			}
		}
		if err := r.plan(work, &obs); err != nil {
			if errors.Is(err, errStreamMismatch) {
				r.log.Error("refusing to run", slog.Any("err", err))
				_ = r.shutdown(work, abandon)
				return fmt.Errorf("consumers: %w", err)
			}
			errs.log(r.log, slog.LevelWarn, "lease planning failed; retrying", err)
		}
		timer.Reset(r.cfg.RenewInterval)
	}
}

// syncShards lists the stream's shards.
func (r *Runner) syncShards(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	shards, err := listShards(ctx, r.cfg.Kinesis, r.cfg.Stream)
	if err != nil {
		return err
	}
	listed := make(map[string]bool, len(shards))
	for id := range shards {
		listed[id] = true
	}
	r.mu.Lock()
	r.shards, r.listed = shards, listed
	r.mu.Unlock()
	return nil
}

// addChildren adds child shards reported by GetRecords (ChildShards) to the
// listing, so their leases are created in the next round without a ListShards.
func (r *Runner) addChildren(children []types.ChildShard) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.listed == nil {
		r.syncNow.Store(true)
		return
	}
	// Copy on write: plan reads the maps without the lock.
	shards, listed := maps.Clone(r.shards), maps.Clone(r.listed)
	for _, c := range children {
		info := StreamShard{ID: aws.ToString(c.ShardId), Parents: slices.Clone(c.ParentShards)}
		slices.Sort(info.Parents)
		if c.HashKeyRange != nil {
			info.Range = HashKeyRange{Start: aws.ToString(c.HashKeyRange.StartingHashKey), End: aws.ToString(c.HashKeyRange.EndingHashKey)}
		}
		if _, ok := shards[info.ID]; !ok {
			shards[info.ID] = info
			listed[info.ID] = true
		}
	}
	r.shards, r.listed = shards, listed
}

// liveWorkers drops exited workers and returns the rest.
func (r *Runner) liveWorkers() map[string]*shardWorker {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, w := range r.workers {
		if w.exited() {
			delete(r.workers, id)
		}
	}
	r.m.setHeld(r.cfg.App, len(r.workers))
	return maps.Clone(r.workers)
}

// renewConcurrency bounds parallel renewals: a process holding hundreds of
// leases must renew them all well within a lease duration.
const renewConcurrency = 16

// renew renews every held lease. A lease that cannot be renewed for a whole
// LeaseDuration may already belong to someone else: its shard is stopped.
func (r *Runner) renew(ctx context.Context) {
	now := r.cfg.Now()
	sem := make(chan struct{}, renewConcurrency)
	var wg sync.WaitGroup
	for id, w := range r.liveWorkers() {
		if w.released.Load() {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r.renewOne(ctx, now, id, w)
		}()
	}
	wg.Wait()
}

// renewOne renews one lease; only this call touches w.lastRenew meanwhile.
func (r *Runner) renewOne(ctx context.Context, now time.Time, id string, w *shardWorker) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.RenewInterval)
	_, err := r.cfg.Leases.Renew(cctx, w.lease)
	cancel()
	switch {
	case err == nil:
		w.lastRenew = now
	case errors.Is(err, leases.ErrLeaseLost):
		if !w.released.Load() {
			r.log.Info("lease lost", slog.String("shard", id), slog.Any("err", err))
			r.m.leaseLost(r.cfg.App)
			w.loseLease()
		}
	case now.Sub(w.lastRenew) >= r.cfg.LeaseDuration:
		r.log.Warn("lease not renewed for a lease duration; stopping shard", slog.String("shard", id), slog.Any("err", err))
		r.m.leaseLost(r.cfg.App)
		w.loseLease()
	default:
		r.log.Warn("renew lease failed; retrying", slog.String("shard", id), slog.Any("err", err))
	}
}

// plan reads the lease table, creates leases for new shards, and takes
// what leases.Plan decides.
func (r *Runner) plan(ctx context.Context, obs *leases.Observations) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	ls, err := r.cfg.Leases.List(ctx, r.cfg.App)
	if err != nil {
		return err
	}
	for _, l := range ls {
		if l.Stream != "" && l.Stream != r.cfg.Stream {
			return fmt.Errorf("%w: app %q has a lease for shard %s of stream %q, this runner reads %q; use another app name",
				errStreamMismatch, r.cfg.App, l.ShardID, l.Stream, r.cfg.Stream)
		}
	}
	r.mu.Lock()
	shards, listed := r.shards, r.listed
	r.mu.Unlock()
	if listed != nil {
		have := make(map[string]bool, len(ls))
		for _, l := range ls {
			have[l.ShardID] = true
		}
		created := 0
		for id, s := range shards {
			if have[id] {
				continue
			}
			if err := r.cfg.Leases.Create(ctx, leases.Lease{App: r.cfg.App, ShardID: id, Stream: r.cfg.Stream, Parents: s.Parents}); err != nil {
				return err
			}
			created++
		}
		if created > 0 {
			r.log.Info("created leases for new shards", slog.Int("count", created))
			if ls, err = r.cfg.Leases.List(ctx, r.cfg.App); err != nil {
				return err
			}
		}
	}
	workers := r.liveWorkers()
	held := make(map[string]int64, len(workers))
	for id, w := range workers {
		held[id] = w.lease.Epoch
	}
	var d leases.Decision
	d, *obs = leases.Plan(leases.PlanInput{
		Owner: r.cfg.Owner, Leases: ls, Held: held, Listed: listed, Now: r.cfg.Now(),
		LeaseDuration: r.cfg.LeaseDuration, MaxSteals: r.cfg.MaxStealsPerRound,
	}, *obs)
	for _, id := range d.Lost {
		if w := workers[id]; w != nil && !w.released.Load() {
			r.log.Info("lease taken by another process; stopping shard", slog.String("shard", id))
			r.m.leaseLost(r.cfg.App)
			w.loseLease()
		}
	}
	for _, id := range d.Delete {
		if err := r.cfg.Leases.Delete(ctx, r.cfg.App, id); err != nil {
			return err
		}
		r.log.Info("deleted lease of finished shard past retention", slog.String("shard", id))
	}
	for _, t := range d.Take {
		if workers[t.Lease.ShardID] != nil {
			continue // still stopping after a loss; take it next round
		}
		nl, err := r.cfg.Leases.Take(ctx, t.Lease, r.cfg.Owner)
		if errors.Is(err, leases.ErrConflict) || errors.Is(err, leases.ErrNotFound) {
			r.log.Debug("lease changed before take", slog.String("shard", t.Lease.ShardID))
			continue
		}
		if err != nil {
			return err
		}
		r.m.take(r.cfg.App, string(t.Reason))
		r.log.Info("lease taken", slog.String("shard", nl.ShardID), slog.String("reason", string(t.Reason)),
			slog.String("from", t.Lease.Owner), slog.String("checkpoint", nl.Checkpoint.String()),
			slog.Int("target", d.Target), slog.Int("owners", d.Owners))
		r.start(nl)
	}
	return nil
}

// start runs a shard worker for a freshly taken lease.
func (r *Runner) start(l leases.Lease) {
	r.mu.Lock()
	defer r.mu.Unlock()
	info, ok := r.shards[l.ShardID]
	if !ok { // no listing yet: the lease knows the parents; the range stays unknown
		info = StreamShard{ID: l.ShardID, Parents: l.Parents}
	}
	w := newShardWorker(r.work, r, l, info)
	r.workers[l.ShardID] = w
	r.m.setHeld(r.cfg.App, len(r.workers))
	go w.run()
}

// shutdown stops every shard gracefully, renewing leases meanwhile; after
// ShutdownTimeout it abandons the rest.
func (r *Runner) shutdown(work context.Context, abandon context.CancelFunc) error {
	workers := r.liveWorkers()
	r.log.Info("consumer stopping", slog.Int("shards", len(workers)))
	for _, w := range workers {
		w.requestStop()
	}
	deadline := time.NewTimer(r.cfg.ShutdownTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(r.cfg.RenewInterval)
	defer tick.Stop()
	for {
		if len(r.liveWorkers()) == 0 {
			r.log.Info("consumer stopped")
			return nil
		}
		select {
		case <-tick.C:
			r.renew(work)
		case <-r.wake:
		case <-deadline.C:
			n := len(r.liveWorkers())
			abandon()
			r.waitWorkers()
			r.log.Error("shutdown timed out; shards abandoned to lease expiry", slog.Int("shards", n))
			return fmt.Errorf("consumers: shutdown of %s timed out after %v: %d shards abandoned", r.cfg.App, r.cfg.ShutdownTimeout, n)
		}
	}
}

// waitWorkers waits until every shard goroutine has returned.
func (r *Runner) waitWorkers() {
	r.mu.Lock()
	ws := maps.Clone(r.workers)
	r.mu.Unlock()
	for _, w := range ws {
		<-w.done
	}
	r.liveWorkers()
}

// wakeUp makes the coordinator plan now (a shard finished: its children may start).
func (r *Runner) wakeUp() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// RunAll runs several Runners (one per application) until ctx is cancelled
// and all have shut down. If one fails, the others are stopped too; the
// result joins every error.
func RunAll(ctx context.Context, runners ...*Runner) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(runners))
	var wg sync.WaitGroup
	for i, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = r.Run(ctx); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
