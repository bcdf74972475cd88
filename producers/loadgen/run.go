package loadgen

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// TypeMalformed is the Stats.ByType key of deliberately malformed events.
const TypeMalformed = "malformed"

// Defaults of Config.
const (
	DefaultBatchSize     = 500
	DefaultLinger        = 100 * time.Millisecond
	DefaultConcurrency   = 2
	DefaultProgressEvery = time.Second
)

// Config configures Run: the traffic (GeneratorConfig) and how much of it
// to send how fast. Zero fields take their defaults.
type Config struct {
	GeneratorConfig

	// Rate is the target events/s, paced by a token bucket. Default 0: as
	// fast as the sink takes them.
	Rate float64
	// Duration stops generating after this long. Default 0: no limit.
	Duration time.Duration
	// Events stops after this many events (malformed ones included).
	// Default 0: no limit. With neither Duration nor Events, Run goes on
	// until ctx is done.
	Events int64
	// BadRate is the share of deliberately malformed events, in [0,1]
	// (see Generator.Malformed). Default 0.
	BadRate float64

	// BatchSize is the number of events per Sink.Send. Default 500.
	BatchSize int
	// Linger is how long a partial batch waits for more events before it
	// is sent anyway. Default 100 ms.
	Linger time.Duration
	// Concurrency is the number of batches in flight at once. Events are
	// spread over the senders by partition key, so each user's events stay
	// in order. Default 2.
	Concurrency int
	// ProgressEvery is the interval of progress lines. Default 1 s.
	ProgressEvery time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Rate < 0 || math.IsNaN(c.Rate) {
		return c, fmt.Errorf("loadgen config: Rate %g is negative", c.Rate)
	}
	if c.Duration < 0 || c.Events < 0 {
		return c, errors.New("loadgen config: Duration and Events must not be negative")
	}
	if c.BadRate < 0 || c.BadRate > 1 {
		return c, fmt.Errorf("loadgen config: BadRate %g outside [0,1]", c.BadRate)
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Linger <= 0 {
		c.Linger = DefaultLinger
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = DefaultProgressEvery
	}
	return c, nil
}

// Record is one encoded event on its way to a Sink.
type Record struct {
	Type         string // event type, or TypeMalformed
	PartitionKey string
	Data         []byte // one JSON value, no trailing newline
}

// Rejection is one record of a batch that the receiver refused.
type Rejection struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

// Result is what a Sink did with a batch.
type Result struct {
	Accepted int         // records the receiver acknowledged
	Rejected []Rejection // records refused individually (malformed ones, normally)
	Failed   []Rejection // records the receiver took but could not deliver, with the reason
	Retries  int         // requests repeated (429/503, transport errors)
}

// Sink delivers batches of records. Records neither accepted nor rejected
// when Send returns an error count as failed. An error wrapping
// ErrPermanent stops Run (e.g. a wrong API key); other errors are counted
// and Run goes on. A Sink that also has Flush(ctx) error is flushed before
// Run returns. Send is called from Config.Concurrency goroutines at once.
type Sink interface {
	Send(ctx context.Context, batch []Record) (Result, error)
}

// ErrPermanent marks sink errors that retrying cannot fix.
var ErrPermanent = errors.New("permanent error")

// Stats summarises a run.
type Stats struct {
	Generated int64 // events generated, malformed included
	Sent      int64 // events the sink accepted
	Rejected  int64 // events refused individually
	Failed    int64 // events the sink could not deliver
	// FailReasons counts Failed by reason (digits in the message replaced
	// by N, so "after 3 attempts" and "after 4 attempts" are one reason).
	FailReasons map[string]int64
	Retries     int64            // repeated requests
	ByType      map[string]int64 // generated events by type, TypeMalformed for malformed ones
	Elapsed     time.Duration
}

// String is a one-line summary.
func (s Stats) String() string {
	types := make([]string, 0, len(s.ByType))
	for t, n := range s.ByType {
		types = append(types, fmt.Sprintf("%s=%d", t, n))
	}
	sort.Strings(types)
	r := 0.0
	if s.Elapsed > 0 {
		r = float64(s.Sent) / s.Elapsed.Seconds()
	}
	return fmt.Sprintf("generated=%d sent=%d rejected=%d failed=%d retries=%d elapsed=%s rate=%.0f/s (%s)",
		s.Generated, s.Sent, s.Rejected, s.Failed, s.Retries, s.Elapsed.Round(time.Millisecond), r, strings.Join(types, " "))
}

// counters are updated by the senders and read by the progress ticker.
type counters struct {
	sent, rejected, failed, retries atomic.Int64

	mu      sync.Mutex
	reasons map[string]int64
}

var digits = regexp.MustCompile(`[0-9]+`)

// fail counts n failed events for reason.
func (c *counters) fail(n int64, reason string) {
	if n <= 0 {
		return
	}
	c.failed.Add(n)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reasons == nil {
		c.reasons = map[string]int64{}
	}
	c.reasons[digits.ReplaceAllString(reason, "N")] += n
}

// Reasons returns the failure reasons, most frequent first, as lines
// "COUNT × REASON".
func (s Stats) Reasons() []string {
	type kv struct {
		r string
		n int64
	}
	var all []kv
	for r, n := range s.FailReasons {
		all = append(all, kv{r, n})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n || all[i].n == all[j].n && all[i].r < all[j].r })
	out := make([]string, len(all))
	for i, x := range all {
		out[i] = fmt.Sprintf("%d × %s", x.n, x.r)
	}
	return out
}

// Run generates traffic per cfg and sends it to sink in batches until
// Duration or Events is reached or ctx is done, then waits for the batches
// in flight and flushes the sink. It writes a progress line to progress
// (may be nil) every ProgressEvery. It returns ctx's error when ctx ended
// the run, the first ErrPermanent error from the sink, or nil.
func Run(ctx context.Context, cfg Config, sink Sink, progress io.Writer) (Stats, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Stats{}, err
	}
	g, err := NewGenerator(cfg.GeneratorConfig)
	if err != nil {
		return Stats{}, err
	}
	start := time.Now()
	st := Stats{ByType: map[string]int64{}}
	var c counters

	// genCtx ends generation; sends keep ctx so the last batches still go out.
	genCtx, stopGen := context.WithCancel(ctx)
	defer stopGen()
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		genCtx, cancel = context.WithTimeout(genCtx, cfg.Duration)
		defer cancel()
	}

	var (
		wg       sync.WaitGroup
		permOnce sync.Once
		permErr  error
		stopped  atomic.Bool
	)
	queues := make([]chan []Record, cfg.Concurrency)
	for i := range queues {
		queues[i] = make(chan []Record, 1)
		wg.Go(func() {
			for batch := range queues[i] {
				if stopped.Load() { // a permanent error: don't hammer the receiver
					c.fail(int64(len(batch)), "not sent after a permanent error")
					continue
				}
				res, err := sink.Send(ctx, batch)
				c.sent.Add(int64(res.Accepted))
				c.rejected.Add(int64(len(res.Rejected)))
				c.retries.Add(int64(res.Retries))
				for _, f := range res.Failed {
					c.fail(1, f.Error)
				}
				if err != nil {
					c.fail(int64(len(batch)-res.Accepted-len(res.Rejected)-len(res.Failed)), err.Error())
					if errors.Is(err, ErrPermanent) {
						permOnce.Do(func() { permErr = err; stopped.Store(true); stopGen() })
					}
				}
			}
		})
	}

	stopProgress := startProgress(progress, cfg.ProgressEvery, start, &c)

	var lim *rate.Limiter
	chunk := cfg.BatchSize
	if cfg.Rate > 0 {
		chunk = max(1, min(cfg.BatchSize, int(cfg.Rate/50)))
		lim = rate.NewLimiter(rate.Limit(cfg.Rate), chunk)
	}
	batches := make([][]Record, cfg.Concurrency)
	since := make([]time.Time, cfg.Concurrency)
	// send hands batch i to its sender. A full batch (or the last one)
	// waits while the sender is busy: that is the back-pressure. A partial
	// batch past its linger goes only if the sender is free; otherwise it
	// keeps growing, so a slow acknowledgement makes batches larger instead
	// of stalling the generator below the configured rate.
	send := func(i int, wait bool) {
		if len(batches[i]) == 0 {
			return
		}
		if wait {
			queues[i] <- batches[i]
		} else {
			select {
			case queues[i] <- batches[i]:
			default:
				return
			}
		}
		batches[i] = make([]Record, 0, cfg.BatchSize)
	}
	for i := range batches {
		batches[i] = make([]Record, 0, cfg.BatchSize)
	}
	h := fnv.New32a()
	for genCtx.Err() == nil && (cfg.Events == 0 || st.Generated < cfg.Events) {
		n := chunk
		if cfg.Events > 0 {
			n = int(min(int64(n), cfg.Events-st.Generated))
		}
		if lim != nil {
			if err := lim.WaitN(genCtx, n); err != nil {
				// ctx is done, or the wait would outlast its deadline: then
				// sit out the rest, so a run lasts exactly Duration.
				<-genCtx.Done()
				break
			}
		}
		for range n {
			rec := nextRecord(g, cfg.BadRate)
			st.Generated++
			st.ByType[rec.Type]++
			h.Reset()
			_, _ = h.Write([]byte(rec.PartitionKey))
			i := int(h.Sum32() % uint32(cfg.Concurrency))
			if len(batches[i]) == 0 {
				since[i] = time.Now()
			}
			batches[i] = append(batches[i], rec)
			if len(batches[i]) == cfg.BatchSize {
				send(i, true)
			}
		}
		for i := range batches {
			if len(batches[i]) > 0 && time.Since(since[i]) >= cfg.Linger {
				send(i, false)
			}
		}
	}
	for i := range batches {
		send(i, true)
		close(queues[i])
	}
	wg.Wait()
	if f, ok := sink.(interface{ Flush(context.Context) error }); ok && ctx.Err() == nil {
		if err := f.Flush(ctx); err != nil && permErr == nil {
			permErr = fmt.Errorf("flush sink: %w", err)
		}
	}
	stopProgress()

	st.Sent, st.Rejected, st.Failed, st.Retries = c.sent.Load(), c.rejected.Load(), c.failed.Load(), c.retries.Load()
	st.FailReasons = c.reasons
	st.Elapsed = time.Since(start)
	if progress != nil {
		fmt.Fprintf(progress, "loadgen done: %s\n", st)
	}
	if permErr != nil {
		return st, permErr
	}
	return st, ctx.Err()
}

// nextRecord is the next generated event, encoded, or with probability
// badRate a malformed payload.
func nextRecord(g *Generator, badRate float64) Record {
	now := g.cfg.Clock()
	if badRate > 0 && g.bad.Float64() < badRate {
		data, _ := g.Malformed(now)
		return Record{Type: TypeMalformed, PartitionKey: "u-" + strconv.Itoa(g.bad.IntN(len(g.users))), Data: data}
	}
	e := g.NextAt(now)
	return Record{Type: e.Type, PartitionKey: e.PartitionKey(), Data: e.AppendJSON(make([]byte, 0, 512))}
}

// startProgress prints a progress line every interval until the returned
// stop function is called; stop waits for the goroutine to end.
func startProgress(w io.Writer, every time.Duration, start time.Time, c *counters) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		last, lastAt := int64(0), start
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				sent := c.sent.Load()
				cur := float64(sent-last) / now.Sub(lastAt).Seconds()
				avg := float64(sent) / now.Sub(start).Seconds()
				last, lastAt = sent, now
				fmt.Fprintf(w, "loadgen: elapsed=%s sent=%d rate=%.0f/s avg=%.0f/s rejected=%d failed=%d retries=%d\n",
					now.Sub(start).Round(time.Second), sent, cur, avg, c.rejected.Load(), c.failed.Load(), c.retries.Load())
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
