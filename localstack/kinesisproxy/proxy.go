// Package kinesisproxy is a reverse proxy in front of a Kinesis emulator
// (kinesis-local, kinesalite) that enforces AWS's per-shard throughput
// limits and injects faults on demand. The emulators enforce no limits, so
// code that has never been throttled passes locally and fails on AWS;
// behind this proxy it is throttled the way AWS throttles it: PutRecords
// entries fail one by one with ProvisionedThroughputExceededException,
// PutRecord and GetRecords calls fail whole.
//
// It speaks the JSON 1.1 protocol the AWS SDKs use for Kinesis
// (X-Amz-Target: Kinesis_20131202.OP) and routes records as Kinesis does: by
// MD5 of the partition key, or the explicit hash key, against the open
// shards' hash key ranges, read from the emulator with ListShards (or
// DescribeStream) and read again after resharding. Requests it does not
// understand are forwarded untouched. localstack/limitproxy runs it as a
// program (`LIMITS=aws make up`); tests start it in-process.
package kinesisproxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clickstream-go/clickstream/internal/retry"
)

const (
	targetPrefix = "Kinesis_20131202."
	jsonType     = "application/x-amz-json-1.1"
	codeThrottle = "ProvisionedThroughputExceededException"
	// iteratorTTL: AWS shard iterators expire after 5 minutes; the proxy
	// forgets which shard an iterator reads a little later.
	iteratorTTL = 6 * time.Minute
	// reshardWindow: after a resharding call the emulator takes a moment to
	// apply it; the shard map is read again often until this has passed.
	reshardWindow  = 5 * time.Second
	reshardRefresh = 200 * time.Millisecond
)

// Stats count what the proxy did since it started.
type Stats struct {
	Requests map[string]int64 `json:"requests"` // Kinesis calls by operation

	PutEntries          int64 `json:"put_entries"`           // PutRecords entries and PutRecord calls metered
	PutEntriesThrottled int64 `json:"put_entries_throttled"` // of which rejected by a shard limit
	WriteRecords        int64 `json:"write_records"`         // records forwarded (accepted)
	WriteBytes          int64 `json:"write_bytes"`           // their data + partition key bytes

	GetRecordsCalls     int64 `json:"get_records_calls"`     // GetRecords calls metered
	GetRecordsThrottled int64 `json:"get_records_throttled"` // of which rejected by a shard limit
	ReadRecords         int64 `json:"read_records"`
	ReadBytes           int64 `json:"read_bytes"`

	Unmetered         int64 `json:"unmetered"`           // data calls forwarded without limits (unknown stream or iterator, unparsable)
	RouteMismatches   int64 `json:"route_mismatches"`    // the emulator put a record on another shard than the proxy charged
	ShardMapRefreshes int64 `json:"shard_map_refreshes"` // shard maps read from the emulator

	InjectedErrors int64 `json:"injected_errors"` // error_rate hits (entries for PutRecords)
	Injected500s   int64 `json:"injected_500s"`
	DroppedBefore  int64 `json:"dropped_before"`
	DroppedAfter   int64 `json:"dropped_after"`

	SubscribeCalls    int64 `json:"subscribe_calls"`    // SubscribeToShard calls
	SubscribeRejected int64 `json:"subscribe_rejected"` // of which refused: in use, or over the call rate
	Subscriptions     int64 `json:"subscriptions"`      // event streams opened
	FanOutEvents      int64 `json:"fan_out_events"`     // SubscribeToShardEvents pushed
	FanOutRecords     int64 `json:"fan_out_records"`
	FanOutBytes       int64 `json:"fan_out_bytes"`
}

// Proxy is an http.Handler; serve it on the address clients use as their
// Kinesis endpoint. Paths starting with /__ are its admin API (see admin).
type Proxy struct {
	cfg         Config
	upstream    string
	client      *http.Client
	passthrough *httputil.ReverseProxy
	log         *slog.Logger
	now         func() time.Time

	mu      sync.Mutex
	limits  Limits
	faults  Faults
	rng     *mrand.Rand
	streams map[string]*stream
	iters   map[string]iterShard
	added   int // iterators added since the last prune
	stats   Stats

	// Enhanced fan-out (fanout.go).
	subs         map[string]*subscription // live, by consumer-shard
	subCalls     map[string]time.Time     // last SubscribeToShard call, by consumer-shard
	ownConsumers bool                     // the emulator has no stream consumers
	consumers    map[string]*registered   // the proxy's registry, by ARN
}

// stream is what the proxy knows of one stream. Fields other than fetchMu
// are guarded by Proxy.mu.
type stream struct {
	fetchMu      sync.Mutex // one shard-map read at a time
	shards       shardMap
	fetched      time.Time
	stale        bool
	reshardUntil time.Time
	buckets      map[string]*shardBuckets // by shard id, open or closed (closed shards are still read)
}

type iterShard struct {
	stream, shard string
	at            time.Time
}

// New returns a proxy for cfg.Upstream.
func New(cfg Config) (*Proxy, error) {
	u, err := url.Parse(cfg.Upstream)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("kinesisproxy: upstream %q is not a URL like http://127.0.0.1:4668", cfg.Upstream)
	}
	if err := cfg.Faults.validate(); err != nil {
		return nil, err
	}
	if cfg.ShardRefreshInterval <= 0 {
		cfg.ShardRefreshInterval = 2 * time.Second
	}
	if cfg.Account == "" {
		cfg.Account = "000000000000"
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SubscriptionLifetime <= 0 {
		cfg.SubscriptionLifetime = AWSSubscriptionLifetime
	}
	if cfg.FanOutPoll <= 0 {
		cfg.FanOutPoll = 50 * time.Millisecond
	}
	if cfg.FanOutHeartbeat <= 0 {
		cfg.FanOutHeartbeat = time.Second
	}
	if cfg.ConsumerActivation <= 0 {
		cfg.ConsumerActivation = 500 * time.Millisecond
	}
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		// Bodies are parsed: ask the emulator for them uncompressed.
		DisableCompression: true,
	}
	p := &Proxy{
		cfg:       cfg,
		upstream:  strings.TrimSuffix(u.String(), "/"),
		client:    &http.Client{Transport: tr},
		log:       cfg.Logger,
		now:       cfg.Now,
		limits:    cfg.Limits.withDefaults(),
		faults:    cfg.Faults,
		rng:       mrand.New(mrand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		streams:   map[string]*stream{},
		iters:     map[string]iterShard{},
		stats:     Stats{Requests: map[string]int64{}},
		subs:      map[string]*subscription{},
		subCalls:  map[string]time.Time{},
		consumers: map[string]*registered{},
	}
	p.passthrough = &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.Out.Host = pr.In.Host },
		Transport:     tr,
		FlushInterval: -1, // SubscribeToShard streams events
	}
	return p, nil
}

// Limits returns the limits in force.
func (p *Proxy) Limits() Limits {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limits
}

// SetLimits replaces the limits; every shard starts again with full buckets.
func (p *Proxy) SetLimits(l Limits) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limits = l.withDefaults()
	for _, st := range p.streams {
		st.buckets = map[string]*shardBuckets{}
	}
}

// Faults returns the faults being injected.
func (p *Proxy) Faults() Faults {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults
}

// SetFaults replaces the faults being injected; Faults{} stops them.
func (p *Proxy) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = f
	return nil
}

// Stats returns a copy of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Requests = make(map[string]int64, len(p.stats.Requests))
	for k, v := range p.stats.Requests {
		s.Requests[k] = v
	}
	return s
}

func (p *Proxy) count(f func(*Stats)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.stats)
}

// roll reports true with probability prob. Call with p.mu held.
func (p *Proxy) rollLocked(prob float64) bool { return prob > 0 && p.rng.Float64() < prob }

func (p *Proxy) roll(prob float64) bool {
	if prob <= 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rollLocked(prob)
}

// response is an answer to write, or to drop after forwarding.
type response struct {
	status    int
	header    http.Header
	body      []byte
	forwarded bool // the emulator saw (part of) the request
}

func (res *response) write(w http.ResponseWriter) {
	for k, v := range res.header {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Connection", "Transfer-Encoding", "Keep-Alive":
			continue
		}
		w.Header()[k] = v
	}
	// Kinesis answers with a Content-Length; without one, a large answer
	// went out chunked and clients read it without knowing its size.
	if res.status != http.StatusNoContent && res.status != http.StatusNotModified {
		w.Header().Set("Content-Length", strconv.Itoa(len(res.body)))
	}
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// awsError is an error answer in the JSON 1.1 protocol's shape.
func awsError(status int, code, msg string) *response {
	body, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	return &response{status: status, body: body, header: http.Header{
		"Content-Type":     {jsonType},
		"X-Amzn-Requestid": {requestID()},
		"X-Amzn-Errortype": {code + ":"},
	}}
}

func (p *Proxy) writeThrottleMsg(stream, shard string) string {
	return fmt.Sprintf("Rate exceeded for shard %s in stream %s under account %s.", shard, stream, p.cfg.Account)
}

func (p *Proxy) readThrottleMsg(stream, shard string) string {
	return fmt.Sprintf("Rate exceeded for Shard - %s/%s/%s", p.cfg.Account, stream, shard)
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/__") {
		p.admin(w, r)
		return
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if !ok || r.Method != http.MethodPost {
		// Another protocol (CBOR), or not Kinesis at all.
		p.passthrough.ServeHTTP(w, r)
		return
	}
	p.count(func(s *Stats) { s.Requests[op]++ })
	f := p.Faults()
	faulty := f.appliesTo(op)
	if faulty {
		if d := f.Latency.D() + p.jitter(f.Jitter.D()); d > 0 && retry.Sleep(r.Context(), d) != nil {
			return
		}
		switch {
		case p.roll(f.DropRate):
			p.count(func(s *Stats) { s.DroppedBefore++ })
			drop(w)
			return
		case p.roll(f.Status500Rate):
			p.count(func(s *Stats) { s.Injected500s++ })
			awsError(http.StatusInternalServerError, "InternalFailure", "Internal Service Failure (injected)").write(w)
			return
		case op != "PutRecords" && p.roll(f.ErrorRate):
			p.count(func(s *Stats) { s.InjectedErrors++ })
			awsError(http.StatusBadRequest, codeThrottle, "Rate exceeded (injected)").write(w)
			return
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client went away
	}
	var res *response
	switch op {
	case "SubscribeToShard":
		p.subscribeToShard(w, r, body)
		return
	case "RegisterStreamConsumer", "DescribeStreamConsumer", "ListStreamConsumers", "DeregisterStreamConsumer":
		res = p.consumerCall(r, op, body)
	case "PutRecords":
		errRate := 0.0
		if faulty {
			errRate = f.ErrorRate
		}
		res = p.putRecords(r, body, errRate)
	case "PutRecord":
		res = p.putRecord(r, body)
	case "GetRecords":
		res = p.getRecords(r, body)
	case "GetShardIterator":
		res = p.getShardIterator(r, body)
	case "SplitShard", "MergeShards", "UpdateShardCount", "CreateStream", "DeleteStream":
		res = p.forward(r, body)
		p.resharded(body)
	default:
		res = p.forward(r, body)
	}
	if faulty && res.forwarded && p.roll(f.DropAfterRate) {
		p.count(func(s *Stats) { s.DroppedAfter++ })
		drop(w)
		return
	}
	res.write(w)
}

func (p *Proxy) jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Duration(p.rng.Int64N(int64(max)))
}

// drop closes the client's connection without an answer.
func drop(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
	}
}

// forward sends the request, with body, to the emulator.
func (p *Proxy) forward(r *http.Request, body []byte) *response {
	resp, err := p.send(r.Context(), r.URL.RequestURI(), r.Header, body)
	if err != nil {
		return &response{status: http.StatusBadGateway, header: http.Header{"Content-Type": {"text/plain"}},
			body: []byte("kinesisproxy: " + err.Error())}
	}
	resp.forwarded = true
	return resp
}

// send posts body to the emulator with the client's headers (the emulators
// do not check signatures, so the proxy may change the body or use the
// client's credentials for calls of its own).
func (p *Proxy) send(ctx context.Context, uri string, h http.Header, body []byte) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.upstream+uri, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Accept-Encoding", "Connection", "Keep-Alive", "Transfer-Encoding", "Expect":
			continue
		}
		req.Header[k] = v
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// call makes a Kinesis call of the proxy's own, signed like the client's request.
func (p *Proxy) call(ctx context.Context, client http.Header, op string, in any, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	h := http.Header{"Content-Type": {jsonType}, "X-Amz-Target": {targetPrefix + op}}
	for _, k := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token", "User-Agent"} {
		if v := client.Values(k); len(v) > 0 {
			h[k] = v
		}
	}
	res, err := p.send(ctx, "/", h, body)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if res.status != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d: %s", op, res.status, bytes.TrimSpace(res.body))
	}
	if err := json.Unmarshal(res.body, out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", op, err)
	}
	return nil
}

// shardJSON is a Shard in ListShards and DescribeStream answers.
type shardJSON struct {
	ShardId      string
	HashKeyRange struct {
		StartingHashKey, EndingHashKey string
	}
	SequenceNumberRange struct {
		EndingSequenceNumber *string
	}
}

// fetchShards reads a stream's open shards from the emulator: ListShards,
// or DescribeStream where ListShards fails.
func (p *Proxy) fetchShards(ctx context.Context, h http.Header, name string) (shardMap, error) {
	var all []shardJSON
	in := map[string]any{"StreamName": name}
	for {
		var out struct {
			Shards    []shardJSON
			NextToken *string
		}
		if err := p.call(ctx, h, "ListShards", in, &out); err != nil {
			all = nil
			var derr error
			if all, derr = p.describeShards(ctx, h, name); derr != nil {
				return nil, fmt.Errorf("read shards of %s: %w", name, errors.Join(err, derr))
			}
			break
		}
		all = append(all, out.Shards...)
		if out.NextToken == nil || *out.NextToken == "" {
			break
		}
		in = map[string]any{"NextToken": *out.NextToken}
	}
	var rs []shardRange
	for _, s := range all {
		if s.SequenceNumberRange.EndingSequenceNumber != nil {
			continue // closed
		}
		start, err1 := parseHashKey(s.HashKeyRange.StartingHashKey)
		end, err2 := parseHashKey(s.HashKeyRange.EndingHashKey)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("read shards of %s: shard %s: %w", name, s.ShardId, err)
		}
		rs = append(rs, shardRange{id: s.ShardId, start: start, end: end})
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("read shards of %s: no open shards", name)
	}
	return newShardMap(rs), nil
}

func (p *Proxy) describeShards(ctx context.Context, h http.Header, name string) ([]shardJSON, error) {
	var all []shardJSON
	in := map[string]any{"StreamName": name}
	for {
		var out struct {
			StreamDescription struct {
				Shards        []shardJSON
				HasMoreShards bool
			}
		}
		if err := p.call(ctx, h, "DescribeStream", in, &out); err != nil {
			return nil, err
		}
		d := out.StreamDescription
		all = append(all, d.Shards...)
		if !d.HasMoreShards || len(d.Shards) == 0 {
			return all, nil
		}
		in = map[string]any{"StreamName": name, "ExclusiveStartShardId": d.Shards[len(d.Shards)-1].ShardId}
	}
}

// streamLocked returns the stream's state, creating it. Call with p.mu held.
func (p *Proxy) streamLocked(name string) *stream {
	st := p.streams[name]
	if st == nil {
		st = &stream{buckets: map[string]*shardBuckets{}}
		p.streams[name] = st
	}
	return st
}

// bucketsLocked returns a shard's buckets. Call with p.mu held.
func (p *Proxy) bucketsLocked(st *stream, shard string, now time.Time) *shardBuckets {
	b := st.buckets[shard]
	if b == nil {
		b = newShardBuckets(p.limits, now)
		st.buckets[shard] = b
	}
	return b
}

// shards returns the stream's shard map, reading it from the emulator when
// it is missing, stale or old. On a failed read an older map is used.
func (p *Proxy) shards(r *http.Request, name string) (shardMap, error) {
	now := p.now()
	p.mu.Lock()
	st := p.streamLocked(name)
	age := now.Sub(st.fetched)
	need := st.shards == nil || st.stale || age > p.cfg.ShardRefreshInterval ||
		(now.Before(st.reshardUntil) && age > reshardRefresh)
	m, seen := st.shards, st.fetched
	p.mu.Unlock()
	if !need {
		return m, nil
	}
	st.fetchMu.Lock()
	defer st.fetchMu.Unlock()
	p.mu.Lock()
	if !st.fetched.Equal(seen) && !st.stale { // read by another request meanwhile
		m = st.shards
		p.mu.Unlock()
		return m, nil
	}
	p.mu.Unlock()
	fresh, err := p.fetchShards(r.Context(), r.Header, name)
	if err != nil {
		if m != nil {
			p.log.Warn("shard map refresh failed; using the previous one", "stream", name, "err", err)
			return m, nil
		}
		return nil, err
	}
	p.mu.Lock()
	st.shards, st.fetched, st.stale = fresh, p.now(), false
	p.stats.ShardMapRefreshes++
	p.mu.Unlock()
	return fresh, nil
}

// markStale makes the next request read the stream's shards again.
func (p *Proxy) markStale(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.streamLocked(name).stale = true
}

// resharded notes a call that changes a stream's shards.
func (p *Proxy) resharded(body []byte) {
	var in struct{ StreamName, StreamARN string }
	if json.Unmarshal(body, &in) != nil {
		return
	}
	name := streamName(in.StreamName, in.StreamARN)
	if name == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.streamLocked(name)
	st.stale = true
	st.reshardUntil = p.now().Add(reshardWindow)
}

// dataLen is the length of base64 data without decoding it.
func dataLen(b64 string) int {
	n := len(b64)
	if n%4 != 0 {
		return base64.RawStdEncoding.DecodedLen(n)
	}
	d := n / 4 * 3
	if strings.HasSuffix(b64, "==") {
		d -= 2
	} else if strings.HasSuffix(b64, "=") {
		d--
	}
	return d
}

type putEntry struct {
	Data            string
	PartitionKey    string
	ExplicitHashKey *string
}

type putResult struct {
	ShardId   string
	ErrorCode string
}

func jsonResponse(status int, header http.Header, v any) *response {
	b, _ := json.Marshal(v)
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", jsonType)
	if h.Get("X-Amzn-Requestid") == "" {
		h.Set("X-Amzn-Requestid", requestID())
	}
	return &response{status: status, header: h, body: b}
}

// putRecords meters each entry against its shard's write buckets: entries
// over the limit (or hit by errRate) get ProvisionedThroughputExceededException
// and are not written; the others are forwarded in one call and the answers
// merged back in order, as AWS answers a partly throttled PutRecords.
func (p *Proxy) putRecords(r *http.Request, body []byte, errRate float64) *response {
	var in map[string]json.RawMessage
	var raw []json.RawMessage
	var name struct{ StreamName, StreamARN string }
	if json.Unmarshal(body, &in) != nil || json.Unmarshal(in["Records"], &raw) != nil ||
		json.Unmarshal(body, &name) != nil || len(raw) == 0 {
		return p.unmetered(r, body) // let the emulator explain what is wrong
	}
	stream := streamName(name.StreamName, name.StreamARN)
	entries := make([]putEntry, len(raw))
	hashes := make([]hashKey, len(raw))
	for i, e := range raw {
		if json.Unmarshal(e, &entries[i]) != nil {
			return p.unmetered(r, body)
		}
		h, err := entryHash(entries[i].PartitionKey, entries[i].ExplicitHashKey)
		if err != nil {
			return p.unmetered(r, body)
		}
		hashes[i] = h
	}
	m, err := p.shards(r, stream)
	if err != nil {
		p.log.Debug("stream not metered", "stream", stream, "err", err)
		return p.unmetered(r, body)
	}

	now := p.now()
	results := make([]json.RawMessage, len(raw))
	routed := make([]string, len(raw))
	var fwd []json.RawMessage
	var fwdIdx []int
	p.mu.Lock()
	st := p.streamLocked(stream)
	for i, e := range entries {
		p.stats.PutEntries++
		shard := m.route(hashes[i])
		routed[i] = shard
		if p.rollLocked(errRate) {
			p.stats.InjectedErrors++
			results[i], _ = json.Marshal(map[string]string{"ErrorCode": codeThrottle,
				"ErrorMessage": p.writeThrottleMsg(stream, shard) + " (injected)"})
			continue
		}
		size := dataLen(e.Data) + len(e.PartitionKey)
		if shard != "" && !p.bucketsLocked(st, shard, now).admitWrite(now, size) {
			p.stats.PutEntriesThrottled++
			results[i], _ = json.Marshal(map[string]string{"ErrorCode": codeThrottle,
				"ErrorMessage": p.writeThrottleMsg(stream, shard)})
			continue
		}
		if shard == "" {
			st.stale = true // a gap in the map: read it again
		}
		p.stats.WriteRecords++
		p.stats.WriteBytes += int64(size)
		fwd = append(fwd, raw[i])
		fwdIdx = append(fwdIdx, i)
	}
	p.mu.Unlock()

	header := http.Header{}
	forwarded := false
	other := map[string]json.RawMessage{}
	if len(fwd) > 0 {
		in["Records"], _ = json.Marshal(fwd)
		fbody, _ := json.Marshal(in)
		res := p.forward(r, fbody)
		if res.status != http.StatusOK {
			return res
		}
		var out struct{ Records []json.RawMessage }
		if json.Unmarshal(res.body, &out) != nil || json.Unmarshal(res.body, &other) != nil || len(out.Records) != len(fwd) {
			return &response{status: http.StatusBadGateway, header: http.Header{"Content-Type": {"text/plain"}},
				body: []byte("kinesisproxy: PutRecords answer does not match the request"), forwarded: true}
		}
		mismatch := false
		for k, rr := range out.Records {
			i := fwdIdx[k]
			results[i] = rr
			var pr putResult
			if json.Unmarshal(rr, &pr) == nil && pr.ErrorCode == "" && routed[i] != "" && pr.ShardId != routed[i] {
				mismatch = true
				p.count(func(s *Stats) { s.RouteMismatches++ })
			}
		}
		if mismatch {
			p.markStale(stream)
		}
		header, forwarded = res.header, true
	}
	failed := 0
	for _, rr := range results {
		var pr putResult
		if json.Unmarshal(rr, &pr) == nil && pr.ErrorCode != "" {
			failed++
		}
	}
	other["FailedRecordCount"], _ = json.Marshal(failed)
	other["Records"], _ = json.Marshal(results)
	res := jsonResponse(http.StatusOK, header, other)
	res.forwarded = forwarded
	return res
}

func (p *Proxy) unmetered(r *http.Request, body []byte) *response {
	p.count(func(s *Stats) { s.Unmetered++ })
	return p.forward(r, body)
}

// putRecord meters a PutRecord call: over the limit, the whole call fails
// with 400 ProvisionedThroughputExceededException.
func (p *Proxy) putRecord(r *http.Request, body []byte) *response {
	var in struct {
		StreamName, StreamARN string
		putEntry
	}
	if json.Unmarshal(body, &in) != nil {
		return p.unmetered(r, body)
	}
	h, err := entryHash(in.PartitionKey, in.ExplicitHashKey)
	if err != nil {
		return p.unmetered(r, body)
	}
	stream := streamName(in.StreamName, in.StreamARN)
	m, err := p.shards(r, stream)
	if err != nil {
		return p.unmetered(r, body)
	}
	shard := m.route(h)
	size := dataLen(in.Data) + len(in.PartitionKey)
	now := p.now()
	p.mu.Lock()
	p.stats.PutEntries++
	st := p.streamLocked(stream)
	if shard != "" && !p.bucketsLocked(st, shard, now).admitWrite(now, size) {
		p.stats.PutEntriesThrottled++
		p.mu.Unlock()
		return awsError(http.StatusBadRequest, codeThrottle, p.writeThrottleMsg(stream, shard))
	}
	p.stats.WriteRecords++
	p.stats.WriteBytes += int64(size)
	p.mu.Unlock()
	res := p.forward(r, body)
	var pr putResult
	if res.status == http.StatusOK && json.Unmarshal(res.body, &pr) == nil && shard != "" && pr.ShardId != shard {
		p.count(func(s *Stats) { s.RouteMismatches++ })
		p.markStale(stream)
	}
	return res
}

// rememberIterator notes which shard an iterator reads. Call with p.mu held.
func (p *Proxy) rememberIteratorLocked(it string, s iterShard) {
	if it == "" {
		return
	}
	p.iters[it] = s
	if p.added++; p.added >= 4096 {
		p.added = 0
		for k, v := range p.iters {
			if s.at.Sub(v.at) > iteratorTTL {
				delete(p.iters, k)
			}
		}
	}
}

func (p *Proxy) getShardIterator(r *http.Request, body []byte) *response {
	res := p.forward(r, body)
	var in struct{ StreamName, StreamARN, ShardId string }
	var out struct{ ShardIterator string }
	if res.status == http.StatusOK && json.Unmarshal(body, &in) == nil && json.Unmarshal(res.body, &out) == nil {
		p.mu.Lock()
		p.rememberIteratorLocked(out.ShardIterator, iterShard{stream: streamName(in.StreamName, in.StreamARN), shard: in.ShardId, at: p.now()})
		p.mu.Unlock()
	}
	return res
}

// getRecords meters a GetRecords call against its shard: 5 calls/s, and no
// call while the shard's read bytes are in debt; the bytes returned are
// charged after the call, so a large read throttles the next ones.
func (p *Proxy) getRecords(r *http.Request, body []byte) *response {
	var in struct{ ShardIterator string }
	if json.Unmarshal(body, &in) != nil {
		return p.unmetered(r, body)
	}
	now := p.now()
	p.mu.Lock()
	is, ok := p.iters[in.ShardIterator]
	if !ok {
		p.mu.Unlock()
		return p.unmetered(r, body) // an iterator got before the proxy started
	}
	p.stats.GetRecordsCalls++
	b := p.bucketsLocked(p.streamLocked(is.stream), is.shard, now)
	if !b.admitRead(now) {
		p.stats.GetRecordsThrottled++
		p.mu.Unlock()
		return awsError(http.StatusBadRequest, codeThrottle, p.readThrottleMsg(is.stream, is.shard))
	}
	p.mu.Unlock()
	res := p.forward(r, body)
	if res.status != http.StatusOK {
		return res
	}
	var out struct {
		Records []struct {
			Data         string
			PartitionKey string
		}
		NextShardIterator string
		ChildShards       []json.RawMessage
	}
	if json.Unmarshal(res.body, &out) != nil {
		return res
	}
	n := 0
	for _, rec := range out.Records {
		n += dataLen(rec.Data) + len(rec.PartitionKey)
	}
	p.mu.Lock()
	b.chargeRead(n)
	p.stats.ReadRecords += int64(len(out.Records))
	p.stats.ReadBytes += int64(n)
	p.rememberIteratorLocked(out.NextShardIterator, iterShard{stream: is.stream, shard: is.shard, at: p.now()})
	if len(out.ChildShards) > 0 {
		p.streamLocked(is.stream).stale = true
	}
	p.mu.Unlock()
	return res
}

// Close closes idle connections to the emulator. It does not stop the
// server the proxy is served by.
func (p *Proxy) Close() { p.client.CloseIdleConnections() }
