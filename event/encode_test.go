package event

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestAppendJSON_CanonicalForm(t *testing.T) {
	e := Event{
		V: 0, ID: "01JD3", Type: TypeClick, TS: time.Date(2026, 11, 22, 11, 0, 0, 123456789, time.FixedZone("CET", 3600)),
		UserID: "u-42", SessionID: "s-9", ItemID: "a-987", App: "ios", Placement: "home_feed", Position: ptr(3),
		Features: map[string]float64{"tag:soccer": 0.5, "cat:sports": 1, "z": 1e21, "tiny": 1e-7, "neg": -2.25},
		Attrs:    map[string]string{"b": "2", "a": "1"},
		Host:     "api-1", Method: "GET", URI: "/api/items/123?x=1&y=<b>", Route: "/api/items/:id", Status: 200, Cache: "HIT",
		RequestTimeMS: ptr(12.5), Bytes: ptr[int64](5120), UserAgent: "curl/8.5",
		ReceivedAt: time.UnixMilli(1763805600001).UTC(),
		Extra:      map[string]json.RawMessage{"zz": json.RawMessage(`{"k": [1, 2]}`), "aa": json.RawMessage(`"x"`)},
	}
	want := `{"v":1,"id":"01JD3","type":"click","ts":"2026-11-22T10:00:00.123Z","user_id":"u-42","session_id":"s-9",` +
		`"item_id":"a-987","app":"ios","placement":"home_feed","position":3,` +
		`"features":{"cat:sports":1,"neg":-2.25,"tag:soccer":0.5,"tiny":1e-7,"z":1e+21},"attrs":{"a":"1","b":"2"},` +
		`"host":"api-1","method":"GET","uri":"/api/items/123?x=1&y=<b>","route":"/api/items/:id","status":200,"cache":"HIT",` +
		`"request_time_ms":12.5,"bytes":5120,"user_agent":"curl/8.5","received_at":"2025-11-22T10:00:00.001Z",` +
		`"aa":"x","zz":{"k": [1, 2]}}`
	if got := string(e.AppendJSON(nil)); got != want {
		t.Errorf("AppendJSON:\n got %s\nwant %s", got, want)
	}
	if got := string(e.AppendJSON([]byte("prefix "))); got != "prefix "+want {
		t.Errorf("AppendJSON did not append to dst: %s", got)
	}
	// encoding/json compacts and HTML-escapes what MarshalJSON returns.
	var std bytes.Buffer
	if err := json.Compact(&std, []byte(want)); err != nil {
		t.Fatal(err)
	}
	var stdEscaped bytes.Buffer
	json.HTMLEscape(&stdEscaped, std.Bytes())
	got, err := json.Marshal(e)
	if err != nil || string(got) != stdEscaped.String() {
		t.Errorf("json.Marshal = %s, %v\nwant %s", got, err, stdEscaped.String())
	}
}

func TestAppendJSON_OmitsEmptyFields(t *testing.T) {
	e := Event{Type: "access", Features: map[string]float64{}, Attrs: map[string]string{}, Extra: map[string]json.RawMessage{}}
	if got, want := string(e.AppendJSON(nil)), `{"v":1,"type":"access"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	zero := Event{Position: ptr(0), Bytes: ptr[int64](0), RequestTimeMS: ptr(0.0)}
	if got, want := string(zero.AppendJSON(nil)), `{"v":1,"position":0,"request_time_ms":0,"bytes":0}`; got != want {
		t.Errorf("present zeros: got %s, want %s", got, want)
	}
}

func TestAppendJSON_TimesAreUTCMilliseconds(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), "2026-11-22T10:00:00.000Z"},
		{time.Date(2026, 11, 22, 10, 0, 0, 999999999, time.UTC), "2026-11-22T10:00:00.999Z"},
		{time.Date(2026, 11, 22, 5, 0, 0, 7e6, time.FixedZone("EST", -5*3600)), "2026-11-22T10:00:00.007Z"},
		{time.UnixMilli(-1), "1969-12-31T23:59:59.999Z"},
		{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), "0000-01-01T00:00:00.000Z"},
		{time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC), "9999-12-31T23:59:59.999Z"},
	}
	for _, tt := range tests {
		e := Event{TS: tt.t}
		want := `{"v":1,"ts":"` + tt.want + `"}`
		if got := string(e.AppendJSON(nil)); got != want {
			t.Errorf("%v: got %s, want %s", tt.t, got, want)
		}
	}
}

func TestAppendJSON_EscapesStrings(t *testing.T) {
	e := Event{Type: "q\"b\\s/\n\t\x01é😀\u2028<>&", UserAgent: "bad \xff utf8"}
	got := string(e.AppendJSON(nil))
	want := `{"v":1,"type":"q\"b\\s/\n\t\u0001é😀` + "\u2028" + `<>&","user_agent":"bad ` + "\ufffd" + ` utf8"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var back Event
	if err := Unmarshal([]byte(got), &back); err != nil || back.Type != e.Type {
		t.Errorf("decoded type %q, %v", back.Type, err)
	}
}

func TestAppendJSON_NonFiniteAndBadExtraStayValidJSON(t *testing.T) {
	e := Event{
		Features:      map[string]float64{"nan": math.NaN(), "inf": math.Inf(-1)},
		RequestTimeMS: ptr(math.Inf(1)),
		Extra:         map[string]json.RawMessage{"bad": json.RawMessage(`{"a":`), "empty": nil, "type": json.RawMessage(`"shadow"`), "ok": json.RawMessage(`[1]`)},
	}
	got := e.AppendJSON(nil)
	want := `{"v":1,"features":{"inf":null,"nan":null},"request_time_ms":null,"bad":null,"empty":null,"ok":[1]}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if !json.Valid(got) {
		t.Error("output is not valid JSON")
	}
}

func TestMarshalJSON_RejectsBadExtra(t *testing.T) {
	tests := []struct {
		extra map[string]json.RawMessage
		want  string
	}{
		{map[string]json.RawMessage{"x": json.RawMessage(`{`)}, `encode event: extra field "x" is not valid JSON`},
		{map[string]json.RawMessage{"x": nil}, `encode event: extra field "x" is not valid JSON`},
		{map[string]json.RawMessage{"user_id": json.RawMessage(`"u"`)}, `encode event: extra field "user_id" is a contract field`},
	}
	for _, tt := range tests {
		e := Event{Type: "t", Extra: tt.extra}
		_, err := e.MarshalJSON()
		if err == nil || err.Error() != tt.want {
			t.Errorf("MarshalJSON() error = %v, want %q", err, tt.want)
		}
		if _, err := json.Marshal(e); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("json.Marshal error = %v, want %q", err, tt.want)
		}
	}
}
