// Package decimal parses the plain decimal numbers that fill clickstream's
// JSON — arrival times ("1733412345.678"), feature weights ("0.5"),
// positions and statuses — faster than strconv, and exactly as strconv
// does. strconv's general parse (signs, exponents, hex, underscores,
// special values) was a third of decoding an event's numbers; anything
// these functions do not take is left to strconv.
package decimal

// pow10 are the powers of ten a float64 holds exactly.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// Float parses an optional minus sign and digits with an optional fraction,
// at most 15 digits in all: the digits as an integer m < 2^53 and 10^k are
// both exact, so m / 10^k, rounded once, is the float64 nearest the
// decimal, which is what strconv.ParseFloat returns (Clinger's fast path,
// strconv's own), without its general parse. False for anything else.
func Float(v []byte) (float64, bool) {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		v = v[1:]
	}
	var m uint64
	digits, frac := 0, -1
	for i, c := range v {
		switch {
		case c >= '0' && c <= '9':
			m = m*10 + uint64(c-'0')
			digits++
		case c == '.' && frac < 0 && i > 0 && i < len(v)-1:
			frac = digits
		default:
			return 0, false
		}
	}
	if digits == 0 || digits > 15 {
		return 0, false
	}
	k := 0
	if frac >= 0 {
		k = digits - frac
	}
	f := float64(m) / pow10[k]
	if neg {
		f = -f
	}
	return f, true
}

// Int parses an optional minus sign and 1 to 18 digits (always within
// int64), as strconv.ParseInt(s, 10, 64) does. False for anything else.
func Int(v []byte) (int64, bool) {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		v = v[1:]
	}
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}
