package kinesisproxy

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Per-shard limits of Kinesis Data Streams (provisioned and on-demand alike).
const (
	AWSWriteBytesPerSec   = 1 << 20
	AWSWriteRecordsPerSec = 1000
	AWSReadCallsPerSec    = 5
	AWSReadBytesPerSec    = 2 << 20
	// Enhanced fan-out, per registered consumer and shard.
	AWSSubscribeCallsPerSec = 1
	AWSFanOutBytesPerSec    = 2 << 20
	// AWSSubscriptionLifetime: AWS ends every SubscribeToShard stream after this.
	AWSSubscriptionLifetime = 5 * time.Minute
	DefaultBurst            = time.Second
)

// Limits are the per-shard throughput limits the proxy enforces. A zero
// field takes the AWS value; a negative one means no limit.
type Limits struct {
	WriteBytesPerSec   float64 `json:"write_bytes_per_sec"`   // default 1 MiB (data + partition key)
	WriteRecordsPerSec float64 `json:"write_records_per_sec"` // default 1,000
	ReadCallsPerSec    float64 `json:"read_calls_per_sec"`    // default 5 GetRecords calls
	ReadBytesPerSec    float64 `json:"read_bytes_per_sec"`    // default 2 MiB
	// Enhanced fan-out, per registered consumer and shard.
	SubscribeCallsPerSec float64 `json:"subscribe_calls_per_sec"` // default 1 SubscribeToShard call
	FanOutBytesPerSec    float64 `json:"fan_out_bytes_per_sec"`   // default 2 MiB pushed
	// Burst is how much unused capacity a shard saves up: each bucket holds
	// Burst × rate. Default 1s.
	Burst Duration `json:"burst"`
}

// AWSLimits are the real per-shard limits.
func AWSLimits() Limits { return Limits{}.withDefaults() }

// NoLimits turns every limit off (faults only).
func NoLimits() Limits {
	return Limits{WriteBytesPerSec: -1, WriteRecordsPerSec: -1, ReadCallsPerSec: -1, ReadBytesPerSec: -1,
		SubscribeCallsPerSec: -1, FanOutBytesPerSec: -1}.withDefaults()
}

func (l Limits) withDefaults() Limits {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.WriteBytesPerSec, AWSWriteBytesPerSec)
	def(&l.WriteRecordsPerSec, AWSWriteRecordsPerSec)
	def(&l.ReadCallsPerSec, AWSReadCallsPerSec)
	def(&l.ReadBytesPerSec, AWSReadBytesPerSec)
	def(&l.SubscribeCallsPerSec, AWSSubscribeCallsPerSec)
	def(&l.FanOutBytesPerSec, AWSFanOutBytesPerSec)
	if l.Burst <= 0 {
		l.Burst = Duration(DefaultBurst)
	}
	return l
}

// Faults are injected on top of the limits, each with its own probability
// per request (per entry for ErrorRate on PutRecords). Faults apply to the
// operations in Operations.
type Faults struct {
	// ErrorRate: the request fails with ProvisionedThroughputExceededException
	// (HTTP 400) without reaching the emulator. On PutRecords it is per
	// entry, as AWS throttles: the entry gets ErrorCode/ErrorMessage and is
	// not written, the others are.
	ErrorRate float64 `json:"error_rate"`
	// Status500Rate: the request fails with 500 InternalFailure without
	// reaching the emulator.
	Status500Rate float64 `json:"status500_rate"`
	// DropRate: the connection is closed before the request is forwarded:
	// nothing is written, the client sees a transport error.
	DropRate float64 `json:"drop_rate"`
	// DropAfterRate: the request is forwarded and its effect happens, then
	// the connection is closed: the client cannot know (the case that makes
	// retries write duplicates).
	DropAfterRate float64 `json:"drop_after_rate"`
	// Latency is added before the request is handled, plus a uniform random
	// part up to Jitter.
	Latency Duration `json:"latency"`
	Jitter  Duration `json:"jitter"`
	// Operations the faults apply to, e.g. "PutRecords"; "*" means all.
	// Default: PutRecord, PutRecords, GetRecords, GetShardIterator, ListShards.
	Operations []string `json:"operations,omitempty"`
}

// DefaultFaultOperations are the data-plane operations faults apply to when
// Faults.Operations is empty.
var DefaultFaultOperations = []string{"PutRecord", "PutRecords", "GetRecords", "GetShardIterator", "ListShards"}

func (f Faults) appliesTo(op string) bool {
	ops := f.Operations
	if len(ops) == 0 {
		ops = DefaultFaultOperations
	}
	return slices.Contains(ops, "*") || slices.Contains(ops, op)
}

func (f Faults) validate() error {
	for name, p := range map[string]float64{"error_rate": f.ErrorRate, "status500_rate": f.Status500Rate,
		"drop_rate": f.DropRate, "drop_after_rate": f.DropAfterRate} {
		if p < 0 || p > 1 {
			return fmt.Errorf("faults: %s %v is not a probability in [0, 1]", name, p)
		}
	}
	if f.Latency < 0 || f.Jitter < 0 {
		return fmt.Errorf("faults: negative latency")
	}
	return nil
}

// Config configures a Proxy.
type Config struct {
	// Upstream is the Kinesis emulator's base URL, e.g. http://127.0.0.1:4668. Required.
	Upstream string
	// Limits enforced per shard; zero fields take the AWS values.
	Limits Limits
	// Faults injected from the start; change them with SetFaults or POST /__faults.
	Faults Faults
	// ShardRefreshInterval: how old a stream's shard map may get before the
	// next request reads it again from the emulator. Resharding calls made
	// through the proxy, ChildShards in GetRecords answers and an emulator
	// putting a record on another shard than the proxy routed it to all
	// refresh it sooner. Default 2s.
	ShardRefreshInterval time.Duration
	// SubscriptionLifetime ends each SubscribeToShard stream after this
	// long, as AWS does after 5 minutes; shorter makes consumers
	// re-subscribe often (tests). Default AWSSubscriptionLifetime.
	SubscriptionLifetime time.Duration
	// FanOutPoll is how often a subscription reads an idle shard from the
	// emulator: the push latency (AWS: about 70 ms). Default 50ms.
	FanOutPoll time.Duration
	// FanOutHeartbeat: an idle subscription sends an empty event this
	// often. Default 1s.
	FanOutHeartbeat time.Duration
	// ConsumerActivation is how long a consumer the proxy registers stays
	// CREATING (AWS: seconds). Default 500ms.
	ConsumerActivation time.Duration
	// Account is the account id in error messages. Default 000000000000.
	Account string
	// Seed seeds the fault dice (0: a fixed default, so runs repeat).
	Seed uint64
	// Logger; default discards.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Duration is a time.Duration that reads and writes JSON as "50ms".
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n float64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration: want a string like \"50ms\": %w", err)
		}
		*d = Duration(time.Duration(n * float64(time.Second))) // a bare number is seconds
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
