package vectors

import (
	"math"
	"strconv"
	"strings"

	"github.com/clickstream-go/clickstream/consumers/leases"
)

// Forward decay with per-user landmarks.
//
// The model (docs/DESIGN.md §4.2) is clicks_f(t) = Σ w·2^(−(t−ts)/H). Forward decay
// stores s = Σ w·2^((ts−L)/H) for a landmark L and scales at read time:
// clicks_f(t) = s·2^((L−t)/H). Every update is then a commutative ADD.
//
// A single landmark for all time would overflow (2^((ts−L)/H) doubles every
// half-life: after 10 years at H = 7 days it is 2^521, beyond both DynamoDB's
// 1e125 and float64's 1e308). So each item carries its own landmark, always a
// point of a fixed grid: T0 + k·EpochHalfLives·H with T0 = 2020-01-01T00:00Z.
// A write uses the grid point at or below the newest event it carries (or the
// item's landmark when that is later, for late events), so every stored term
// has a factor below 2^EpochHalfLives = 256. When a user's events cross into
// the next epoch the item is rebased once (a conditional read-modify-write
// that multiplies every value by 2^((L_old−L_new)/H)) — once per 8 half-lives
// (56 days at the default H) per active user, never on the hot path.
//
// DynamoDB numbers are decimals of at most 38 significant digits, and
// DynamoDB rejects an ADD whose exact result needs more ("DynamoDB only
// supports precision up to 38 digits") instead of rounding. Blind ADDs of
// float-formatted terms of different magnitudes would hit that, so stored
// values are fixed point: every stored value and increment is a multiple of
// 10^−FractionDigits (20) with magnitude below 10^18, so any sum of them needs
// at most 18 + 20 = 38 digits and is exact. Consequences, documented on
// Config: values carry an absolute resolution of 1e-20 (in weight units at
// the user's landmark), hence a relative error ≤ 1e-9 for every feature whose
// value at the landmark is ≥ 5e-12 per write that touched it — e.g. anything
// with a weight-0.01 event in the 100 days before the user's latest event.
// Older contributions keep an absolute error ≤ 1e-20 and fade to zero (the
// entry is deleted at the next rewrite). Sums reaching 10^18 saturate there
// (counted); MaxWeight keeps that out of reach of real traffic.

// Grid and fixed-point constants.
const (
	// EpochHalfLives is the landmark grid step in half-lives.
	EpochHalfLives = 8
	// FractionDigits is the number of decimal places stored values carry.
	FractionDigits = 20
	// maxStored bounds |stored value|: 18 integer digits + 20 decimals = 38.
	maxStored = 1e18
)

// t0ms is T0, the origin of the landmark grid: 2020-01-01T00:00:00Z in
// epoch ms. Any fixed instant works; it only has to be the same for every
// writer of a table, so it is a constant, not a setting.
const t0ms = 1577836800000

// gridLandmark returns the landmark grid point at or below ts (epoch ms) for
// half-life hl (ms).
func gridLandmark(ts, hl int64) int64 {
	step := hl * EpochHalfLives
	d := ts - t0ms
	k := d / step
	if d%step < 0 { // floor division for events before T0
		k--
	}
	return t0ms + k*step
}

// growth is 2^((ts−lm)/hl): the forward-decay factor of an event at ts
// relative to landmark lm. It underflows to 0 for events hundreds of
// half-lives older than the landmark, which is exactly their contribution at
// 1e-20 resolution.
func growth(ts, lm, hl int64) float64 {
	return math.Exp2(float64(ts-lm) / float64(hl))
}

// fixed formats v as a fixed-point DynamoDB number with FractionDigits
// decimals, saturating at ±(10^18 − 1). It reports whether v was zero at
// that resolution and whether it saturated.
func fixed(v float64) (s string, zero, saturated bool) {
	if math.IsNaN(v) {
		return "0", true, false
	}
	if math.Abs(v) >= maxStored {
		if v < 0 {
			return "-999999999999999999", false, true
		}
		return "999999999999999999", false, true
	}
	s = strconv.FormatFloat(v, 'f', FractionDigits, 64)
	s = trimFraction(s)
	return s, s == "0" || s == "-0", false
}

// trimFraction removes trailing fractional zeros (and a bare point) so
// requests stay small; DynamoDB normalises the same way.
func trimFraction(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	s = strings.TrimRight(s, "0")
	s = strings.TrimSuffix(s, ".")
	if s == "-0" || s == "" {
		return "0"
	}
	return s
}

// quantize rounds v to the stored resolution (what fixed would store).
func quantize(v float64) float64 {
	s, _, _ := fixed(v)
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// guardFormat is how vector items store each shard's guard, a position
// whose string order is position order so that a DynamoDB condition
// (`g.#s < :first`) can compare positions: sequence numbers exceed
// DynamoDB's 38-digit numbers, hence a string (leases.SortableFormat).
var guardFormat = leases.SortableFormat{Sep: '.', SubDigits: 19}

func encodeGuard(p leases.Position) string { return guardFormat.Encode(p) }

func decodeGuard(s string) (leases.Position, error) { return guardFormat.Decode(s) }
