package vectors

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers/vectors/client"
	"github.com/clickstream-go/clickstream/internal/setup"
)

// Sentinel errors.
var (
	// ErrNotFound: no vector is stored for the user. The same error as
	// client.ErrNotFound, so errors.Is works on both sides of the API.
	ErrNotFound = client.ErrNotFound
	// ErrHalfLifeMismatch: the item was written with another half-life than
	// the consumer's; values of two half-lives cannot be combined. Use a new
	// table when changing Config.HalfLife.
	ErrHalfLifeMismatch = errors.New("half-life mismatch")
	// ErrCorruptItem: an item this package cannot interpret (not written by it).
	ErrCorruptItem = errors.New("corrupt vector item")
	// ErrContention: conditional writes kept failing (many concurrent writers of one user).
	ErrContention = errors.New("too many conflicting writes")
	// ErrAtOutOfRange: ?at= so far before the user's events that values overflow.
	ErrAtOutOfRange = errors.New("at is too far before the user's events")
)

// Name is the application's name, its lease namespace (Config.Name may
// override it, to run a second vectors application on one stream).
const Name = "vectors"

// Defaults.
const (
	DefaultHalfLife            = 7 * 24 * time.Hour
	DefaultMaxFeatures         = 500
	DefaultMaxFeatureNameBytes = 256
	DefaultMaxWeight           = 1e6
	DefaultMaxFutureSkew       = time.Hour
	DefaultConcurrency         = 32
	// DefaultEFOCoalesce is Config.Coalesce under enhanced fan-out (`consume --read-mode efo`).
	DefaultEFOCoalesce = 250 * time.Millisecond
	DefaultMaxAttempts = 10
	DefaultRetryBase   = 25 * time.Millisecond
	DefaultRetryMax    = 2 * time.Second
	DefaultMaxRounds   = 16
	DefaultKnownUsers  = 200_000
)

// maxItemBytes leaves headroom under DynamoDB's 400 KB item limit for the
// guards map (one ~80-byte entry per shard that ever held the user) and the
// scalar attributes.
const maxItemBytes = 350 * 1024

// Config configures the vectors processor (`clickstream consume vectors`).
// The zero value of every field means its default.
type Config struct {
	// Name is the application name, the lease namespace. Default "vectors".
	Name string
	// Table is the DynamoDB table (key schema setup.VectorsTable: hash key
	// user_id, S). Default "clickstream-user-vectors".
	Table string
	// HalfLife is H of the decay, in event time. Default 7 days (168h). Fixed
	// for a table's life: items record it, and writing with another value
	// fails with ErrHalfLifeMismatch.
	HalfLife time.Duration
	// MaxFeatures caps the features kept per user. Default 500. An item
	// reaching the cap is pruned to 90% of it, weakest first (|clicks| +
	// |impressions| decayed to the user's landmark, ties by name). Pruning
	// is the one lossy step: a pruned feature's history is gone, and events
	// for it after the prune start from zero. It never double-counts.
	// MaxFeatures × 2 × (MaxFeatureNameBytes + 22) must stay under 350 KB.
	MaxFeatures int
	// MaxFeatureNameBytes: longer feature names are skipped (counted in
	// clickstream_vectors_features_skipped_total{reason="name_too_long"}).
	// Default 256. Empty names are always skipped (DynamoDB rejects them).
	MaxFeatureNameBytes int
	// MaxWeight: features with |weight| above it are skipped (counted,
	// reason="weight_out_of_range"): they could overflow the fixed-point
	// range of 10^18. Default 1e6.
	MaxWeight float64
	// MaxFutureSkew clamps event times to at most this far after the record's
	// Kinesis arrival time (deterministic across replays), so a device with
	// its clock in 2040 cannot push a user's landmark years ahead and fade
	// the rest of the vector. Default 1h; negative disables the clamp.
	MaxFutureSkew time.Duration
	// Concurrency bounds the UpdateItem calls in flight across all shards of
	// the process. Default 32.
	Concurrency int
	// MaxAttempts bounds the attempts of one DynamoDB call on throttling and
	// transient errors (on top of the SDK's own retries); then Process fails
	// and the runtime retries the batch. Default 10.
	MaxAttempts int
	// RetryBase and RetryMax shape the jittered exponential backoff between
	// those attempts. Defaults 25ms and 2s.
	RetryBase, RetryMax time.Duration
	// KnownUsers is how many recently written users the processor
	// remembers (about 100 bytes each). A remembered user's write starts
	// with the ADD (one call); for others it starts with the conditional
	// create when most unremembered users lately were new (one call for a
	// new user instead of two), else with the ADD. Default 200000.
	KnownUsers int
	// Coalesce holds the records of consecutive batches of a shard for up
	// to this long and writes them together: one write per user for all of
	// them instead of one per batch. Enhanced fan-out delivers many small
	// batches (every ~50-200 ms); holding them 250 ms keeps the writes per
	// event where polling has them, at that much latency. Held records are
	// not reported durable, so a crash replays them. Default 0: each batch
	// is written when it arrives.
	Coalesce time.Duration
	// MaxRounds bounds the conditional-write rounds for one user in one
	// batch (each failed condition costs one). Default 16.
	MaxRounds int
	// Logger receives warnings (skipped features, retries). Default: discard.
	Logger *slog.Logger
	// Registerer receives the Prometheus metrics. Default nil: no metrics.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = Name
	}
	if c.Table == "" {
		c.Table = setup.DefaultVectorsTable
	}
	if c.HalfLife == 0 {
		c.HalfLife = DefaultHalfLife
	}
	if c.MaxFeatures == 0 {
		c.MaxFeatures = DefaultMaxFeatures
	}
	if c.MaxFeatureNameBytes == 0 {
		c.MaxFeatureNameBytes = DefaultMaxFeatureNameBytes
	}
	if c.MaxWeight == 0 {
		c.MaxWeight = DefaultMaxWeight
	}
	if c.MaxFutureSkew == 0 {
		c.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryBase == 0 {
		c.RetryBase = DefaultRetryBase
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.MaxRounds == 0 {
		c.MaxRounds = DefaultMaxRounds
	}
	if c.KnownUsers == 0 {
		c.KnownUsers = DefaultKnownUsers
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.HalfLife < time.Millisecond:
		return c, fmt.Errorf("vectors config: half-life %v: must be at least 1ms", c.HalfLife)
	case c.HalfLife > 100*365*24*time.Hour:
		return c, fmt.Errorf("vectors config: half-life %v: must be at most 100 years", c.HalfLife)
	case c.MaxFeatures < 1:
		return c, fmt.Errorf("vectors config: max features %d: must be positive", c.MaxFeatures)
	case c.MaxFeatureNameBytes < 1:
		return c, fmt.Errorf("vectors config: max feature name bytes %d: must be positive", c.MaxFeatureNameBytes)
	case c.MaxFeatures*2*(c.MaxFeatureNameBytes+22) > maxItemBytes:
		return c, fmt.Errorf("vectors config: %d features of up to %d-byte names may exceed DynamoDB's 400 KB item limit",
			c.MaxFeatures, c.MaxFeatureNameBytes)
	case !(c.MaxWeight > 0) || c.MaxWeight > 1e12:
		return c, fmt.Errorf("vectors config: max weight %g: must be in (0, 1e12]", c.MaxWeight)
	case c.Concurrency < 1 || c.MaxAttempts < 1 || c.MaxRounds < 1 || c.KnownUsers < 1:
		return c, errors.New("vectors config: concurrency, max attempts, max rounds and known users must be positive")
	case c.RetryBase <= 0 || c.RetryMax < c.RetryBase:
		return c, errors.New("vectors config: need 0 < retry base <= retry max")
	}
	return c, nil
}

// pruneTo is where an item over the cap is pruned to: 90% of it, so the
// next few new features go through the cheap ADD path again.
func pruneTo(maxFeatures int) int {
	return max(1, maxFeatures-maxFeatures/10)
}
