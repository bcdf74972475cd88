package vectors

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// Guards are read back from items: a malformed one is an error, never a
// panic, and a valid one round-trips.
func FuzzDecodeGuard(f *testing.F) {
	f.Add("056" + strings.Repeat("4", 56) + ".0000000000000000003")
	f.Add("0010.0000000000000000000")
	f.Add("")
	f.Add("999.")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := decodeGuard(s)
		if err != nil {
			return
		}
		if back := encodeGuard(p); back != s {
			// Leading zeros are normalised away; the position must survive.
			if q, err := decodeGuard(back); err != nil || q.Compare(p) != 0 {
				t.Fatalf("%q -> %v -> %q", s, p, back)
			}
		}
	})
}

// Query parameters are outside input: the handler answers 200 or 400 (or
// 404 for the fake's unknown user), never 500 and never panics.
func FuzzHandlerQuery(f *testing.F) {
	f.Add("u-42", "20", "2026-11-22T10:00:00Z")
	f.Add("missing", "", "")
	f.Add("a/b", "-1", "not a time")
	f.Add("x", "99999999999999999999", "2026-13-45T99:99:99Z")
	var calls []call
	h, err := NewHandler(fakeGetter(&calls), HandlerConfig{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, user, k, at string) {
		calls = calls[:0]
		switch user {
		case "broken", "throttled", "ancient": // the fake's error users
			return
		case "", ".", "..": // path segments net/http cleans away: not addressable (documented)
			return
		}
		q := url.Values{}
		if k != "" {
			q.Set("k", k)
		}
		if at != "" {
			q.Set("at", at)
		}
		target := "/v1/users/" + url.PathEscape(user) + "/vector?" + q.Encode()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
		switch rec.Code {
		case 200, 400, 404:
		default:
			t.Fatalf("%s: HTTP %d %s", target, rec.Code, rec.Body)
		}
	})
}
