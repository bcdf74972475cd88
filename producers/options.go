package producers

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/kpl"
)

// Kinesis limits the producer works within.
const (
	// MaxRecordBytes is the most a Kinesis record may hold: data plus
	// partition key. Put rejects larger user records with ErrRecordTooLarge.
	MaxRecordBytes = 1 << 20
	// MaxRequestRecords is the most records one PutRecords call may carry.
	MaxRequestRecords = 500
	// MaxRequestBytes is the most one PutRecords call may carry: data plus
	// partition keys of all its records.
	MaxRequestBytes = 5 << 20
	// MaxPartitionKeyLength is the longest partition key, in Unicode characters.
	MaxPartitionKeyLength = 256
)

// Defaults of the options.
const (
	DefaultMaxBufferedRecords                 = 50_000
	DefaultMaxBufferedBytes                   = 64 << 20
	DefaultLinger                             = 100 * time.Millisecond
	DefaultAckLinger            time.Duration = 0
	DefaultMaxAggregateBytes                  = 50 << 10 // the KPL's AggregationMaxSize
	DefaultRecordTTL            time.Duration = 0        // no expiry: see WithRecordTTL
	DefaultMinRetryBackoff                    = 100 * time.Millisecond
	DefaultMaxRetryBackoff                    = 2 * time.Second
	DefaultShardRefreshInterval               = time.Minute
	DefaultRequestTimeout                     = 30 * time.Second
	DefaultMaxInFlightRequests                = 16
	DefaultLanesPerShard                      = 8
	DefaultMaxRequestBytes                    = 256 << 10
)

type config struct {
	maxBufferedRecords   int
	maxBufferedBytes     int64
	linger               time.Duration
	ackLinger            time.Duration
	aggregate            bool
	maxAggregateBytes    int
	recordTTL            time.Duration
	minRetryBackoff      time.Duration
	maxRetryBackoff      time.Duration
	onFailure            func(Record, error)
	logger               *slog.Logger
	registerer           prometheus.Registerer
	shardRefreshInterval time.Duration
	requestTimeout       time.Duration
	maxInFlightRequests  int
	lanesPerShard        int
	maxRequestBytes      int
}

func defaultConfig() config {
	return config{
		maxBufferedRecords:   DefaultMaxBufferedRecords,
		maxBufferedBytes:     DefaultMaxBufferedBytes,
		linger:               DefaultLinger,
		ackLinger:            DefaultAckLinger,
		aggregate:            true,
		maxAggregateBytes:    DefaultMaxAggregateBytes,
		recordTTL:            DefaultRecordTTL,
		minRetryBackoff:      DefaultMinRetryBackoff,
		maxRetryBackoff:      DefaultMaxRetryBackoff,
		logger:               slog.Default(),
		shardRefreshInterval: DefaultShardRefreshInterval,
		requestTimeout:       DefaultRequestTimeout,
		maxInFlightRequests:  DefaultMaxInFlightRequests,
		lanesPerShard:        DefaultLanesPerShard,
		maxRequestBytes:      DefaultMaxRequestBytes,
	}
}

func (c *config) validate() error {
	switch {
	case c.maxBufferedRecords < 1:
		return fmt.Errorf("max buffered records %d: must be at least 1", c.maxBufferedRecords)
	case c.maxBufferedBytes < 1:
		return fmt.Errorf("max buffered bytes %d: must be at least 1", c.maxBufferedBytes)
	case c.linger < 0:
		return fmt.Errorf("linger %v: must not be negative", c.linger)
	case c.ackLinger < 0:
		return fmt.Errorf("ack linger %v: must not be negative", c.ackLinger)
	case c.maxAggregateBytes < kpl.Overhead+16 || c.maxAggregateBytes > MaxRecordBytes:
		return fmt.Errorf("max aggregate bytes %d: must be in [%d, %d]", c.maxAggregateBytes, kpl.Overhead+16, MaxRecordBytes)
	case c.minRetryBackoff <= 0 || c.maxRetryBackoff <= 0:
		return fmt.Errorf("retry backoff %v..%v: must be positive", c.minRetryBackoff, c.maxRetryBackoff)
	case c.shardRefreshInterval <= 0:
		return fmt.Errorf("shard refresh interval %v: must be positive", c.shardRefreshInterval)
	case c.requestTimeout <= 0:
		return fmt.Errorf("request timeout %v: must be positive", c.requestTimeout)
	case c.maxInFlightRequests < 1:
		return fmt.Errorf("max in-flight requests %d: must be at least 1", c.maxInFlightRequests)
	case c.lanesPerShard < 1:
		return fmt.Errorf("lanes per shard %d: must be at least 1", c.lanesPerShard)
	case c.maxRequestBytes < 1 || c.maxRequestBytes > MaxRequestBytes:
		return fmt.Errorf("max request bytes %d: must be in [1, %d]", c.maxRequestBytes, MaxRequestBytes)
	case c.logger == nil:
		return fmt.Errorf("logger: must not be nil")
	}
	c.minRetryBackoff = min(c.minRetryBackoff, c.maxRetryBackoff)
	c.ackLinger = min(c.ackLinger, c.linger)
	return nil
}

// Option configures a Producer.
type Option func(*config)

// WithMaxBufferedRecords bounds how many user records the producer holds:
// from Put until Kinesis acknowledged them or they finally failed. At the
// bound Put blocks and TryPut fails with ErrBufferFull. Default 50,000.
func WithMaxBufferedRecords(n int) Option { return func(c *config) { c.maxBufferedRecords = n } }

// WithMaxBufferedBytes bounds the bytes (data, partition key and explicit
// hash key) of the buffered user records, like WithMaxBufferedRecords. A
// record is always admitted into an empty buffer. Default 64 MiB.
func WithMaxBufferedBytes(n int64) Option { return func(c *config) { c.maxBufferedBytes = n } }

// WithLinger sets how long a record may wait for more records to share its
// PutRecords call (and aggregate) while its shard is idle. Full aggregates
// and full calls go at once, and records arriving while a shard's previous
// call is in flight batch up regardless. 0 sends as soon as possible.
// Default 100ms, as the KPL's RecordMaxBufferedTime.
func WithLinger(d time.Duration) Option { return func(c *config) { c.linger = d } }

// WithAckLinger sets how long a record of an acknowledged batch
// (TryPutBatchAck, PutBatchAck, PutBatchWait) may linger: someone is
// waiting for it, and its lane sends once the earliest such record is due,
// taking the lane's other records along. Records arriving while a lane's
// call is in flight still batch up, so under load acknowledged records
// share calls and aggregates much like lingered ones (group commit), and at
// low load a waiter pays one PutRecords round trip instead of linger + round
// trip. Capped at WithLinger. Default 0.
func WithAckLinger(d time.Duration) Option { return func(c *config) { c.ackLinger = d } }

// WithAggregation turns KPL aggregation on or off. On, the user records
// bound for one shard are packed into aggregated Kinesis records (package
// kpl), which lifts the 1,000 records/s per shard limit; consumers must
// de-aggregate (the KCL, the Lambda KPL libraries, and this project's
// consumers do). Off, each user record is one Kinesis record. Default on.
func WithAggregation(on bool) Option { return func(c *config) { c.aggregate = on } }

// WithMaxAggregateBytes bounds the size of one aggregated Kinesis record
// (magic, protobuf and checksum); the partition key comes on top, within
// Kinesis' 1 MiB per record. A full aggregate is sent without lingering.
// Aggregates of tens of KiB keep calls small and pipelined and keep Lambda
// batches well under their payload limit; the emulators measured slower per
// byte with 1 MiB records. Default 50 KiB, as the KPL's AggregationMaxSize.
func WithMaxAggregateBytes(n int) Option { return func(c *config) { c.maxAggregateBytes = n } }

// WithRecordTTL bounds how long the producer tries to deliver a record,
// counted from Put: buffering, lingering and retries included. Expired
// records are failures like any other: counted, passed to the failure
// callback with ErrRecordExpired and reported by the next Flush or Close
// (or the batch's acknowledgement). An aggregate expires with its oldest
// record.
//
// With a TTL set, Put also waits — back-pressure before expiry — while the
// oldest buffered record has waited more than half the TTL: a record
// admitted then would queue behind a backlog that already takes that long
// to drain. (This is CoDel's idea, queueing delay rather than queue length
// as the signal, so it adapts to whatever rate the stream absorbs.)
//
// Default 0: no expiry. A record is delivered, rejected permanently, or
// abandoned when Close's context ends; a slow or throttled stream fills the
// buffer and makes Put wait (WithMaxBufferedRecords). The KPL's RecordTtl
// defaults to 30 s and fails records through their futures, which loses
// data whenever a stream absorbs less than the buffer holds in 30 s; like
// franz-go's default (no delivery timeout), this producer prefers waiting.
func WithRecordTTL(d time.Duration) Option { return func(c *config) { c.recordTTL = d } }

// WithMaxRetryBackoff caps the jittered exponential backoff before a shard's
// failed records are retried. The backoff starts at 100ms (or the cap, if
// lower) and doubles per consecutive failure of the shard. Default 2s.
func WithMaxRetryBackoff(d time.Duration) Option { return func(c *config) { c.maxRetryBackoff = d } }

// WithOnFailure sets the callback for user records that finally failed
// (expired, rejected permanently, or abandoned by Close), with the reason.
// It runs on one producer goroutine, in order; the records count as buffered
// until it returns, so Flush and Close wait for it. It should not block and
// must not call Flush or Close (they would wait for it); to re-enqueue, use
// TryPut. Default: none. With or without it, failures are counted (Stats),
// logged at Warn (rate-limited) and reported by Flush and Close as a
// *FailedError, unless their batch's acknowledgement reported them.
func WithOnFailure(fn func(Record, error)) Option { return func(c *config) { c.onFailure = fn } }

// WithLogger sets the logger; records that finally failed are logged at
// Warn (at most every 5 s, with the count suppressed). Default
// slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithRegisterer registers the producer's Prometheus metrics (prefixed
// clickstream_producer_, labelled with the stream) with r. Two producers on
// one stream need distinct registerers (prometheus.WrapRegistererWith).
// Default nil: no metrics are registered.
func WithRegisterer(r prometheus.Registerer) Option { return func(c *config) { c.registerer = r } }

// WithShardRefreshInterval sets how often the shard map is re-read with
// ListShards. It is also re-read, at most once per second, when Kinesis puts
// a record on a shard other than the expected one. Default 1 minute.
func WithShardRefreshInterval(d time.Duration) Option {
	return func(c *config) { c.shardRefreshInterval = d }
}

// WithRequestTimeout bounds one PutRecords call, SDK retries included; a
// call that times out is retried like a transport error. Default 30s.
func WithRequestTimeout(d time.Duration) Option { return func(c *config) { c.requestTimeout = d } }

// WithMaxInFlightRequests bounds concurrent PutRecords calls; each lane
// (WithLanesPerShard) has at most one in flight whatever this is. Raise it
// for streams of many shards; emulators may do better with fewer (the
// kinesis-local benchmark uses 4). Default 16.
func WithMaxInFlightRequests(n int) Option { return func(c *config) { c.maxInFlightRequests = n } }

// WithLanesPerShard splits each shard's records into n lanes by partition
// key hash. A lane is the unit of ordering: it has at most one PutRecords
// call in flight, and a failed record is retried before anything newer in
// its lane is sent, so each key's records stay in order. More lanes let a
// shard have several aggregates and calls under way at once (throughput
// against high-latency endpoints); 1 gives strict one-call-per-shard
// behaviour and the largest aggregates at low rates. Default 8.
func WithLanesPerShard(n int) Option { return func(c *config) { c.lanesPerShard = n } }

// WithMaxRequestBytes sets the size at which a PutRecords call stops taking
// more records (a single record may exceed it). Smaller calls go out sooner
// and keep several calls in flight; Kinesis' limit is 5 MiB. Default 256 KiB.
func WithMaxRequestBytes(n int) Option { return func(c *config) { c.maxRequestBytes = n } }
