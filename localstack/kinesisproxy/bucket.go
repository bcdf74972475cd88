package kinesisproxy

import "time"

// bucket is a token bucket that refills at rate tokens per second up to
// capacity, and may run into debt. Hand-written rather than
// golang.org/x/time/rate because the proxy needs two things rate.Limiter
// lacks: taking from two buckets (records and bytes) only if both have
// room, and charging a read's bytes after the call, which AWS does (a
// GetRecords call that returns 10 MiB makes the shard's next calls fail for
// the next seconds, until the debt is repaid at 2 MiB/s).
type bucket struct {
	rate     float64 // tokens per second; <= 0 means unlimited
	capacity float64
	tokens   float64
	last     time.Time
}

func newBucket(rate float64, burst time.Duration, now time.Time) *bucket {
	c := rate * burst.Seconds()
	return &bucket{rate: rate, capacity: c, tokens: c, last: now}
}

func (b *bucket) unlimited() bool { return b.rate <= 0 }

func (b *bucket) refill(now time.Time) {
	if b.unlimited() {
		return
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.capacity, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
}

// fits reports whether cost can be taken now. A full bucket admits a cost
// larger than its capacity (leaving debt), so a limit tighter than the
// largest record slows that record down instead of refusing it forever.
func (b *bucket) fits(now time.Time, cost float64) bool {
	if b.unlimited() {
		return true
	}
	b.refill(now)
	return b.tokens >= cost || b.tokens >= b.capacity
}

// positive reports whether the bucket is out of debt with something left.
func (b *bucket) positive(now time.Time) bool {
	if b.unlimited() {
		return true
	}
	b.refill(now)
	return b.tokens > 0
}

// take removes cost, possibly into debt. Call refill (fits, positive) first.
func (b *bucket) take(cost float64) {
	if !b.unlimited() {
		b.tokens -= cost
	}
}

// wait is how long until the bucket is out of debt (0: now).
func (b *bucket) wait(now time.Time) time.Duration {
	if b.positive(now) {
		return 0
	}
	return time.Duration((-b.tokens + 1) / b.rate * float64(time.Second))
}

// charge refills and then takes cost, possibly into debt.
func (b *bucket) charge(now time.Time, cost float64) {
	if b.unlimited() {
		return
	}
	b.refill(now)
	b.take(cost)
}

// shardBuckets are one shard's four limits.
type shardBuckets struct {
	writeRecords, writeBytes, readCalls, readBytes *bucket
}

func newShardBuckets(l Limits, now time.Time) *shardBuckets {
	return &shardBuckets{
		writeRecords: newBucket(l.WriteRecordsPerSec, l.Burst.D(), now),
		writeBytes:   newBucket(l.WriteBytesPerSec, l.Burst.D(), now),
		readCalls:    newBucket(l.ReadCallsPerSec, l.Burst.D(), now),
		readBytes:    newBucket(l.ReadBytesPerSec, l.Burst.D(), now),
	}
}

// admitWrite takes one record of size bytes if both write buckets have room.
func (s *shardBuckets) admitWrite(now time.Time, size int) bool {
	if !s.writeRecords.fits(now, 1) || !s.writeBytes.fits(now, float64(size)) {
		return false
	}
	s.writeRecords.take(1)
	s.writeBytes.take(float64(size))
	return true
}

// admitRead takes one GetRecords call if the call bucket has room and the
// byte bucket is not in debt; the bytes returned are charged afterwards
// with chargeRead.
func (s *shardBuckets) admitRead(now time.Time) bool {
	if !s.readCalls.fits(now, 1) || !s.readBytes.positive(now) {
		return false
	}
	s.readCalls.take(1)
	return true
}

func (s *shardBuckets) chargeRead(bytes int) { s.readBytes.take(float64(bytes)) }
