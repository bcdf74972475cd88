package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

func ptr[T any](v T) *T { return &v }

func ms(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestUnmarshal_DecodesContractExamples(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Event
	}{
		{
			name: "click",
			in: `{"v":1, "id":"01JD3XYZ", "type":"click", "ts":"2026-11-22T10:00:00.123Z",
			 "user_id":"u-42", "session_id":"s-9", "item_id":"a-987", "app":"ios",
			 "placement":"home_feed", "position":3,
			 "features":{"cat:sports":1, "tag:soccer":0.5},
			 "attrs":{"ab_bucket":"B"}}`,
			want: Event{
				V: 1, ID: "01JD3XYZ", Type: TypeClick, TS: ms("2026-11-22T10:00:00.123Z"),
				UserID: "u-42", SessionID: "s-9", ItemID: "a-987", App: "ios", Placement: "home_feed",
				Position: ptr(3), Features: map[string]float64{"cat:sports": 1, "tag:soccer": 0.5},
				Attrs: map[string]string{"ab_bucket": "B"},
			},
		},
		{
			name: "access",
			in: `{"type":"access", "ts":1763805600123, "host":"api-1", "method":"GET",
			 "uri":"/api/items/123?x=1", "route":"/api/items/:id", "status":200,
			 "cache":"HIT", "request_time_ms":12.5, "bytes":5120, "user_agent":"curl/8.5",
			 "received_at":"2025-11-22T10:00:01.5+00:00"}`,
			want: Event{
				Type: TypeAccess, TS: time.UnixMilli(1763805600123).UTC(), Host: "api-1", Method: "GET",
				URI: "/api/items/123?x=1", Route: "/api/items/:id", Status: 200, Cache: "HIT",
				RequestTimeMS: ptr(12.5), Bytes: ptr[int64](5120), UserAgent: "curl/8.5",
				ReceivedAt: ms("2025-11-22T10:00:01.500Z"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestUnmarshal_TimeFormats(t *testing.T) {
	tests := []struct {
		in      string // the JSON value of ts
		want    string // RFC 3339 in UTC; "" for absent
		wantErr string
	}{
		{in: `"2026-11-22T10:00:00.123Z"`, want: "2026-11-22T10:00:00.123Z"},
		{in: `"2026-11-22T10:00:00Z"`, want: "2026-11-22T10:00:00Z"},
		{in: `"2026-11-22T11:30:00.5+01:30"`, want: "2026-11-22T10:00:00.5Z"},
		{in: `"2026-11-22T05:00:00-05:00"`, want: "2026-11-22T10:00:00Z"},
		{in: `"2026-11-22T00:30:00-23:59"`, want: "2026-11-23T00:29:00Z"},
		{in: `"2026-11-22T10:00:00.123999999Z"`, want: "2026-11-22T10:00:00.123Z"}, // truncated, not rounded
		{in: `"2026-11-22T10:00:00.9999Z"`, want: "2026-11-22T10:00:00.999Z"},
		{in: `"2026-11-22t10:00:00.1z"`, want: "2026-11-22T10:00:00.1Z"}, // RFC 3339 allows lowercase
		{in: `"2026-11-22 10:00:00Z"`, want: "2026-11-22T10:00:00Z"},     // and a space
		{in: `"0000-06-01T00:00:00.1239Z"`, want: "0000-06-01T00:00:00.123Z"},
		{in: `"0000-01-01T00:30:00+01:00"`, wantErr: `ts: out of range (years 0000-9999), got "0000-01-01T00:30:00+01:00"`},
		{in: `"2026-11-22X10:00:00z"`, wantErr: `ts: must be an RFC 3339 string or epoch milliseconds, got "2026-11-22X10:00:00z"`},
		{in: `"\u0032026-11-22T10:00:00Z"`, want: "2026-11-22T10:00:00Z"},
		{in: `1763805600123`, want: "2025-11-22T10:00:00.123Z"},
		{in: `1.7e12`, want: "2023-11-14T22:13:20Z"},
		{in: `1763805600123.0`, want: "2025-11-22T10:00:00.123Z"},
		{in: `0`, want: "1970-01-01T00:00:00Z"},
		{in: `-1`, want: "1969-12-31T23:59:59.999Z"},
		{in: `-62167219200000`, want: "0000-01-01T00:00:00Z"},
		{in: `253402300799999`, want: "9999-12-31T23:59:59.999Z"},
		{in: `null`, want: ""},
		{in: `253402300800000`, wantErr: "ts: out of range (years 0000-9999), got 253402300800000"},
		{in: `-62167219200001`, wantErr: "ts: out of range (years 0000-9999), got -62167219200001"},
		{in: `1e20`, wantErr: "ts: out of range (years 0000-9999), got 1e20"},
		{in: `1e400`, wantErr: "ts: out of range (years 0000-9999), got 1e400"},
		{in: `99999999999999999999`, wantErr: "ts: out of range (years 0000-9999), got 99999999999999999999"},
		{in: `1763805600123.5`, wantErr: "ts: must be an RFC 3339 string or epoch milliseconds, got 1763805600123.5"},
		{in: `true`, wantErr: "ts: must be an RFC 3339 string or epoch milliseconds, got true"},
		{in: `{}`, wantErr: "ts: must be an RFC 3339 string or epoch milliseconds, got object"},
		{in: `"yesterday"`, wantErr: `ts: must be an RFC 3339 string or epoch milliseconds, got "yesterday"`},
		{in: `"2026-11-22"`, wantErr: `ts: must be an RFC 3339 string or epoch milliseconds, got "2026-11-22"`},
		{in: `"2026-11-22T10:00:00"`, wantErr: `ts: must be an RFC 3339 string or epoch milliseconds, got "2026-11-22T10:00:00"`},
		{in: `"1763805600123"`, wantErr: `ts: must be an RFC 3339 string or epoch milliseconds, got "1763805600123"`},
		{in: `"2026-13-22T10:00:00Z"`, wantErr: `ts: must be an RFC 3339 string or epoch milliseconds, got "2026-13-22T10:00:00Z"`},
		{in: `"` + strings.Repeat("9", 100) + `"`, wantErr: `ts: must be an RFC 3339 string or epoch milliseconds, got "` + strings.Repeat("9", 64) + `…"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			for _, field := range []string{"ts", "received_at"} {
				var e Event
				err := Unmarshal([]byte(`{"`+field+`":`+tt.in+`}`), &e)
				got := e.TS
				if field == "received_at" {
					got = e.ReceivedAt
				}
				if tt.wantErr != "" {
					want := strings.Replace(tt.wantErr, "ts:", field+":", 1)
					if err == nil || err.Error() != want {
						t.Errorf("%s: error %v, want %q", field, err, want)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", field, err)
				}
				if tt.want == "" {
					if !got.IsZero() {
						t.Errorf("%s: got %v, want absent", field, got)
					}
					continue
				}
				if want := ms(tt.want); !got.Equal(want) || got.Location() != time.UTC {
					t.Errorf("%s: got %v, want %v (UTC)", field, got, want)
				}
			}
		})
	}
}

func TestUnmarshal_WrongTypesNameTheField(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"v":"1"}`, "v: must be an integer, got string"},
		{`{"v":1.5}`, "v: must be an integer, got 1.5"},
		{`{"id":7}`, "id: must be a string, got number"},
		{`{"type":["click"]}`, "type: must be a string, got array"},
		{`{"type":true}`, "type: must be a string, got true"},
		{`{"user_id":42}`, "user_id: must be a string, got number"},
		{`{"session_id":{}}`, "session_id: must be a string, got object"},
		{`{"item_id":false}`, "item_id: must be a string, got false"},
		{`{"app":1}`, "app: must be a string, got number"},
		{`{"placement":1}`, "placement: must be a string, got number"},
		{`{"position":"3"}`, "position: must be an integer, got string"},
		{`{"position":3.5}`, "position: must be an integer, got 3.5"},
		{`{"features":[]}`, "features: must be an object, got array"},
		{`{"features":"a"}`, "features: must be an object, got string"},
		{`{"features":{"a":"1"}}`, `features: value of "a" must be a number, got string`},
		{`{"features":{"a":null}}`, `features: value of "a" must be a number, got null`},
		{`{"features":{"a":1e999}}`, `features: value of "a" must be a finite number, got 1e999`},
		{`{"attrs":["a"]}`, "attrs: must be an object, got array"},
		{`{"attrs":{"a":1}}`, `attrs: value of "a" must be a string, got number`},
		{`{"attrs":{"a":null}}`, `attrs: value of "a" must be a string, got null`},
		{`{"host":1}`, "host: must be a string, got number"},
		{`{"method":1}`, "method: must be a string, got number"},
		{`{"uri":1}`, "uri: must be a string, got number"},
		{`{"route":1}`, "route: must be a string, got number"},
		{`{"status":"200"}`, "status: must be an integer, got string"},
		{`{"status":200.5}`, "status: must be an integer, got 200.5"},
		{`{"status":1e20}`, "status: integer out of range, got 1e20"},
		{`{"cache":true}`, "cache: must be a string, got true"},
		{`{"request_time_ms":"12"}`, "request_time_ms: must be a number, got string"},
		{`{"request_time_ms":1e999}`, "request_time_ms: must be a finite number, got 1e999"},
		{`{"bytes":"5"}`, "bytes: must be an integer, got string"},
		{`{"bytes":9223372036854775808}`, "bytes: integer out of range, got 9223372036854775808"},
		{`{"bytes":5.5}`, "bytes: must be an integer, got 5.5"},
		{`{"user_agent":[]}`, "user_agent: must be a string, got array"},
		{`{"received_at":false}`, "received_at: must be an RFC 3339 string or epoch milliseconds, got false"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var e Event
			err := Unmarshal([]byte(tt.in), &e)
			var ee *Error
			if !errors.As(err, &ee) {
				t.Fatalf("error %v (%T), want *Error", err, err)
			}
			if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			if field, _, _ := strings.Cut(tt.want, ":"); ee.Field != field {
				t.Errorf("Field %q, want %q", ee.Field, field)
			}
		})
	}
}

func TestUnmarshal_IntegralNumbersAreIntegers(t *testing.T) {
	var e Event
	if err := Unmarshal([]byte(`{"v":1.0,"status":2e2,"position":0.0,"bytes":9223372036854775807}`), &e); err != nil {
		t.Fatal(err)
	}
	if e.V != 1 || e.Status != 200 || *e.Position != 0 || *e.Bytes != 9223372036854775807 {
		t.Errorf("got v=%d status=%d position=%d bytes=%d", e.V, e.Status, *e.Position, *e.Bytes)
	}
	if err := Unmarshal([]byte(`{"position":-3,"bytes":-1}`), &e); err != nil {
		t.Fatal(err) // negative values are a validation error, not a type error
	}
	if *e.Position != -3 || *e.Bytes != -1 {
		t.Errorf("got position=%d bytes=%d", *e.Position, *e.Bytes)
	}
}

func TestUnmarshal_SyntaxErrorsAreInvalidJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{``, "invalid JSON: unexpected end of input at offset 0"},
		{`   `, "invalid JSON: unexpected end of input at offset 3"},
		{`{"type":"click","ts`, "invalid JSON: unexpected end of input at offset 19"},
		{`{"type":"click"`, "invalid JSON: unexpected end of input at offset 15"},
		{`{"type":"click","`, "invalid JSON: unexpected end of input at offset 17"},
		{`{"type":"\ud83d"}`, "invalid JSON: invalid surrogate pair `\\ud83d\"}` in string at offset 9"},
		{`{"a":1,}`, "invalid JSON: invalid character ',' at start of value at offset 6"},
		{`{"a" 1}`, "invalid JSON: invalid character '1' after object name (expecting ':') at offset 5"},
		{`{"a":tru}`, "invalid JSON: invalid character '}' in literal true (expecting 'e') at offset 8"},
		{`{a:1}`, "invalid JSON: invalid character 'a' at start of value at offset 1"},
		{"{\"a\":\"\xff\"}", "invalid JSON: invalid UTF-8 at offset 6"},
		{`{} {}`, "invalid JSON: unexpected data after the object at offset 3"},
		{`{"a":1}}`, "invalid JSON: unexpected data after the object at offset 7"},
		{`[1,2]`, "event must be a JSON object, got array"},
		{`"click"`, "event must be a JSON object, got string"},
		{`null`, "event must be a JSON object, got null"},
		{`12`, "event must be a JSON object, got number"},
		// A type error in a record that is also broken reports the breakage.
		{`{"status":"200","a":}`, "invalid JSON: missing value after object name at offset 20"},
		{`{"features":{"a":"x","b":[}}`, "invalid JSON: invalid character '}' at start of value at offset 26"},
		{`{"status":"200"} x`, "invalid JSON: unexpected data after the object at offset 17"},
		{`{"x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`, "invalid JSON: exceeded max depth at offset 10004"},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			var e Event
			err := Unmarshal([]byte(tt.in), &e)
			var ee *Error
			if !errors.As(err, &ee) {
				t.Fatalf("error %v (%T), want *Error", err, err)
			}
			if err.Error() != tt.want || ee.Field != "" {
				t.Errorf("error %q (field %q), want %q", err, ee.Field, tt.want)
			}
		})
	}
}

func TestUnmarshal_NullMeansAbsent(t *testing.T) {
	in := `{"v":null,"id":null,"type":null,"ts":null,"user_id":null,"session_id":null,"item_id":null,
	"app":null,"placement":null,"position":null,"features":null,"attrs":null,"host":null,"method":null,
	"uri":null,"route":null,"status":null,"cache":null,"request_time_ms":null,"bytes":null,
	"user_agent":null,"received_at":null}`
	var e Event
	if err := Unmarshal([]byte(in), &e); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e, Event{}) {
		t.Errorf("got %+v, want the zero Event", e)
	}
}

func TestUnmarshal_DuplicateNamesLastWins(t *testing.T) {
	in := `{"type":"click","type":"impression","position":1,"position":2,"bytes":5,"bytes":null,
	"features":{"a":1,"b":2},"features":{"c":3,"c":4},"attrs":{"x":"1"},"attrs":{},
	"ts":1,"ts":"2026-11-22T10:00:00Z","zz":1,"zz":[2]}`
	var e Event
	if err := Unmarshal([]byte(in), &e); err != nil {
		t.Fatal(err)
	}
	want := Event{
		Type: "impression", Position: ptr(2), Features: map[string]float64{"c": 4},
		TS: ms("2026-11-22T10:00:00Z"), Extra: map[string]json.RawMessage{"zz": json.RawMessage("[2]")},
	}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("got  %+v\nwant %+v", e, want)
	}
}

func TestUnmarshal_KeepsUnknownFieldsVerbatim(t *testing.T) {
	in := `{"type":"click","x_obj" : { "b" : [1, 2.50, "\u00e9"] , "a":null} ,"x_num":1.0E+2,"x_null":null,` +
		`"":"empty name","x_str":"tab\there","\u0078_esc":true,"type2":"not type"}`
	var e Event
	if err := Unmarshal([]byte(in), &e); err != nil {
		t.Fatal(err)
	}
	want := map[string]json.RawMessage{
		"x_obj":  json.RawMessage(`{ "b" : [1, 2.50, "\u00e9"] , "a":null}`),
		"x_num":  json.RawMessage(`1.0E+2`),
		"x_null": json.RawMessage(`null`),
		"":       json.RawMessage(`"empty name"`),
		"x_str":  json.RawMessage(`"tab\there"`),
		"x_esc":  json.RawMessage(`true`),
		"type2":  json.RawMessage(`"not type"`),
	}
	if !reflect.DeepEqual(e.Extra, want) {
		t.Errorf("Extra = %q\nwant    %q", e.Extra, want)
	}
	out := string(e.AppendJSON(nil))
	wantOut := `{"v":1,"type":"click","":"empty name","type2":"not type","x_esc":true,"x_null":null,` +
		`"x_num":1.0E+2,"x_obj":{ "b" : [1, 2.50, "\u00e9"] , "a":null},"x_str":"tab\there"}`
	if out != wantOut {
		t.Errorf("AppendJSON = %s\nwant         %s", out, wantOut)
	}
}

func TestUnmarshal_UnescapesStringsAndNames(t *testing.T) {
	in := `{"\u0074ype":"cl\u0069ck","user_id":"u-\"42\"\\","attrs":{"k\n":"v\u00e9\ud83d\ude00"},"features":{"caf\u00e9":1}}`
	var e Event
	if err := Unmarshal([]byte(in), &e); err != nil {
		t.Fatal(err)
	}
	if e.Type != "click" || e.UserID != `u-"42"\` || e.Attrs["k\n"] != "vé😀" || e.Features["café"] != 1 {
		t.Errorf("got %+v", e)
	}
}

func TestUnmarshal_ResetsTheEvent(t *testing.T) {
	e := Event{Type: "old", Host: "h", Features: map[string]float64{"a": 1}, Extra: map[string]json.RawMessage{"x": json.RawMessage("1")}}
	if err := Unmarshal([]byte(`{"id":"new"}`), &e); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e, Event{ID: "new"}) {
		t.Errorf("got %+v, want only the new id", e)
	}
}

func TestUnmarshal_DoesNotRetainTheInput(t *testing.T) {
	data := []byte(`{"type":"click","user_id":"u-1","attrs":{"k":"v"},"features":{"f":1},"x":[1]}`)
	var e Event
	if err := Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = 'X'
	}
	if e.Type != "click" || e.UserID != "u-1" || e.Attrs["k"] != "v" || e.Features["f"] != 1 || string(e.Extra["x"]) != "[1]" {
		t.Errorf("decoded event changed with its input: %+v", e)
	}
}

func TestUnmarshal_ConcurrentUseIsSafe(t *testing.T) {
	corpus := benchCorpus(64)
	want := make([]Event, len(corpus))
	for i, b := range corpus {
		if err := Unmarshal(b, &want[i]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for range 20 {
				for i, b := range corpus {
					var e Event
					if err := Unmarshal(b, &e); err != nil || !reflect.DeepEqual(e, want[i]) {
						t.Errorf("record %d: %v", i, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestEncodingJSON_InteroperatesWithEvent(t *testing.T) {
	in := `[{"type":"click","ts":1763805600123,"user_id":"u-1","x":{"y":1}},null,{"type":"access","ts":"2025-11-22T10:00:00Z","status":200}]`
	var events []Event
	if err := json.Unmarshal([]byte(in), &events); err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 || events[0].UserID != "u-1" || events[2].Status != 200 || !reflect.DeepEqual(events[1], Event{}) {
		t.Fatalf("got %+v", events)
	}
	if string(events[0].Extra["x"]) != `{"y":1}` {
		t.Errorf("extra = %s", events[0].Extra["x"])
	}

	// Values, pointers and slices all use MarshalJSON.
	for _, v := range []any{events[0], &events[0], map[string]Event{"e": events[0]}} {
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), `{"v":1,"type":"click","ts":"2025-11-22T10:00:00.123Z","user_id":"u-1","x":{"y":1}}`) {
			t.Errorf("json.Marshal(%T) = %s", v, out)
		}
	}

	var wrapped struct{ E Event }
	err := json.Unmarshal([]byte(`{"E":{"status":"x"}}`), &wrapped)
	var ee *Error
	if !errors.As(err, &ee) || ee.Field != "status" {
		t.Errorf("json.Unmarshal error = %v, want the *Error for status", err)
	}
}

// DecodeInto decodes as Decode does, into an Event that held another one:
// nothing of the old event is left, whether the new one is good or bad.
func TestDecodeInto_ResetsTheEvent(t *testing.T) {
	old := []byte(`{"v":1,"id":"a","type":"click","ts":"2026-12-05T10:00:00Z","user_id":"u1","item_id":"i","position":3,"features":{"x":1},"attrs":{"k":"v"},"zz":1}`)
	for _, data := range [][]byte{
		[]byte(`{"type":"access","ts":1796440980000,"host":"h","status":200}`),
		[]byte(`{"type":"click","ts":"2026-12-05T10:00:00Z"}`),
		[]byte(`{"type":`),
	} {
		var e Event
		if err := DecodeInto(old, &e); err != nil {
			t.Fatal(err)
		}
		err := DecodeInto(data, &e)
		want, wantErr := Decode(data)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) || !reflect.DeepEqual(e, want) {
			t.Fatalf("%s:\n got %+v, %v\nwant %+v, %v", data, e, err, want, wantErr)
		}
	}
}

// DecodeShared decodes exactly as DecodeInto, errors included, but its
// strings point into the record itself, where DecodeInto's point into a
// copy of it.
func TestDecodeShared_IsDecodeIntoWithoutTheCopy(t *testing.T) {
	records := append(benchCorpus(2000),
		[]byte(`{"type":"click","ts":1,"user_id":"u\u00e9","id":"a\"b"}`), // escapes: the tokenizer's path
		[]byte(`{"type":"click","ts":1}`),                                 // invalid: no user_id
		[]byte(`{"type":`),                                                // broken JSON
		[]byte(`{"type":"x","ts":1,"extra":{"a":[1,2]},"attrs":{"k":"v"}}`),
	)
	within := func(str string, data []byte) bool {
		if str == "" {
			return true
		}
		p, lo := uintptr(unsafe.Pointer(unsafe.StringData(str))), uintptr(unsafe.Pointer(unsafe.SliceData(data)))
		return p >= lo && p+uintptr(len(str)) <= lo+uintptr(len(data))
	}
	shared := 0
	for _, data := range records {
		var want, got Event
		wantErr := DecodeInto(data, &want)
		gotErr := DecodeShared(data, &got)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\nDecodeShared %+v, %v\nDecodeInto   %+v, %v", data, got, gotErr, want, wantErr)
		}
		if want.UserID != "" && within(want.UserID, data) {
			t.Fatalf("%s: DecodeInto's user_id points into the record", data)
		}
		if got.UserID != "" && !strings.Contains(string(data), `\`) {
			if !within(got.UserID, data) || !within(got.Type, data) {
				t.Fatalf("%s: DecodeShared's strings do not point into the record", data)
			}
			shared++
		}
	}
	if shared < 1000 {
		t.Fatalf("only %d records checked for shared strings", shared)
	}
}
