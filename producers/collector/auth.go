package collector

import (
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/clickstream-go/clickstream/internal/apikey"
)

// keyring authenticates bearer keys and holds one rate limiter per key.
// The set of keys is fixed at construction, so the limiter map is bounded.
type keyring struct {
	keys      *apikey.Keyring
	limiters  []*rate.Limiter // limiters[i] belongs to key i
	anonymous *rate.Limiter   // nil unless InsecureNoAuth
}

func newKeyring(cfg Config) *keyring {
	limit := rate.Limit(cfg.RatePerKey)
	if math.IsInf(cfg.RatePerKey, 1) {
		limit = rate.Inf
	}
	k := &keyring{keys: apikey.New(cfg.APIKeys)}
	for range k.keys.Len() {
		k.limiters = append(k.limiters, rate.NewLimiter(limit, cfg.Burst))
	}
	if cfg.InsecureNoAuth {
		k.anonymous = rate.NewLimiter(limit, cfg.Burst)
	}
	return k
}

// authenticate returns the rate limiter of the request's key, or nil when
// the request is not authorized (keys compared in constant time, see
// apikey.Keyring.Match).
func (k *keyring) authenticate(authorization string) *rate.Limiter {
	if i := k.keys.Match(authorization); i >= 0 {
		return k.limiters[i]
	}
	return k.anonymous
}

// reserve takes n events from the limiter at now. It returns 0 when they
// may pass, or how long the client should wait before retrying; nothing is
// taken in that case. The returned undo gives the tokens back (used when
// the request fails later, e.g. the sink is full) and is never nil.
func reserve(lim *rate.Limiter, now time.Time, n int) (wait time.Duration, undo func()) {
	r := lim.ReserveN(now, n)
	if !r.OK() { // n > burst: cannot happen, New enforces Burst ≥ MaxEvents
		return time.Second, func() {}
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, func() {}
	}
	return 0, func() { r.CancelAt(now) }
}
