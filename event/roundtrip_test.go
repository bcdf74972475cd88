package event

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// canonical is what an event looks like after a trip through AppendJSON and
// Unmarshal: v is 1 and empty maps are absent.
func canonical(e Event) Event {
	e.V = Version
	if len(e.Features) == 0 {
		e.Features = nil
	}
	if len(e.Attrs) == 0 {
		e.Attrs = nil
	}
	if len(e.Extra) == 0 {
		e.Extra = nil
	}
	return e
}

// checkRoundTrip asserts Unmarshal(AppendJSON(e)) equals canonical(e), and
// that re-encoding gives the same bytes.
func checkRoundTrip(t *testing.T, e Event) {
	t.Helper()
	enc := e.AppendJSON(nil)
	var back Event
	if err := Unmarshal(enc, &back); err != nil {
		t.Fatalf("decoding %s: %v", enc, err)
	}
	if want := canonical(e); !reflect.DeepEqual(back, want) {
		t.Fatalf("round trip changed the event\n json %s\n got  %#v\n want %#v", enc, back, want)
	}
	if again := back.AppendJSON(nil); !bytes.Equal(again, enc) {
		t.Fatalf("re-encoding differs\n first  %s\n second %s", enc, again)
	}
}

// randomString mixes ASCII, characters JSON must escape and multi-byte UTF-8.
func randomString(r *rand.Rand, maxLen int) string {
	pieces := []string{"a", "Z", "0", "-", " ", "/", ":", "\"", "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "😀", "\u2028", "<", "&", "\ufffd"}
	var b strings.Builder
	for n := r.IntN(maxLen + 1); b.Len() < n; {
		p := pieces[r.IntN(len(pieces))]
		if b.Len()+len(p) > maxLen {
			break
		}
		b.WriteString(p)
	}
	return b.String()
}

func randomFloat(r *rand.Rand) float64 {
	special := []float64{0, math.Copysign(0, -1), 1, 0.1, 0.5, 1e-7, 1e21, 1e300, 5e-324, math.MaxFloat64, -math.MaxFloat64, 1 << 53}
	if r.IntN(3) == 0 {
		return special[r.IntN(len(special))]
	}
	return (r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(40)-20))
}

// randomJSON builds a valid JSON value with irregular formatting.
func randomJSON(r *rand.Rand, depth int) string {
	ws := []string{"", " ", "\n\t "}
	switch k := r.IntN(8); {
	case depth > 3 || k == 0:
		return []string{"null", "true", "false", "0", "-1.50e+3", "12345678901234567890", `""`, `"\u00e9\n"`}[r.IntN(8)]
	case k < 3:
		b, _ := json.Marshal(randomString(r, 10))
		return string(b)
	case k < 5:
		var parts []string
		for range r.IntN(4) {
			parts = append(parts, ws[r.IntN(3)]+randomJSON(r, depth+1)+ws[r.IntN(3)])
		}
		return "[" + strings.Join(parts, ",") + "]"
	default:
		var parts []string
		for i := range r.IntN(4) {
			parts = append(parts, `"k`+strconv.Itoa(i)+`"`+ws[r.IntN(3)]+":"+randomJSON(r, depth+1))
		}
		return "{" + strings.Join(parts, ","+ws[r.IntN(3)]) + "}"
	}
}

func randomTime(r *rand.Rand) time.Time {
	return time.UnixMilli(minTime.UnixMilli() + r.Int64N(maxTime.UnixMilli()-minTime.UnixMilli()+1)).UTC()
}

// randomValidEvent returns an event that passes Validate, with every field
// sometimes set and sometimes absent.
func randomValidEvent(r *rand.Rand) Event {
	opt := func() bool { return r.IntN(2) == 0 }
	e := Event{
		V:    r.IntN(2),
		Type: []string{TypeClick, TypeImpression, TypeAccess, "purchase", "é\"x"}[r.IntN(5)],
		TS:   randomTime(r),
	}
	if r.IntN(8) == 0 {
		e.TS = time.UnixMilli(r.Int64N(2e12)).In(time.FixedZone("X", 3600*(r.IntN(25)-12)))
	}
	if opt() || e.Type == TypeClick || e.Type == TypeImpression {
		e.UserID = randomString(r, MaxUserIDBytes)
		for e.UserID == "" {
			e.UserID = randomString(r, 20)
		}
	}
	if opt() {
		e.ID = randomString(r, 40)
	}
	strs := []*string{&e.SessionID, &e.ItemID, &e.App, &e.Placement, &e.Host, &e.Method, &e.URI, &e.Route, &e.Cache, &e.UserAgent}
	for _, s := range strs {
		if opt() {
			*s = randomString(r, 30)
		}
	}
	if opt() {
		p := r.IntN(math.MaxInt)
		if opt() {
			p = r.IntN(50)
		}
		e.Position = &p
	}
	if opt() {
		e.Features = make(map[string]float64)
		for range r.IntN(6) {
			e.Features[randomString(r, 12)] = randomFloat(r)
		}
	}
	if opt() {
		e.Attrs = make(map[string]string)
		for range r.IntN(4) {
			e.Attrs[randomString(r, 12)] = randomString(r, 12)
		}
	}
	if opt() {
		e.Status = 100 + r.IntN(500)
	}
	if opt() {
		f := math.Abs(randomFloat(r))
		e.RequestTimeMS = &f
	}
	if opt() {
		n := r.Int64N(math.MaxInt64)
		e.Bytes = &n
	}
	if opt() {
		e.ReceivedAt = randomTime(r)
	}
	if r.IntN(4) == 0 {
		e.Extra = make(map[string]json.RawMessage)
		for range r.IntN(4) {
			k := randomString(r, 8)
			if !isContractField(k) {
				e.Extra[k] = json.RawMessage(randomJSON(r, 0))
			}
		}
	}
	e.TS = e.TS.Truncate(time.Millisecond)
	return e
}

func TestRoundTrip_RandomValidEvents(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for i := range 5000 {
		e := randomValidEvent(r)
		if err := e.Validate(); err != nil {
			t.Fatalf("generator made an invalid event #%d: %v", i, err)
		}
		// Decoded times are UTC; compare the instant the encoder writes.
		e.TS = e.TS.UTC()
		checkRoundTrip(t, e)
		if _, err := Decode(e.AppendJSON(nil)); err != nil {
			t.Fatalf("event #%d: Decode(AppendJSON) = %v", i, err)
		}
	}
}

func TestRoundTrip_RealisticCorpus(t *testing.T) {
	for _, b := range benchCorpus(2000) {
		e, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		checkRoundTrip(t, e)
	}
}
