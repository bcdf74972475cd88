package consumers

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers/leases"
)

// Config configures a Runner. Zero fields take the documented defaults.
type Config struct {
	// Stream is the Kinesis stream name. Required.
	Stream string
	// Processor is the application. Required.
	Processor Processor
	// Kinesis is the Kinesis client (*kinesis.Client). Required.
	Kinesis KinesisAPI
	// Leases keeps leases and checkpoints: leases.NewDynamoStore(client,
	// setup.DefaultLeasesTable) in production. Required.
	Leases leases.Store
	// DeadLetter receives bad records before they are handed to the
	// processor: NewS3DeadLetter in production, LogDeadLetter to only log.
	// Required, so bad records are never dropped by omission.
	DeadLetter DeadLetter

	// App is the lease namespace. Default: Processor.Name().
	App string
	// Owner identifies this process in the lease table; it must be unique
	// among running processes. A process restarted with the same Owner takes
	// its leases back at once instead of waiting for them to expire.
	// Default: hostname-pid-random.
	Owner string

	// LeaseDuration is how long a lease survives without renewal before
	// another process may take it; it bounds fail-over time. Default 10s.
	LeaseDuration time.Duration
	// RenewInterval is how often held leases are renewed and the lease
	// table is re-planned (take free, expired and — to balance — stolen
	// leases). Default LeaseDuration/3.
	RenewInterval time.Duration
	// MaxStealsPerRound bounds how many leases this process takes from live
	// owners per RenewInterval when the table is unbalanced. Default 1
	// (negative disables stealing). A new process reaches its fair share of
	// N shards among M processes in about N/M rounds.
	MaxStealsPerRound int
	// ShardSyncInterval is how often the stream's shards are listed to
	// create leases for new shards. Resharding seen in GetRecords
	// (ChildShards) triggers a listing at once. Default 30s.
	ShardSyncInterval time.Duration

	// ReadMode is how shards are read: ReadPoll (GetRecords, default) or
	// ReadEFO (enhanced fan-out: SubscribeToShard through the stream
	// consumer ConsumerName, registered at start if missing). Positions,
	// outputs, de-aggregation, dead letters and resharding order are the
	// same in both. EFO pays off with more than one or two applications on
	// a stream (each gets its own 2 MiB/s per shard instead of sharing 5
	// calls/s) or a latency target (records pushed within ~70 ms instead of
	// polled); AWS bills it per consumer-shard-hour and per GB read.
	ReadMode string
	// ConsumerName is the enhanced fan-out stream consumer (ReadEFO).
	// Default App.
	ConsumerName string

	// MaxRecords is the largest GetRecords Limit. Default 10000 (the maximum).
	MaxRecords int32
	// MaxBytesPerCall sizes each GetRecords call: the Limit is set so a
	// response holds about this many bytes of record data, from the mean
	// record size seen so far on the shard (never above MaxRecords). KPL
	// aggregates of ~10 events made a 10,000-record response ~40 MiB, and a
	// batch of ~100,000 decoded events, per shard; this keeps a process's
	// memory proportional to its shards, not to its lag. 1 MiB/call at 5
	// calls/s is still 2.5× a shard's read limit of 2 MiB/s (which the
	// applications of a stream share), and against 2 MiB it lowered the
	// archive's peak RSS on a fixed 4-shard stream from ~235 to 189 MiB at
	// the same CPU (make bench-archive). Default 1 MiB (negative: no bound,
	// always MaxRecords).
	MaxBytesPerCall int64
	// PollInterval is the minimum time between two GetRecords calls on one
	// shard: 200ms keeps one application at Kinesis's limit of 5 calls/s per
	// shard; with several applications on one stream the limit is shared and
	// throttled calls back off. Default 200ms.
	PollInterval time.Duration
	// IdleInterval is the wait after a poll that returned nothing while
	// caught up (MillisBehindLatest 0). Default 1s.
	IdleInterval time.Duration
	// MaxBackoff caps the back-off after throttling and transient errors
	// (starting at PollInterval, doubling). Default 10s.
	MaxBackoff time.Duration
	// CheckpointInterval is the minimum time between two checkpoint writes
	// of one shard while reading. Checkpoints are always written on Flush
	// (shard end, shutdown), on StateStore.Save and before lease release.
	// Default 1s; a negative value checkpoints after every batch.
	CheckpointInterval time.Duration
	// ShutdownTimeout bounds graceful shutdown (final Flush, checkpoint and
	// release of every shard) after the Run context is cancelled; then the
	// remaining shards are abandoned (their leases expire). Default 30s.
	ShutdownTimeout time.Duration

	// DedupWindow is how long after an event's arrival a copy of it (same
	// event id, same shard) is recognised and marked Duplicate; see
	// DedupWindow the type. It covers a producer's retry of a PutRecords
	// call whose answer was lost: the producer's request timeout (30 s)
	// plus its backoff. A restarted shard re-reads this much of the shard
	// before its checkpoint to rebuild the window. Default 1 minute;
	// negative disables de-duplication.
	DedupWindow time.Duration
	// DedupMaxIDs bounds the ids remembered per shard (22 to 38 bytes of
	// heap each, measured: 2.2-3.8 MB per shard at the default): at 1,000
	// events/s per shard, 100,000 ids hold 100 s. Default 100,000; negative
	// disables de-duplication.
	DedupMaxIDs int

	// Logger receives structured logs. Default: discard.
	Logger *slog.Logger
	// Registerer receives the Prometheus metrics. Default nil: no metrics.
	// Runners of several applications may share one Registerer.
	Registerer prometheus.Registerer
	// Now is the clock (batch times, lease expiry judgement). Default time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultLeaseDuration      = 10 * time.Second
	DefaultShardSyncInterval  = 30 * time.Second
	DefaultMaxRecords         = 10000
	DefaultMaxBytesPerCall    = 1 << 20
	DefaultPollInterval       = 200 * time.Millisecond
	DefaultIdleInterval       = time.Second
	DefaultMaxBackoff         = 10 * time.Second
	DefaultCheckpointInterval = time.Second
	DefaultShutdownTimeout    = 30 * time.Second
	DefaultDedupWindow        = time.Minute
	DefaultDedupMaxIDs        = 100_000
)

// withDefaults validates c and fills in defaults.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.Stream == "" {
		errs = append(errs, errors.New("Stream is required"))
	}
	if c.Processor == nil {
		errs = append(errs, errors.New("Processor is required"))
	}
	if c.Kinesis == nil {
		errs = append(errs, errors.New("Kinesis client is required"))
	}
	if c.Leases == nil {
		errs = append(errs, errors.New("Leases store is required (leases.NewDynamoStore)"))
	}
	if c.DeadLetter == nil {
		errs = append(errs, errors.New("DeadLetter is required (NewS3DeadLetter, or LogDeadLetter to only log)"))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("consumers: invalid config: %w", errors.Join(errs...))
	}
	if c.App == "" {
		c.App = c.Processor.Name()
	}
	if c.App == "" {
		return c, errors.New("consumers: invalid config: App is empty and Processor.Name() returned \"\"")
	}
	if c.Owner == "" {
		c.Owner = DefaultOwner()
	}
	switch c.ReadMode {
	case "", ReadPoll:
		c.ReadMode = ReadPoll
	case ReadEFO:
		if _, ok := c.Kinesis.(FanOutAPI); !ok {
			return c, fmt.Errorf("consumers: invalid config: ReadMode %q needs a Kinesis client with SubscribeToShard (*kinesis.Client), not %T", ReadEFO, c.Kinesis)
		}
		if c.ConsumerName == "" {
			c.ConsumerName = c.App
		}
	default:
		return c, fmt.Errorf("consumers: invalid config: ReadMode %q is neither %q nor %q", c.ReadMode, ReadPoll, ReadEFO)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.LeaseDuration, DefaultLeaseDuration)
	def(&c.RenewInterval, c.LeaseDuration/3)
	if c.RenewInterval >= c.LeaseDuration {
		return c, fmt.Errorf("consumers: invalid config: RenewInterval %v must be shorter than LeaseDuration %v", c.RenewInterval, c.LeaseDuration)
	}
	switch {
	case c.MaxStealsPerRound == 0:
		c.MaxStealsPerRound = 1
	case c.MaxStealsPerRound < 0:
		c.MaxStealsPerRound = 0
	}
	def(&c.ShardSyncInterval, DefaultShardSyncInterval)
	if c.MaxRecords <= 0 || c.MaxRecords > DefaultMaxRecords {
		c.MaxRecords = DefaultMaxRecords
	}
	switch {
	case c.MaxBytesPerCall == 0:
		c.MaxBytesPerCall = DefaultMaxBytesPerCall
	case c.MaxBytesPerCall < 0:
		c.MaxBytesPerCall = 0
	}
	def(&c.PollInterval, DefaultPollInterval)
	def(&c.IdleInterval, DefaultIdleInterval)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	switch {
	case c.CheckpointInterval == 0:
		c.CheckpointInterval = DefaultCheckpointInterval
	case c.CheckpointInterval < 0:
		c.CheckpointInterval = 0
	}
	def(&c.ShutdownTimeout, DefaultShutdownTimeout)
	switch {
	case c.DedupWindow == 0:
		c.DedupWindow = DefaultDedupWindow
	case c.DedupWindow < 0:
		c.DedupWindow = 0
	}
	switch {
	case c.DedupMaxIDs == 0:
		c.DedupMaxIDs = DefaultDedupMaxIDs
	case c.DedupMaxIDs < 0:
		c.DedupMaxIDs = 0
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// DefaultOwner returns hostname-pid-random: unique per process, readable in
// the lease table.
func DefaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}
