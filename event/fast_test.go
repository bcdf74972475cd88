package event

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fastSeeds are inputs at the edges of what the fast path takes: every
// field type with null, empty and odd values, numbers of every shape,
// non-ASCII and control characters, nesting, whitespace, and near-misses of
// the grammar that it must hand to the tokenizer.
func fastSeeds() []string {
	return []string{
		`{}`, ` { } `, "\t{\"type\":\"x\",\"ts\":1}\r\n", `{"type":"x","ts":1}x`, `{"type":"x","ts":1,}`, `{"type":"x" "ts":1}`,
		`{"id":null,"type":null,"ts":null,"received_at":null,"v":null,"status":null,"position":null,"bytes":null,"request_time_ms":null,"features":null,"attrs":null}`,
		`{"features":{},"attrs":{}}`, `{"features":{"a":1,"a":2},"features":{"b":-0.5e-3}}`, `{"attrs":{"k":"v","k":""}}`,
		`{"ts":0}`, `{"ts":-0}`, `{"ts":1.0}`, `{"ts":1e3}`, `{"ts":1.5}`, `{"ts":01}`, `{"ts":-}`, `{"ts":1.}`, `{"ts":.5}`, `{"ts":1e}`, `{"ts":+1}`,
		`{"ts":"2026-11-22T10:00:00Z"}`, `{"ts":"2026-11-22t10:00:00z"}`, `{"ts":"2026-11-22 10:00:00.123456789+05:30"}`, `{"ts":"nope"}`,
		`{"ts":253402300799999}`, `{"ts":253402300800000}`, `{"ts":"0000-01-01T00:00:00Z"}`, `{"ts":"10000-01-01T00:00:00Z"}`,
		`{"v":1.0,"status":2e2,"position":3,"bytes":9007199254740993,"request_time_ms":1e308}`, `{"request_time_ms":1e309}`,
		`{"position":-1}`, `{"position":1e20}`, `{"status":"200"}`, `{"status":true}`, `{"user_id":5}`, `{"features":{"a":"1"}}`, `{"attrs":{"a":1}}`,
		`{"features":[]}`, `{"attrs":"x"}`, `{"type":"é","user_id":"ü-€-😀"}`, "{\"type\":\"\xff\"}", "{\"type\":\"\xed\xa0\x80\"}", "{\"type\":\"a\x01b\"}",
		"{\"type\":\"a\x7fb\"}", `{"type":"a\"b"}`, `{"type":"\u0041"}`, `{"x\/y":1}`, `{"é":1}`,
		`{"x":{"y":[1,2.5,-3e2,true,false,null,"s",{},[]]},"z":[]}`, `{"x":[1,]}`, `{"x":{"a"}}`, `{"x":tru}`, `{"x":nul}`,
		`{"x":` + strings.Repeat(`[`, 70) + strings.Repeat(`]`, 70) + `}`, `{"x":` + strings.Repeat(`{"a":`, 63) + `1` + strings.Repeat(`}`, 63) + `}`,
		`{"type":"x","type":"y"}`, `{"extra":1,"extra":{"a":2}}`, `{"type":"x"`, `{"type":`, `{"type"`, `{"`, `{`, ``, ` `, `[]`, `"x"`, `1`, `null`,
	}
}

// checkFastAgrees decodes data with Unmarshal (fast path, then the
// tokenizer) and with the tokenizer alone: the two must agree exactly.
func checkFastAgrees(t *testing.T, data []byte) {
	t.Helper()
	var got, want Event
	gotErr, wantErr := Unmarshal(data, &got), unmarshalTokens(data, &want)
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("%q: error %v, the tokenizer says %v", data, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", data, got, want)
	}
}

func TestFastPath_AgreesWithTheTokenizer(t *testing.T) {
	for _, s := range append(fastSeeds(), fuzzSeeds()...) {
		checkFastAgrees(t, []byte(s))
	}
	for _, b := range benchCorpus(2000) {
		checkFastAgrees(t, b)
	}
}

// TestFastPath_TakesWhatProducersSend: the fast path is only worth having
// if it decodes the records producers send; each of these must not fall
// back to the tokenizer.
func TestFastPath_TakesWhatProducersSend(t *testing.T) {
	recs := append(benchCorpus(500), []byte(`{"type":"click","ts":1,"user_id":"u","x":{"deep":[1,{"a":null}]}}`),
		[]byte(`{"type":"access","ts":"2026-11-22T10:00:00.123+01:00","uri":"/é?q=ü","status":200,"request_time_ms":0.5}`))
	for _, b := range recs {
		var e Event
		s := statePool.Get().(*decodeState)
		ok := s.fast(b, &e)
		s.release()
		statePool.Put(s)
		if !ok {
			t.Errorf("fell back to the tokenizer for %s", b)
		}
	}
}

// FuzzFastPathAgrees: on any input the fast path either gives up or
// decodes exactly what the tokenizer decodes.
//
//	go test -run '^$' -fuzz FuzzFastPathAgrees -fuzztime 60s ./event/
func FuzzFastPathAgrees(f *testing.F) {
	for _, s := range append(fastSeeds(), fuzzSeeds()...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkFastAgrees(t, data) })
}

// parseUTCMillis gives time.Parse's instant for every timestamp it takes,
// and takes every valid one of the forms producers send: checked on every
// day of 2023-2025 and of leap and century years, at several times and
// fractions, and on near misses (days past a month's end, hours, minutes
// and seconds out of range, wrong separators, a fourth fraction digit).
func TestParseUTCMillis_AgreesWithTimeParse(t *testing.T) {
	check := func(s string) {
		t.Helper()
		got, ok := parseUTCMillis(s)
		want, err := time.Parse(time.RFC3339Nano, s)
		if ok && (err != nil || got != want.UTC()) {
			t.Fatalf("%q: %v, time.Parse gives %v (%v)", s, got, want, err)
		}
	}
	mustTake := func(s string) {
		t.Helper()
		if _, ok := parseUTCMillis(s); !ok {
			t.Fatalf("%q: not taken", s)
		}
		check(s)
	}
	for _, year := range []int{1, 4, 100, 400, 1600, 1900, 1970, 1999, 2000, 2023, 2024, 2025, 2100, 9999} {
		for month := 1; month <= 12; month++ {
			for day := 0; day <= 32; day++ {
				for _, clock := range []string{"00:00:00", "23:59:59", "12:34:56", "24:00:00", "23:60:00", "23:59:60", "1x:00:00"} {
					for _, frac := range []string{"", ".1", ".12", ".123", ".1234", "."} {
						s := fmt.Sprintf("%04d-%02d-%02dT%s%sZ", year, month, day, clock, frac)
						check(s)
						check(strings.Replace(s, "T", "t", 1))
						check(strings.Replace(s, "-", "/", 1))
					}
				}
			}
		}
	}
	for d := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2026; d = d.Add(24*time.Hour + 1234567*time.Millisecond%time.Hour) {
		mustTake(d.Format("2006-01-02T15:04:05.000Z"))
		mustTake(d.Format("2006-01-02T15:04:05Z"))
	}
	for _, s := range []string{"2024-02-29T00:00:00Z", "2000-02-29T10:00:00.5Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"} {
		mustTake(s)
	}
	for _, s := range []string{"2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2024-04-31T00:00:00Z", "0000-01-01T00:00:00Z", "2024-01-01T00:00:00+00:00", "2024-01-01 00:00:00Z", "+024-01-01T00:00:00Z"} {
		if _, ok := parseUTCMillis(s); ok {
			t.Fatalf("%q: taken", s)
		}
	}
}
