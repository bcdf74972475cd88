package producers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/clickstream-go/clickstream/internal/retry"
	"github.com/clickstream-go/clickstream/kpl"
)

// How records move, and why per-key order survives partial failures.
//
// Put appends to p.incoming. One goroutine, the loop, owns everything after
// that: it routes each record to the shard whose hash key range holds it
// (the shard map from ListShards) and, within the shard, to one of its
// lanes, chosen by the record's hash — so all records of a partition key
// share one lane. A lane packs its records into entries — KPL aggregates, or
// single records with aggregation off — and the loop builds PutRecords calls
// out of the entries of idle lanes. Each call runs on its own goroutine and
// reports back to the loop.
//
// Three rules keep the records of one partition key in order:
//
//  1. A lane has at most one PutRecords call in flight. Its next call is
//     built only after the previous one's outcome is known. (With one lane
//     per shard this is "one call in flight per shard"; more lanes let a
//     shard have several aggregates or calls under way, for keys that
//     cannot be in each other's way.)
//  2. Within one call, a lane's entries have pairwise disjoint partition
//     keys. Kinesis may fail any subset of a call's records; if two entries
//     with the same key were in one call, the later could succeed while the
//     earlier failed. Taking a lane's entries stops at the first one that
//     shares a key with an entry already taken.
//  3. Failed entries go back to the front of their lane's queue, in their
//     original order, and the shard waits out its backoff; nothing newer in
//     that lane is sent before them.
//
// So for any key, an entry is sent only after every earlier entry holding
// that key has been acknowledged or has finally failed. A retry after a
// dropped connection may write a record twice (the first attempt's outcome
// is unknown); the duplicate lands before anything newer of its key.
//
// A changed shard map (a reshard, seen by ListShards) is applied at a
// barrier: the loop stops sending, waits for the calls in flight, then
// re-routes every queued record, in order, to the new shards and lanes.

// shard is the loop's state for one open shard.
type shard struct {
	info     shardInfo
	lanes    []*lane
	retryAt  time.Time // backoff: no call for any lane before this
	failures int       // consecutive calls in which this shard had failures
	failed   bool      // scratch for handle
}

// lane is the unit of ordering: the records of one shard whose hash falls
// into the lane (see rules above).
type lane struct {
	sh         *shard
	ready      []*entry // sealed entries, oldest first
	readyBytes int
	open       *entry   // aggregate being filled (aggregation on)
	aggLimit   int      // size limit of the open aggregate
	inFlight   bool     // a call with this lane's entries is in flight
	failed     []*entry // scratch for handle
	active     bool     // listed in loopState.active
	// ackDue is when the earliest record of an acknowledged batch routed
	// here is due (WithAckLinger); zero when none. It may be stale, early,
	// after such a record was sent: that costs a call sent sooner, no more.
	ackDue time.Time
}

func (l *lane) hasData() bool { return len(l.ready) > 0 || l.open != nil }

func (l *lane) pushBack(e *entry) {
	l.ready = append(l.ready, e)
	l.readyBytes += e.size
}

func (l *lane) popFront() *entry {
	e := l.ready[0]
	l.ready[0] = nil
	l.ready = l.ready[1:]
	l.readyBytes -= e.size
	return e
}

func (l *lane) prepend(es []*entry) {
	if len(es) == 0 {
		return
	}
	for _, e := range es {
		l.readyBytes += e.size
	}
	l.ready = append(es, l.ready...)
}

// entry is one Kinesis record to put: an aggregate or a single user record.
type entry struct {
	lane       *lane
	recs       []pending // the user records, in order
	hash       hashKey   // the first record's hash: an aggregate's explicit hash key
	data       []byte
	pk, ehk    string
	agg        *kpl.Aggregator // while the entry is an open aggregate
	size       int             // data + partition key: what Kinesis counts against its limits
	aggregated bool
	attempts   int
	lastErr    error
}

func (e *entry) created() time.Time { return e.recs[0].enq }

type request struct {
	entries []*entry
	bytes   int
}

type result struct {
	req *request
	out *kinesis.PutRecordsOutput
	err error
	dur time.Duration
}

// loopState is owned by the loop goroutine.
type loopState struct {
	smap       shardMap
	shards     []*shard
	lanes      []*lane   // every shard's lanes, shard by shard
	active     []*lane   // lanes that may hold records: what the loop scans
	pendingMap shardMap  // a new map waiting for the calls in flight
	backlog    []pending // records that cannot be routed yet
	spare      []pending // the previous incoming slice, for reuse
	inFlight   int
	flying     map[*request]struct{} // calls in flight (with a TTL only: for the queueing delay)
	rr         int                   // round-robin start over active lanes
	flushAll   bool
	stopping   bool
	used       map[string]struct{} // partition keys already in a call, per lane
	aggs       []*kpl.Aggregator   // free aggregators, with their buffers
	lastAsk    time.Time           // last shard map refresh requested
	rateFrom   time.Time           // start of the drain rate's sample (with a TTL)
	rateAcked  int                 // records acknowledged since rateFrom
	lastWarn   time.Time
}

func (l *loopState) init() {
	l.used = make(map[string]struct{})
	l.flying = make(map[*request]struct{})
}

// markActive lists a lane that has just received records. The loop scans
// only listed lanes, so idle lanes of a many-shard stream cost nothing.
func (l *loopState) markActive(ln *lane) {
	if !ln.active {
		ln.active = true
		l.active = append(l.active, ln)
	}
}

// getAgg returns an empty aggregator. Aggregators are shared through a
// free list rather than owned by lanes, so memory follows the open
// aggregates, not the number of lanes of a many-shard stream.
func (l *loopState) getAgg() *kpl.Aggregator {
	if n := len(l.aggs); n > 0 {
		a := l.aggs[n-1]
		l.aggs[n-1] = nil
		l.aggs = l.aggs[:n-1]
		return a
	}
	return new(kpl.Aggregator)
}

// putAgg resets a and keeps it for reuse, up to a bound.
func (l *loopState) putAgg(a *kpl.Aggregator) {
	a.Reset()
	if len(l.aggs) < 64 {
		l.aggs = append(l.aggs, a)
	}
}

// compact unlists lanes that hold no records.
func (l *loopState) compact() {
	kept := l.active[:0]
	for _, ln := range l.active {
		if ln.hasData() {
			kept = append(kept, ln)
		} else {
			ln.active = false
		}
	}
	clear(l.active[len(kept):])
	l.active = kept
}

func (p *Producer) loop() {
	defer close(p.loopDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	stop := p.stop
	for {
		now := time.Now()
		p.takeIncoming(now)
		p.expire(now)
		if p.lp.stopping {
			p.abandon()
			if p.lp.inFlight == 0 {
				return
			}
		} else {
			p.dispatch(now)
		}
		timer.Reset(p.nextWake(now))
		select {
		case <-p.wake:
		case res := <-p.results:
			p.handle(res, time.Now())
		case m := <-p.maps:
			p.onMap(m)
		case <-timer.C:
		case <-stop:
			p.lp.stopping = true
			stop = nil
		}
	}
}

func (p *Producer) takeIncoming(now time.Time) {
	p.mu.Lock()
	batch := p.incoming
	p.incoming = p.lp.spare[:0]
	p.lp.flushAll = p.flushers > 0 || p.closed
	p.mu.Unlock()
	for i := range batch {
		p.route(batch[i], now)
	}
	clear(batch)
	p.lp.spare = batch[:0]
}

// route queues a record on its lane, or in the backlog while there is no
// usable shard map.
func (p *Producer) route(pr pending, now time.Time) {
	if p.lp.smap == nil || p.lp.pendingMap != nil {
		p.lp.backlog = append(p.lp.backlog, pr)
		return
	}
	i := p.lp.smap.lookup(pr.hash)
	if i < 0 {
		// No open shard holds this hash: the map is stale. Every record with
		// this hash waits here, in order, for the next map.
		p.lp.backlog = append(p.lp.backlog, pr)
		p.askRefresh(now)
		return
	}
	s := p.lp.shards[i]
	l := s.lanes[pr.hash.Lo%uint64(len(s.lanes))]
	p.lp.markActive(l)
	if !l.hasData() {
		l.ackDue = time.Time{}
	}
	if pr.ack != nil {
		if due := pr.enq.Add(p.cfg.ackLinger); l.ackDue.IsZero() || due.Before(l.ackDue) {
			l.ackDue = due
		}
	}
	if !p.cfg.aggregate {
		l.pushBack(single(l, pr))
		return
	}
	r := kpl.Record(pr.rec)
	if l.open != nil && l.open.agg.SizeWith(r) > l.aggLimit {
		p.seal(l)
	}
	if l.open == nil {
		limit := min(p.cfg.maxAggregateBytes, MaxRecordBytes-len(pr.rec.PartitionKey))
		a := p.lp.getAgg()
		if a.SizeWith(r) > limit {
			// Too large to aggregate even alone: send it as a plain record.
			p.lp.putAgg(a)
			l.pushBack(single(l, pr))
			return
		}
		l.open = &entry{lane: l, hash: pr.hash, agg: a}
		l.aggLimit = limit
	}
	l.open.agg.Add(r)
	l.open.recs = append(l.open.recs, pr)
}

func single(l *lane, pr pending) *entry {
	return &entry{
		lane: l, recs: []pending{pr}, hash: pr.hash,
		data: pr.rec.Data, pk: pr.rec.PartitionKey, ehk: pr.rec.ExplicitHashKey,
		size: len(pr.rec.Data) + len(pr.rec.PartitionKey),
	}
}

// seal closes the lane's open aggregate and queues it.
func (p *Producer) seal(l *lane) {
	e := l.open
	l.open = nil
	a := e.agg
	e.agg = nil
	defer p.lp.putAgg(a)
	if len(e.recs) == 1 {
		// One record gains nothing from the aggregate format.
		l.pushBack(single(l, e.recs[0]))
		return
	}
	e.data, e.pk, _ = a.Build()
	// The aggregate's explicit hash key is its first record's hash, which
	// lies in this shard's range, so Kinesis puts it on this shard.
	e.ehk = e.hash.String()
	e.size = len(e.data) + len(e.pk)
	e.aggregated = true
	p.m.aggregateRecords.Observe(float64(len(e.recs)))
	l.pushBack(e)
}

// deadline is when the entry expires: its oldest record's TTL.
func (p *Producer) deadline(e *entry) (time.Time, bool) {
	if p.cfg.recordTTL <= 0 {
		return time.Time{}, false
	}
	return e.created().Add(p.cfg.recordTTL), true
}

func expiredErr(e *entry) error {
	if e.lastErr != nil {
		return fmt.Errorf("%w after %d attempts: %w", ErrRecordExpired, e.attempts, e.lastErr)
	}
	return fmt.Errorf("%w before it could be sent", ErrRecordExpired)
}

// expire fails entries whose TTL passed. Queues are oldest first, so only
// their fronts are checked.
func (p *Producer) expire(now time.Time) {
	if p.cfg.recordTTL <= 0 {
		return
	}
	for _, l := range p.lp.active {
		for len(l.ready) > 0 {
			e := l.ready[0]
			if dl, _ := p.deadline(e); now.Before(dl) {
				break
			}
			l.popFront()
			p.fail(e.recs, expiredErr(e), "expired")
		}
		if len(l.ready) == 0 && l.open != nil {
			if dl, _ := p.deadline(l.open); !now.Before(dl) {
				p.lp.putAgg(l.open.agg)
				p.fail(l.open.recs, expiredErr(l.open), "expired")
				l.open = nil
			}
		}
	}
	n := 0
	for n < len(p.lp.backlog) && !now.Before(p.lp.backlog[n].enq.Add(p.cfg.recordTTL)) {
		n++
	}
	if n > 0 {
		p.fail(append([]pending(nil), p.lp.backlog[:n]...), fmt.Errorf("%w: no open shard known for it", ErrRecordExpired), "expired")
		p.lp.backlog = append(p.lp.backlog[:0], p.lp.backlog[n:]...)
	}
}

// abandon fails every record not in flight; Close gave up on them.
func (p *Producer) abandon() {
	err := fmt.Errorf("%w before the record was sent", ErrClosed)
	for _, l := range p.lp.active {
		for len(l.ready) > 0 {
			p.fail(l.popFront().recs, err, "closed")
		}
		if l.open != nil {
			p.lp.putAgg(l.open.agg)
			p.fail(l.open.recs, err, "closed")
			l.open = nil
		}
	}
	if len(p.lp.backlog) > 0 {
		p.fail(p.lp.backlog, err, "closed")
		p.lp.backlog = nil
	}
}

// due reports whether an idle lane should send now rather than linger.
func (p *Producer) due(l *lane, now time.Time) bool {
	if p.lp.flushAll || !l.ackDue.IsZero() && !now.Before(l.ackDue) {
		return true
	}
	if len(l.ready) > 0 {
		// With aggregation, sealed entries are full aggregates, oversized
		// records or retries. Without, a full call's worth or a retry is due.
		if p.cfg.aggregate || l.ready[0].attempts > 0 ||
			len(l.ready) >= MaxRequestRecords || l.readyBytes >= p.cfg.maxRequestBytes {
			return true
		}
		return !now.Before(l.ready[0].created().Add(p.cfg.linger))
	}
	return l.open != nil && !now.Before(l.open.created().Add(p.cfg.linger))
}

func (p *Producer) eligible(l *lane, now time.Time) bool {
	return !l.inFlight && !now.Before(l.sh.retryAt) && l.hasData()
}

// dispatch starts calls while lanes are due and call slots are free.
func (p *Producer) dispatch(now time.Time) {
	if p.lp.smap == nil || p.lp.pendingMap != nil {
		return
	}
	for p.lp.inFlight < p.cfg.maxInFlightRequests {
		req := p.build(now)
		if req == nil {
			return
		}
		p.lp.inFlight++
		if p.cfg.recordTTL > 0 {
			p.lp.flying[req] = struct{}{}
		}
		p.wg.Add(1)
		go p.send(req)
	}
}

// full reports whether a call has reached its target size.
func (p *Producer) full(req *request) bool {
	return len(req.entries) >= MaxRequestRecords || req.bytes >= p.cfg.maxRequestBytes
}

// build assembles one call: due lanes first, then other idle lanes'
// records ride along while the call has room.
func (p *Producer) build(now time.Time) *request {
	lanes := p.lp.active
	anyDue := false
	total, totalBytes := 0, 0
	for _, l := range lanes {
		if !p.eligible(l, now) {
			continue
		}
		anyDue = anyDue || p.due(l, now)
		total += len(l.ready)
		totalBytes += l.readyBytes
	}
	if !anyDue && !p.cfg.aggregate && (total >= MaxRequestRecords || totalBytes >= p.cfg.maxRequestBytes) {
		anyDue = true // together the idle lanes fill a call
	}
	if !anyDue {
		return nil
	}
	req := &request{}
	start := p.lp.rr
	p.lp.rr = (p.lp.rr + 1) % len(lanes)
	for pass := range 2 {
		for k := range lanes {
			if p.full(req) {
				break
			}
			l := lanes[(start+k)%len(lanes)]
			if !p.eligible(l, now) || pass == 0 && !p.due(l, now) {
				continue
			}
			p.take(l, req)
		}
	}
	if len(req.entries) == 0 {
		return nil
	}
	return req
}

// fits reports whether an entry of size bytes may join req: within
// Kinesis' limits, and within the call size target unless req is empty.
func (p *Producer) fits(req *request, size int) bool {
	if len(req.entries) == 0 {
		return true
	}
	return len(req.entries) < MaxRequestRecords && req.bytes+size <= p.cfg.maxRequestBytes
}

// take moves a prefix of the lane's queue into req (rule 2 above).
func (p *Producer) take(l *lane, req *request) {
	var first *entry
	taken := 0
	for {
		if len(l.ready) == 0 {
			if l.open == nil || !p.fits(req, l.open.agg.Size()+len(l.open.recs[0].rec.PartitionKey)) {
				break
			}
			p.seal(l)
		}
		e := l.ready[0]
		if !p.fits(req, e.size) {
			break
		}
		if taken == 0 {
			first = e
		} else {
			if taken == 1 {
				clear(p.lp.used)
				addKeys(p.lp.used, first)
			}
			if sharesKey(p.lp.used, e) {
				break
			}
			addKeys(p.lp.used, e)
		}
		l.popFront()
		req.entries = append(req.entries, e)
		req.bytes += e.size
		taken++
	}
	if taken > 0 {
		l.inFlight = true
	}
	if !l.hasData() {
		l.ackDue = time.Time{}
	}
}

func addKeys(used map[string]struct{}, e *entry) {
	for i := range e.recs {
		used[e.recs[i].rec.PartitionKey] = struct{}{}
	}
}

func sharesKey(used map[string]struct{}, e *entry) bool {
	for i := range e.recs {
		if _, ok := used[e.recs[i].rec.PartitionKey]; ok {
			return true
		}
	}
	return false
}

// send makes one PutRecords call and reports the outcome to the loop.
func (p *Producer) send(req *request) {
	defer p.wg.Done()
	in := &kinesis.PutRecordsInput{Records: make([]types.PutRecordsRequestEntry, len(req.entries))}
	setStream(p.stream, &in.StreamName, &in.StreamARN)
	for i, e := range req.entries {
		in.Records[i] = types.PutRecordsRequestEntry{Data: e.data, PartitionKey: aws.String(e.pk)}
		if e.ehk != "" {
			in.Records[i].ExplicitHashKey = aws.String(e.ehk)
		}
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.requestTimeout)
	start := time.Now()
	out, err := p.client.PutRecords(ctx, in)
	cancel()
	p.results <- &result{req: req, out: out, err: err, dur: time.Since(start)}
}

// handle applies a call's outcome: acknowledged records leave the buffer,
// failed entries are retried (rule 3) or reported.
func (p *Producer) handle(res *result, now time.Time) {
	p.lp.inFlight--
	delete(p.lp.flying, res.req)
	p.c.requests.Add(1)
	p.m.requestDuration.Observe(res.dur.Seconds())
	p.m.requestEntries.Observe(float64(len(res.req.entries)))

	callErr := res.err
	if callErr == nil && (res.out == nil || len(res.out.Records) != len(res.req.entries)) {
		n := 0
		if res.out != nil {
			n = len(res.out.Records)
		}
		callErr = fmt.Errorf("put records: %d results for %d records", n, len(res.req.entries))
	}
	if callErr != nil {
		p.warn("PutRecords failed", "records", len(res.req.entries), "error", callErr)
	}

	var (
		sent                   []pending
		kinesisRecs, sentBytes int
		mismatch, partial      bool
		touched                []*lane
	)
	for i, e := range res.req.entries {
		l := e.lane
		if l.inFlight {
			l.inFlight = false
			touched = append(touched, l)
		}
		var err error
		if callErr != nil {
			err = callErr
		} else if rr := res.out.Records[i]; rr.ErrorCode != nil {
			err = &PutError{Code: aws.ToString(rr.ErrorCode), Message: aws.ToString(rr.ErrorMessage)}
		} else {
			sent = append(sent, e.recs...)
			kinesisRecs++
			for j := range e.recs {
				sentBytes += len(e.recs[j].rec.Data)
			}
			if id := aws.ToString(rr.ShardId); id != "" && id != l.sh.info.ID {
				mismatch = true
			}
			continue
		}
		partial = true
		reason, permanent := classify(err)
		switch {
		case p.lp.stopping:
			p.fail(e.recs, fmt.Errorf("%w: %w", ErrClosed, err), "closed")
		case permanent:
			p.fail(e.recs, err, "rejected")
		default:
			e.attempts++
			e.lastErr = err
			l.failed = append(l.failed, e)
			l.sh.failed = true
			if reason == "throttled" {
				p.c.throttles.Add(int64(len(e.recs)))
			}
			p.m.retries.WithLabelValues(reason).Add(float64(len(e.recs)))
		}
	}
	switch {
	case callErr != nil:
		p.m.requests.WithLabelValues("error").Inc()
	case partial:
		p.m.requests.WithLabelValues("partial").Inc()
	default:
		p.m.requests.WithLabelValues("ok").Inc()
	}

	// The shards' backoff first, then each lane's failed entries return to
	// the front of its queue unless they would expire while waiting.
	for _, l := range touched {
		s := l.sh
		switch {
		case s.failed:
			s.failed = false
			s.failures++
			s.retryAt = now.Add(p.backoff(s.failures))
		case !now.Before(s.retryAt):
			s.failures = 0
		}
	}
	for _, l := range touched {
		if len(l.failed) == 0 {
			continue
		}
		kept := make([]*entry, 0, len(l.failed))
		for _, e := range l.failed {
			if dl, ok := p.deadline(e); ok && !l.sh.retryAt.Before(dl) {
				p.fail(e.recs, expiredErr(e), "expired")
				continue
			}
			kept = append(kept, e)
			p.c.retries.Add(int64(len(e.recs)))
		}
		clear(l.failed)
		l.failed = l.failed[:0]
		l.prepend(kept)
		p.lp.markActive(l)
	}

	p.lp.rateAcked += len(sent)
	p.c.recordsSent.Add(int64(len(sent)))
	p.c.bytesSent.Add(int64(sentBytes))
	p.c.kinesisRecordsSent.Add(int64(kinesisRecs))
	p.m.recordsSent.Add(float64(len(sent)))
	p.m.bytesSent.Add(float64(sentBytes))
	p.m.kinesisRecordsSent.Add(float64(kinesisRecs))
	p.release(sent, nil)
	if mismatch {
		p.askRefresh(now)
	}
	p.tryApplyMap()
}

// permanentCodes are Kinesis error codes retrying cannot fix; throttling is
// retry.IsThrottle's, and anything else (transport errors, 5xx, unknown
// codes) is retried until the TTL.
var (
	permanentCodes = map[string]bool{
		"ValidationException": true, "InvalidArgumentException": true, "AccessDeniedException": true,
		"KMSDisabledException": true, "KMSInvalidStateException": true, "KMSNotFoundException": true,
		"KMSAccessDeniedException": true, "KMSOptInRequired": true,
	}
)

// classify returns a retry reason ("throttled" or "error") and whether the
// error is permanent.
func classify(err error) (reason string, permanent bool) {
	var code string
	var pe *PutError
	var ae smithy.APIError
	switch {
	case errors.As(err, &pe):
		code = pe.Code
	case errors.As(err, &ae):
		code = ae.ErrorCode()
	}
	if retry.IsThrottle(err) {
		return "throttled", false
	}
	return "error", permanentCodes[code]
}

// backoff is the wait before a shard's n-th consecutive retry: exponential
// from the minimum, capped, with equal jitter (package retry) so that shards
// throttled together do not retry together.
func (p *Producer) backoff(n int) time.Duration {
	return retry.Delay(n, p.cfg.minRetryBackoff, p.cfg.maxRetryBackoff)
}

// askRefresh asks the refresher for a new shard map, at most once a second.
func (p *Producer) askRefresh(now time.Time) {
	if now.Sub(p.lp.lastAsk) < time.Second {
		return
	}
	p.lp.lastAsk = now
	select {
	case p.refresh <- struct{}{}:
	default:
	}
}

func (p *Producer) onMap(m shardMap) {
	if p.lp.smap != nil && p.lp.smap.equal(m) {
		p.lp.pendingMap = nil
		return
	}
	p.lp.pendingMap = m
	p.tryApplyMap()
}

// tryApplyMap switches to the pending shard map once no call is in flight,
// re-routing every queued record in order.
func (p *Producer) tryApplyMap() {
	m := p.lp.pendingMap
	if m == nil || p.lp.inFlight > 0 {
		return
	}
	p.lp.pendingMap = nil
	var recs []pending
	for _, l := range p.lp.lanes {
		for _, e := range l.ready {
			recs = append(recs, e.recs...)
		}
		if l.open != nil {
			recs = append(recs, l.open.recs...)
			p.lp.putAgg(l.open.agg)
		}
	}
	recs = append(recs, p.lp.backlog...)
	p.lp.backlog = nil
	old := make(map[string]*shard, len(p.lp.shards))
	for _, s := range p.lp.shards {
		old[s.info.ID] = s
	}
	if p.lp.smap != nil {
		p.log.Info("shard map changed", "open_shards", len(m), "requeued_records", len(recs))
	}
	p.lp.smap = m
	p.lp.shards = make([]*shard, len(m))
	p.lp.lanes = make([]*lane, 0, len(m)*p.cfg.lanesPerShard)
	clear(p.lp.active)
	p.lp.active = p.lp.active[:0]
	p.lp.rr = 0
	for i, info := range m {
		s := &shard{info: info}
		if o := old[info.ID]; o != nil {
			s.retryAt, s.failures = o.retryAt, o.failures
		}
		for range p.cfg.lanesPerShard {
			l := &lane{sh: s}
			s.lanes = append(s.lanes, l)
			p.lp.lanes = append(p.lp.lanes, l)
		}
		p.lp.shards[i] = s
	}
	now := time.Now()
	for _, pr := range recs {
		p.route(pr, now)
	}
}

// nextWake returns how long the loop may sleep: until the next linger,
// backoff or TTL deadline. Calls in flight and Puts wake it anyway.
func (p *Producer) nextWake(now time.Time) time.Duration {
	p.lp.compact()
	next := now.Add(time.Hour)
	at := func(t time.Time) {
		if t.After(now) && t.Before(next) {
			next = t
		}
	}
	for _, l := range p.lp.active {
		front := l.open
		if len(l.ready) > 0 {
			front = l.ready[0]
		}
		if dl, ok := p.deadline(front); ok {
			at(dl)
		}
		if l.inFlight {
			continue
		}
		if now.Before(l.sh.retryAt) {
			at(l.sh.retryAt)
			continue
		}
		at(front.created().Add(p.cfg.linger))
		if !l.ackDue.IsZero() {
			at(l.ackDue)
		}
	}
	if len(p.lp.backlog) > 0 && p.cfg.recordTTL > 0 {
		at(p.lp.backlog[0].enq.Add(p.cfg.recordTTL))
	}
	if p.cfg.recordTTL > 0 {
		p.sampleRate(now)
		p.setOldest(p.oldestEnqueued())
		if len(p.lp.active) > 0 || p.lp.inFlight > 0 {
			at(now.Add(time.Second)) // keep sampling while busy
		}
	}
	return max(next.Sub(now), time.Millisecond)
}

// sampleRate updates the drain rate estimate about once a second: the
// acknowledged records/s of the last sample, or the previous estimate
// decayed by 10 % a second when that is higher — so a lull in Puts does
// not forget the stream's capacity at once, while the oldest record's age
// (backlogged) catches a stream that slowed down.
func (p *Producer) sampleRate(now time.Time) {
	if p.lp.rateFrom.IsZero() {
		p.lp.rateFrom = now
		return
	}
	el := now.Sub(p.lp.rateFrom)
	if el < time.Second {
		return
	}
	sample := float64(p.lp.rateAcked) / el.Seconds()
	decayed := float64(p.drainRate.Load()) * math.Pow(0.9, el.Seconds())
	p.drainRate.Store(int64(max(sample, decayed)))
	p.lp.rateFrom, p.lp.rateAcked = now, 0
}

// oldestEnqueued is the enqueue time (UnixNano) of the oldest record the
// loop holds — queued, in the backlog or in flight — or 0.
func (p *Producer) oldestEnqueued() int64 {
	var oldest time.Time
	at := func(t time.Time) {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	for _, l := range p.lp.active {
		if len(l.ready) > 0 {
			at(l.ready[0].created())
		} else if l.open != nil {
			at(l.open.created())
		}
	}
	if len(p.lp.backlog) > 0 {
		at(p.lp.backlog[0].enq)
	}
	for req := range p.lp.flying {
		for _, e := range req.entries {
			at(e.created())
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return oldest.UnixNano()
}

// warn logs at most once every 5 seconds; the loop's errors come in bursts.
func (p *Producer) warn(msg string, args ...any) {
	if time.Since(p.lp.lastWarn) < 5*time.Second {
		return
	}
	p.lp.lastWarn = time.Now()
	p.log.Warn(msg, args...)
}
