// Package retry is the one backoff and the one context-aware sleep every
// retrying loop of the pipeline uses: the producer's per-shard retries, the
// consumer runtime's reads and checkpoints, the archive's uploads, the
// vector and metric writes, the load generator.
//
// The backoff is capped exponential with "equal jitter": half of each delay
// is fixed, half random, so a loop never retries much sooner than planned
// while many clients throttled together do not retry together. Hand-written
// because it is a dozen lines; the SDK's retryer backs off inside one call,
// and these loops pace whole operations across calls.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay is the wait before the attempt-th retry (1-based): min doubled
// attempt−1 times, capped at max, with equal jitter: in [d/2, d].
func Delay(attempt int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max || d <= 0 {
		d = max
	}
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// Backoff counts consecutive failures of one loop. The zero value is not
// usable: set Min and Max.
type Backoff struct {
	Min, Max time.Duration
	attempt  int
}

// Next returns the wait before the next retry and counts it.
func (b *Backoff) Next() time.Duration {
	b.attempt++
	return Delay(b.attempt, b.Min, b.Max)
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Sleep waits d, or returns ctx's error when ctx ends first.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
