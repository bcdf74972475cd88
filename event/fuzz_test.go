package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// Run it for a while with
//
//	go test -run '^$' -fuzz FuzzDecode -fuzztime 60s -fuzzminimizetime 5s ./event/
//
// (a short minimize time: minimizing the 20 KB deep-nesting inputs otherwise
// pauses the fuzzer for up to a minute at a time).

// fuzzSeeds are the seed corpus: valid events of each type, broken JSON,
// wrong types, huge numbers and deep nesting in unknown fields.
func fuzzSeeds() []string {
	seeds := []string{
		`{"v":1,"id":"01JD3","type":"click","ts":"2026-11-22T10:00:00.123Z","user_id":"u-42","session_id":"s-9","item_id":"a-987","app":"ios","placement":"home_feed","position":3,"features":{"cat:sports":1,"tag:soccer":0.5},"attrs":{"ab_bucket":"B"}}`,
		`{"v":1,"type":"impression","ts":1763805600123,"user_id":"u-1","item_id":"a-1","placement":"search","position":0,"features":{"x":-1e-7}}`,
		`{"type":"access","ts":1763805600123,"host":"api-1","method":"GET","uri":"/api/items/123?x=1","route":"/api/items/:id","status":200,"cache":"HIT","request_time_ms":12.5,"bytes":5120,"user_agent":"curl"}`,
		`{"type":"purchase","ts":"2026-11-22T11:00:00.123456+01:00","received_at":1.7e12,"x":{"y":[1,{"z":null}]}}`,
		`{"type":"click","ts":1,"user_id":"\u0075-\ud83d\ude00","\u0069d":"esc"}`,
		`{"type":"click","ts`, `{"type":"click",`, `{`, ``, `[]`, `null`, `"x"`, `{}x`, `{"a":1,}`, "{\"a\":\"\xff\"}",
		`{"ts":true}`, `{"status":"200"}`, `{"features":{"a":"1"}}`, `{"attrs":{"a":1}}`, `{"position":1.5}`, `{"v":"1"}`,
		`{"ts":1e400}`, `{"ts":-1e400}`, `{"bytes":99999999999999999999}`, `{"status":1e308}`, `{"request_time_ms":1e999}`,
		`{"ts":253402300800000}`, `{"ts":-62167219200001}`, `{"features":{"a":1e309}}`, `{"position":-9223372036854775809}`,
		`{"type":"x","ts":1,"deep":` + strings.Repeat(`[{"a":`, 200) + `1` + strings.Repeat(`}]`, 200) + `}`,
		`{"type":"x","ts":1,"deep":` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001) + `}`,
		`{"type":"x","type":"y","ts":1,"ts":null,"features":{"a":1},"features":null}`,
		`{"type":"x","ts":"\ud800"}`, `{"type":"x","ts":1,"s":"\ud800"}`,
	}
	for _, b := range benchCorpus(8) {
		seeds = append(seeds, string(b))
	}
	return seeds
}

// FuzzDecode checks that any input gives an event or an *Error (never a
// panic), that only valid JSON decodes and valid JSON is not called invalid,
// and that every decodable input survives AppendJSON and decoding again.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var e Event
		err := Unmarshal(data, &e)
		_, decErr := Decode(data)
		if err != nil {
			var ee *Error
			if !errors.As(err, &ee) || ee.Reason == "" {
				t.Fatalf("error %v (%T) is not an *Error with a reason", err, err)
			}
			if decErr == nil || decErr.Error() != err.Error() {
				t.Fatalf("Decode error %v differs from Unmarshal error %v", decErr, err)
			}
			if ee.Field == "" && strings.HasPrefix(ee.Reason, "invalid JSON") && json.Valid(data) && utf8.Valid(data) &&
				!bytes.Contains(data, []byte(`\u`)) { // jsontext also rejects escaped lone surrogates
				t.Fatalf("valid JSON reported as %v", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("decoded invalid JSON %q", data)
		}
		if (decErr == nil) != (e.Validate() == nil) {
			t.Fatalf("Decode error %v disagrees with Validate %v", decErr, e.Validate())
		}
		checkRoundTrip(t, e)
	})
}
