package collector

import (
	"crypto/sha256"
	"crypto/subtle"
	"math"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// keyring authenticates bearer keys and holds one rate limiter per key.
// The set of keys is fixed at construction, so the limiter map is bounded.
type keyring struct {
	hashes    [][sha256.Size]byte
	limiters  []*rate.Limiter // limiters[i] belongs to key i
	anonymous *rate.Limiter   // nil unless InsecureNoAuth
}

func newKeyring(cfg Config) *keyring {
	limit := rate.Limit(cfg.RatePerKey)
	if math.IsInf(cfg.RatePerKey, 1) {
		limit = rate.Inf
	}
	k := &keyring{}
	for _, key := range cfg.APIKeys {
		k.hashes = append(k.hashes, sha256.Sum256([]byte(key)))
		k.limiters = append(k.limiters, rate.NewLimiter(limit, cfg.Burst))
	}
	if cfg.InsecureNoAuth {
		k.anonymous = rate.NewLimiter(limit, cfg.Burst)
	}
	return k
}

// authenticate returns the rate limiter of the request's key, or nil when
// the request is not authorized. Keys are compared as SHA-256 digests with
// subtle.ConstantTimeCompare against every configured key, so neither the
// key's length nor how many bytes matched leaks through timing.
func (k *keyring) authenticate(authorization string) *rate.Limiter {
	token, ok := bearerToken(authorization)
	if ok {
		sum := sha256.Sum256([]byte(token))
		match := -1
		for i := range k.hashes {
			if subtle.ConstantTimeCompare(sum[:], k.hashes[i][:]) == 1 {
				match = i
			}
		}
		if match >= 0 {
			return k.limiters[match]
		}
	}
	return k.anonymous
}

func bearerToken(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	t := strings.TrimSpace(h[len(prefix):])
	return t, t != ""
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
