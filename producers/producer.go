// Package producers is the library that puts events on the Kinesis stream:
// the HTTP collector and the load generator use it, and so can any Go
// service. It buffers records with explicit back-pressure, packs them into
// PutRecords calls and shard-aware KPL aggregates, retries only what failed,
// and keeps each partition key's records in order within its shard.
package producers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickstream-go/clickstream/internal/hashkey"
	"github.com/clickstream-go/clickstream/internal/retry"
)

// Record is one user record: an event and the key that routes it.
type Record struct {
	// PartitionKey picks the shard (MD5 of the key) and is the unit of
	// ordering: records with one key arrive in Put order. 1 to 256 characters.
	PartitionKey string
	// ExplicitHashKey, a decimal in [0, 2^128), overrides the partition key's
	// hash for shard selection. "" = none.
	ExplicitHashKey string
	// Data is the payload. The producer keeps the slice until the record is
	// sent or failed: do not modify it after Put.
	Data []byte
}

// KinesisAPI lists the SDK methods the producer calls; *kinesis.Client
// satisfies it.
type KinesisAPI interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

var _ KinesisAPI = (*kinesis.Client)(nil)

var (
	// ErrBufferFull is returned by TryPut and TryPutBatch when the buffer
	// cannot take the records now.
	ErrBufferFull = errors.New("producers: buffer full")
	// ErrBatchTooLarge is returned by TryPutBatch and PutBatch for a batch
	// that exceeds the buffer's record limit, so it could never be admitted.
	ErrBatchTooLarge = errors.New("producers: batch larger than the buffer")
	// ErrClosed is returned by the Put methods after Close started, and
	// wraps the reason given to the failure callback for records Close
	// abandoned when its context ended.
	ErrClosed = errors.New("producers: producer closed")
	// ErrRecordTooLarge is returned by the Put methods for a record whose
	// data and partition key exceed Kinesis' 1 MiB per record.
	ErrRecordTooLarge = errors.New("producers: record too large")
	// ErrInvalidRecord is returned by the Put methods for a record Kinesis
	// would reject: empty or over-long partition key, malformed explicit hash key.
	ErrInvalidRecord = errors.New("producers: invalid record")
	// ErrRecordExpired wraps the reason given to the failure callback for a
	// record whose TTL passed before Kinesis acknowledged it.
	ErrRecordExpired = errors.New("producers: record TTL expired")
)

// PutError is Kinesis' answer for one record of a PutRecords call that it
// did not write, e.g. Code "ProvisionedThroughputExceededException".
type PutError struct {
	Code    string
	Message string
}

func (e *PutError) Error() string { return fmt.Sprintf("put record: %s: %s", e.Code, e.Message) }

// ErrorCode returns Code, as the SDK's API errors do.
func (e *PutError) ErrorCode() string { return e.Code }

// FailedError is what Flush and Close return when user records finally
// failed since the previous Flush or Close reported failures: expired
// (WithRecordTTL), rejected permanently by Kinesis, or abandoned by Close.
// Records of acknowledged batches (TryPutBatchAck, PutBatchAck,
// PutBatchWait) are reported to their callers instead and not counted
// here. errors.Is(err, ErrRecordExpired) and errors.As(err, &*PutError)
// look at the first failure.
type FailedError struct {
	// Records is the number of user records that failed.
	Records int
	// ByReason counts them by reason: "expired", "rejected" or "closed".
	ByReason map[string]int
	// First is the error of the first of them.
	First error
}

func (e *FailedError) Error() string {
	reasons := make([]string, 0, len(e.ByReason))
	for _, r := range []string{"expired", "rejected", "closed"} {
		if n := e.ByReason[r]; n > 0 {
			reasons = append(reasons, fmt.Sprintf("%d %s", n, r))
		}
	}
	return fmt.Sprintf("producers: %d records failed (%s); first: %v", e.Records, strings.Join(reasons, ", "), e.First)
}

// Unwrap returns the first failure's error.
func (e *FailedError) Unwrap() error { return e.First }

// Stats are the producer's counters since New.
type Stats struct {
	BufferedRecords    int64 // user records accepted by Put, not yet acknowledged or failed
	BufferedBytes      int64 // their bytes (data, partition key, explicit hash key)
	RecordsSent        int64 // user records acknowledged by Kinesis
	BytesSent          int64 // data bytes of those records
	KinesisRecordsSent int64 // Kinesis records acknowledged: an aggregate counts once
	Requests           int64 // PutRecords calls completed, successful or not
	Retries            int64 // user records sent again after a failed attempt
	Throttles          int64 // user records whose attempt was throttled
	RecordsFailed      int64 // user records that finally failed (see WithOnFailure)
	ShardMapRefreshes  int64 // shard maps read with ListShards
}

// Producer puts records on one Kinesis stream. Its methods are safe for
// concurrent use. Records are sent by goroutines the Producer owns; Close
// stops them.
type Producer struct {
	client KinesisAPI
	stream string
	cfg    config
	m      *metrics
	log    *slog.Logger

	// ctx is the parent of every call to Kinesis; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	incoming   []pending // accepted, not yet taken by the loop
	bufRecs    int
	bufBytes   int64
	space      chan struct{} // closed (and replaced) whenever buffer space frees up
	epoch      uint64        // current flush epoch; Flush seals it
	epochCount int           // buffered records of the current epoch
	sealed     map[uint64]*epochState
	flushers   int  // Flush calls waiting: send without lingering
	closed     bool // Close started: no more records
	closing    chan struct{}

	wake     chan struct{} // the loop has work (cap 1)
	results  chan *result  // finished PutRecords calls
	maps     chan shardMap // shard maps from the refresher
	refresh  chan struct{} // ask the refresher for a new map (cap 1)
	stop     chan struct{} // closed by Close: the loop fails what is left and exits
	loopDone chan struct{} // closed when the loop has exited
	failMu   sync.Mutex    // guards failq and unreported
	failq    []failure     // failed records waiting for the callback goroutine
	// unreported tallies failed records no acknowledgement reported, for
	// the next Flush or Close; nil when there are none.
	unreported *FailedError
	// oldest is the enqueue time (UnixNano) of the oldest record the loop
	// holds, 0 when none: the queueing delay Put waits on when a TTL is set.
	oldest atomic.Int64
	// drainRate is the loop's estimate of the records/s the stream
	// acknowledges (with a TTL only): the buffer admits what drains in
	// half the TTL.
	drainRate atomic.Int64
	failWake  chan struct{}  // (cap 1)
	wg        sync.WaitGroup // refresher, senders, callback goroutine
	once      sync.Once      // Close runs once
	done      chan struct{}  // closed when Close has finished
	unreg     func()         // unregisters the metrics
	c         counters
	lp        loopState // owned by the loop goroutine
}

type counters struct {
	recordsSent, bytesSent, kinesisRecordsSent, requests, retries, throttles, failed, refreshes atomic.Int64
}

// epochState counts the buffered records of a sealed flush epoch; done is
// closed when the count reaches zero.
type epochState struct {
	count int
	done  chan struct{}
}

// pending is one accepted user record.
type pending struct {
	rec  Record
	hash hashKey   // where Kinesis will route it
	size int       // bytes counted against the buffer
	enq  time.Time // when Put accepted it: linger and TTL count from here
	ep   uint64    // flush epoch
	ack  *batchAck // nil unless its batch was put with an acknowledgement callback
	idx  int       // its index in that batch
}

// New returns a Producer for the stream (a name, or an ARN) and starts its
// goroutines. It does no I/O: the shard map is read in the background, and
// records wait in the buffer until it arrives.
func New(client KinesisAPI, stream string, opts ...Option) (*Producer, error) {
	if client == nil {
		return nil, errors.New("new producer: nil Kinesis client")
	}
	if stream == "" {
		return nil, errors.New("new producer: empty stream name")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new producer: %w", err)
	}
	p := &Producer{
		client:   client,
		stream:   stream,
		cfg:      cfg,
		log:      cfg.logger.With("stream", stream),
		space:    make(chan struct{}),
		sealed:   make(map[uint64]*epochState),
		closing:  make(chan struct{}),
		wake:     make(chan struct{}, 1),
		results:  make(chan *result, cfg.maxInFlightRequests),
		maps:     make(chan shardMap),
		refresh:  make(chan struct{}, 1),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
		failWake: make(chan struct{}, 1),
		done:     make(chan struct{}),
		unreg:    func() {},
	}
	p.m = newMetrics(stream)
	if cfg.registerer != nil {
		unreg, err := p.m.register(cfg.registerer, stream, p)
		if err != nil {
			return nil, fmt.Errorf("new producer: %w", err)
		}
		p.unreg = unreg
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.lp.init()
	p.wg.Add(2)
	go p.refresher()
	go p.failureLoop()
	go p.loop()
	return p, nil
}

// Put buffers r for sending. While the buffer is full it blocks until there
// is room, ctx is done (ctx.Err() is returned) or Close starts (ErrClosed).
// A record Kinesis would reject is refused with ErrRecordTooLarge or
// ErrInvalidRecord. A nil error means the producer owns the record: it will
// be acknowledged by Kinesis or reported to the failure callback.
func (p *Producer) Put(ctx context.Context, r Record) error {
	pr, err := prepare(r)
	if err != nil {
		return err
	}
	return p.admit(ctx, []pending{pr}, int64(pr.size), true)
}

// TryPut is Put without waiting: it fails with ErrBufferFull when the
// buffer is full.
func (p *Producer) TryPut(r Record) error {
	pr, err := prepare(r)
	if err != nil {
		return err
	}
	return p.admit(context.Background(), []pending{pr}, int64(pr.size), false)
}

// TryPutBatch buffers every record of rs or none: on ErrBufferFull,
// ErrBatchTooLarge, ErrClosed or an invalid record (the error names its
// index) nothing was buffered. The collector uses it to accept or refuse a
// whole request.
func (p *Producer) TryPutBatch(rs []Record) error {
	prs, size, err := prepareBatch(rs)
	if err != nil {
		return err
	}
	return p.admit(context.Background(), prs, size, false)
}

// PutBatch is TryPutBatch that waits, like Put, until the whole batch fits.
func (p *Producer) PutBatch(ctx context.Context, rs []Record) error {
	prs, size, err := prepareBatch(rs)
	if err != nil {
		return err
	}
	return p.admit(ctx, prs, size, true)
}

func prepareBatch(rs []Record) ([]pending, int64, error) {
	prs := make([]pending, len(rs))
	var size int64
	for i, r := range rs {
		pr, err := prepare(r)
		if err != nil {
			return nil, 0, fmt.Errorf("record %d: %w", i, err)
		}
		prs[i] = pr
		size += int64(pr.size)
	}
	return prs, size, nil
}

// Validate checks r against Kinesis' limits as Put does: it returns an
// error wrapping ErrRecordTooLarge or ErrInvalidRecord for a record Put
// would refuse.
func Validate(r Record) error {
	_, err := prepare(r)
	return err
}

// prepare validates r against Kinesis' limits and hashes it.
func prepare(r Record) (pending, error) {
	pk := r.PartitionKey
	if pk == "" {
		return pending{}, fmt.Errorf("%w: empty partition key", ErrInvalidRecord)
	}
	if len(pk) > MaxPartitionKeyLength && utf8.RuneCountInString(pk) > MaxPartitionKeyLength {
		return pending{}, fmt.Errorf("%w: partition key of %d characters, over %d", ErrInvalidRecord, utf8.RuneCountInString(pk), MaxPartitionKeyLength)
	}
	if n := len(r.Data) + len(pk); n > MaxRecordBytes {
		return pending{}, fmt.Errorf("%w: %d bytes of data and partition key, over Kinesis' %d", ErrRecordTooLarge, n, MaxRecordBytes)
	}
	var h hashKey
	if r.ExplicitHashKey != "" {
		var err error
		if h, err = hashkey.Parse(r.ExplicitHashKey); err != nil {
			return pending{}, fmt.Errorf("%w: explicit hash key %.50q: %w", ErrInvalidRecord, r.ExplicitHashKey, err)
		}
	} else {
		h = hashkey.Of(pk)
	}
	return pending{rec: r, hash: h, size: len(r.Data) + len(pk) + len(r.ExplicitHashKey)}, nil
}

// admit moves prs into the buffer, all or nothing, waiting for room if wait.
func (p *Producer) admit(ctx context.Context, prs []pending, size int64, wait bool) error {
	if len(prs) == 0 {
		return nil
	}
	if len(prs) > p.cfg.maxBufferedRecords {
		return fmt.Errorf("%w: %d records, the buffer holds %d", ErrBatchTooLarge, len(prs), p.cfg.maxBufferedRecords)
	}
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return ErrClosed
		}
		if p.bufRecs+len(prs) <= p.cfg.maxBufferedRecords && (p.bufBytes+size <= p.cfg.maxBufferedBytes || p.bufRecs == 0) &&
			(p.bufRecs == 0 || !p.backlogged(p.bufRecs+len(prs), time.Now())) {
			break
		}
		if !wait {
			p.mu.Unlock()
			return ErrBufferFull
		}
		space := p.space
		p.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.closing:
			return ErrClosed
		}
		p.mu.Lock()
	}
	now := time.Now()
	wasEmpty := len(p.incoming) == 0
	for i := range prs {
		prs[i].enq, prs[i].ep = now, p.epoch
	}
	p.incoming = append(p.incoming, prs...)
	p.bufRecs += len(prs)
	p.bufBytes += size
	p.epochCount += len(prs)
	p.mu.Unlock()
	if wasEmpty {
		p.signal()
	}
	return nil
}

// minDrainRate is the drain rate assumed until one is measured: about
// what a kinesis-local stream holding 100,000 records absorbs, the slowest
// endpoint measured. The estimate grows from there by up to TTL/2 ÷ round
// trip per second, so a fast stream is not held back for long.
const minDrainRate = 100

// backlogged reports whether a buffer of n records could not be sent
// within half the record TTL (see WithRecordTTL): more records than the
// measured drain rate (at least minDrainRate) sends in that time, or the
// oldest buffered record has already waited that long. Never without a
// TTL.
func (p *Producer) backlogged(n int, now time.Time) bool {
	if p.cfg.recordTTL <= 0 {
		return false
	}
	half := p.cfg.recordTTL / 2
	if limit := float64(max(minDrainRate, p.drainRate.Load())) * half.Seconds(); float64(n) > limit {
		return true
	}
	o := p.oldest.Load()
	return o != 0 && now.UnixNano()-o > int64(half)
}

// setOldest publishes the loop's oldest enqueue time and wakes waiting
// Puts when the backlog got younger.
func (p *Producer) setOldest(t int64) {
	if prev := p.oldest.Swap(t); prev != 0 && (t == 0 || t > prev) {
		p.mu.Lock()
		close(p.space)
		p.space = make(chan struct{})
		p.mu.Unlock()
	}
}

func (p *Producer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// release takes finished records (acknowledged, err == nil, or failed and
// reported) out of the buffer, wakes Put and Flush callers waiting on them
// and completes their batches' acknowledgements.
func (p *Producer) release(prs []pending, err error) {
	if len(prs) == 0 {
		return
	}
	defer func() {
		// After the unlock: a done callback may put records again.
		for i := range prs {
			if prs[i].ack != nil {
				prs[i].ack.complete(prs[i].idx, err)
			}
		}
	}()
	p.mu.Lock()
	for i := range prs {
		p.bufRecs--
		p.bufBytes -= int64(prs[i].size)
		if prs[i].ep == p.epoch {
			p.epochCount--
			continue
		}
		if e := p.sealed[prs[i].ep]; e != nil {
			if e.count--; e.count == 0 {
				close(e.done)
				delete(p.sealed, prs[i].ep)
			}
		}
	}
	close(p.space)
	p.space = make(chan struct{})
	p.mu.Unlock()
}

// Flush sends everything buffered before the call without lingering and
// waits until it is acknowledged or finally failed (failure callbacks
// included), or ctx is done. Records Put meanwhile are sent promptly too,
// but not waited for.
//
// It returns a *FailedError when records finally failed since the previous
// Flush or Close reported failures (records of acknowledged batches
// excepted: their callers were told), and ctx's error, wrapped, when ctx
// ended first; then the failures stay for the next call.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.wait(ctx); err != nil {
		return err
	}
	if err := p.takeFailures(); err != nil {
		return err
	}
	return nil
}

// wait is Flush without reporting failures.
func (p *Producer) wait(ctx context.Context) error {
	p.mu.Lock()
	if p.epochCount > 0 {
		p.sealed[p.epoch] = &epochState{count: p.epochCount, done: make(chan struct{})}
		p.epochCount = 0
	}
	p.epoch++
	waits := make([]chan struct{}, 0, len(p.sealed))
	for _, e := range p.sealed {
		waits = append(waits, e.done)
	}
	p.flushers++
	p.mu.Unlock()
	p.signal()
	defer func() {
		p.mu.Lock()
		p.flushers--
		p.mu.Unlock()
	}()
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return fmt.Errorf("flush: %w", ctx.Err())
		}
	}
	return nil
}

// takeFailures returns and resets the failures not yet reported; nil when
// there are none.
func (p *Producer) takeFailures() error {
	p.failMu.Lock()
	defer p.failMu.Unlock()
	if p.unreported == nil {
		return nil
	}
	e := p.unreported
	p.unreported = nil
	return e
}

// Close stops accepting records (the Put methods return ErrClosed), sends
// everything buffered and stops the producer's goroutines. If ctx ends
// first, calls in flight are cancelled and every record not yet
// acknowledged goes to the failure callback with an error wrapping
// ErrClosed — some of those may have been written, since a cancelled call's
// outcome is unknown. Close returns ctx's error (wrapped) in that case, and
// a *FailedError (joined with it) when records failed since the previous
// Flush or Close reported failures, abandoned ones included. Close
// unregisters the metrics. Calling Close again waits for the first call to
// finish.
func (p *Producer) Close(ctx context.Context) error {
	first := false
	p.once.Do(func() { first = true })
	if !first {
		select {
		case <-p.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	p.closed = true
	close(p.closing)
	p.mu.Unlock()
	err := p.wait(ctx)
	if err != nil {
		p.cancel() // abort calls in flight
	}
	close(p.stop)
	<-p.loopDone
	p.cancel()
	p.wg.Wait()
	p.unreg()
	close(p.done)
	if err != nil {
		err = fmt.Errorf("close producer: %w", err)
	}
	return errors.Join(err, p.takeFailures())
}

// Stats returns the producer's counters.
func (p *Producer) Stats() Stats {
	p.mu.Lock()
	recs, bytes := p.bufRecs, p.bufBytes
	p.mu.Unlock()
	return Stats{
		BufferedRecords:    int64(recs),
		BufferedBytes:      bytes,
		RecordsSent:        p.c.recordsSent.Load(),
		BytesSent:          p.c.bytesSent.Load(),
		KinesisRecordsSent: p.c.kinesisRecordsSent.Load(),
		Requests:           p.c.requests.Load(),
		Retries:            p.c.retries.Load(),
		Throttles:          p.c.throttles.Load(),
		RecordsFailed:      p.c.failed.Load(),
		ShardMapRefreshes:  p.c.refreshes.Load(),
	}
}

// failure is a set of user records that finally failed, for the callback.
type failure struct {
	recs []pending
	err  error
}

// fail reports records that finally failed; the callback goroutine passes
// them to the failure callback and then releases them from the buffer.
func (p *Producer) fail(recs []pending, err error, reason string) {
	if len(recs) == 0 {
		return
	}
	p.c.failed.Add(int64(len(recs)))
	p.m.failures.WithLabelValues(reason).Add(float64(len(recs)))
	p.failMu.Lock()
	p.failq = append(p.failq, failure{recs: recs, err: err})
	for i := range recs {
		if recs[i].ack != nil {
			continue // its batch's acknowledgement reports it
		}
		u := p.unreported
		if u == nil {
			u = &FailedError{ByReason: map[string]int{}, First: err}
			p.unreported = u
		}
		u.Records++
		u.ByReason[reason]++
	}
	p.failMu.Unlock()
	select {
	case p.failWake <- struct{}{}:
	default:
	}
}

// failureLoop runs the failure callback; it exits once the loop has exited
// and every failure is reported.
func (p *Producer) failureLoop() {
	defer p.wg.Done()
	var lastLog time.Time
	suppressed := 0
	for {
		exit := false
		select {
		case <-p.failWake:
		case <-p.loopDone:
			exit = true
		}
		p.failMu.Lock()
		q := p.failq
		p.failq = nil
		p.failMu.Unlock()
		for _, f := range q {
			if time.Since(lastLog) >= 5*time.Second {
				p.log.Warn("records failed", "records", len(f.recs), "error", f.err, "suppressed_since_last", suppressed)
				lastLog, suppressed = time.Now(), 0
			} else {
				suppressed += len(f.recs)
			}
			if p.cfg.onFailure != nil {
				for _, pr := range f.recs {
					p.cfg.onFailure(pr.rec, f.err)
				}
			}
			p.release(f.recs, f.err)
		}
		if exit {
			return
		}
	}
}

// refresher reads the shard map at start, every refresh interval and when
// the loop asks, and hands it to the loop.
func (p *Producer) refresher() {
	defer p.wg.Done()
	ticker := time.NewTicker(p.cfg.shardRefreshInterval)
	defer ticker.Stop()
	backoff := p.cfg.minRetryBackoff
	for {
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.requestTimeout)
		m, err := listShards(ctx, p.client, p.stream)
		cancel()
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			p.log.Warn("cannot read shard map; retrying", "error", err, "retry_in", backoff)
			if retry.Sleep(p.ctx, backoff) != nil {
				return
			}
			backoff = min(2*backoff, max(p.cfg.maxRetryBackoff, 5*time.Second))
			continue
		}
		backoff = p.cfg.minRetryBackoff
		p.c.refreshes.Add(1)
		p.m.shardMapRefreshes.Inc()
		select {
		case p.maps <- m:
		case <-p.ctx.Done():
			return
		}
		select {
		case <-ticker.C:
		case <-p.refresh:
		case <-p.ctx.Done():
			return
		}
	}
}
