package event

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func validClick() Event {
	return Event{V: 1, ID: "01JD3", Type: TypeClick, TS: ms("2026-11-22T10:00:00.123Z"), UserID: "u-1"}
}

func TestValidate_Messages(t *testing.T) {
	tests := []struct {
		name   string
		modify func(e *Event)
		want   string // "" = valid
	}{
		{"valid click", func(e *Event) {}, ""},
		{"v absent", func(e *Event) { e.V = 0 }, ""},
		{"v 2", func(e *Event) { e.V = 2 }, "v: unsupported version 2, want 1"},
		{"v -1", func(e *Event) { e.V = -1 }, "v: unsupported version -1, want 1"},
		{"type missing", func(e *Event) { e.Type = "" }, "type: required"},
		{"unknown type", func(e *Event) { e.Type = "purchase"; e.UserID = "" }, ""},
		{"ts missing", func(e *Event) { e.TS = time.Time{} }, "ts: required"},
		{"ts year 10000", func(e *Event) { e.TS = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "ts: out of range (years 0000-9999), got year 10000"},
		{"ts year -1", func(e *Event) { e.TS = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) }, "ts: out of range (years 0000-9999), got year -1"},
		{"ts before 1970", func(e *Event) { e.TS = time.UnixMilli(-5) }, ""},
		{"ts in another zone", func(e *Event) { e.TS = time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("x", 3600)) }, ""},
		{"click without user", func(e *Event) { e.UserID = "" }, "user_id: required for type click"},
		{"impression without user", func(e *Event) { e.Type = TypeImpression; e.UserID = "" }, "user_id: required for type impression"},
		{"access without user", func(e *Event) { e.Type = TypeAccess; e.UserID = "" }, ""},
		{"user_id 256 bytes", func(e *Event) { e.UserID = strings.Repeat("é", 128) }, ""},
		{"user_id 257 bytes", func(e *Event) { e.UserID = strings.Repeat("u", 257) }, "user_id: must be at most 256 bytes (the Kinesis partition-key limit), got 257"},
		{"access user_id 300 bytes", func(e *Event) { e.Type = TypeAccess; e.UserID = strings.Repeat("u", 300) }, "user_id: must be at most 256 bytes (the Kinesis partition-key limit), got 300"},
		{"id 257 bytes", func(e *Event) { e.ID = strings.Repeat("i", 257) }, "id: must be at most 256 bytes (it can be the Kinesis partition key), got 257"},
		{"position 0", func(e *Event) { e.Position = ptr(0) }, ""},
		{"position -1", func(e *Event) { e.Position = ptr(-1) }, "position: must be >= 0, got -1"},
		{"status 0", func(e *Event) { e.Status = 0 }, ""},
		{"status 100", func(e *Event) { e.Status = 100 }, ""},
		{"status 599", func(e *Event) { e.Status = 599 }, ""},
		{"status 99", func(e *Event) { e.Status = 99 }, "status: must be 100..599 (or absent), got 99"},
		{"status 600", func(e *Event) { e.Status = 600 }, "status: must be 100..599 (or absent), got 600"},
		{"status -200", func(e *Event) { e.Status = -200 }, "status: must be 100..599 (or absent), got -200"},
		{"request_time_ms 0", func(e *Event) { e.RequestTimeMS = ptr(0.0) }, ""},
		{"request_time_ms -0.5", func(e *Event) { e.RequestTimeMS = ptr(-0.5) }, "request_time_ms: must be a finite number >= 0, got -0.5"},
		{"request_time_ms NaN", func(e *Event) { e.RequestTimeMS = ptr(math.NaN()) }, "request_time_ms: must be a finite number >= 0, got NaN"},
		{"request_time_ms +Inf", func(e *Event) { e.RequestTimeMS = ptr(math.Inf(1)) }, "request_time_ms: must be a finite number >= 0, got +Inf"},
		{"bytes 0", func(e *Event) { e.Bytes = ptr[int64](0) }, ""},
		{"bytes -1", func(e *Event) { e.Bytes = ptr[int64](-1) }, "bytes: must be >= 0, got -1"},
		{"features finite", func(e *Event) { e.Features = map[string]float64{"a": -1e308, "b": 0} }, ""},
		{"features NaN", func(e *Event) { e.Features = map[string]float64{"a": 1, "z": math.NaN()} }, `features: value of "z" must be finite, got NaN`},
		{"features first bad name", func(e *Event) {
			e.Features = map[string]float64{"c": math.Inf(1), "b": math.Inf(-1), "a": 1}
		}, `features: value of "b" must be finite, got -Inf`},
		{"received_at year 10000", func(e *Event) { e.ReceivedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "received_at: out of range (years 0000-9999), got year 10000"},
		{"first offending field wins", func(e *Event) { e.Status = 42; e.Position = ptr(-1) }, "position: must be >= 0, got -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validClick()
			tt.modify(&e)
			err := e.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ee *Error
			if !errors.As(err, &ee) {
				t.Fatalf("Validate() = %v (%T), want *Error %q", err, err, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("Validate() = %q, want %q", err, tt.want)
			}
			if field, _, _ := strings.Cut(tt.want, ":"); ee.Field != field {
				t.Errorf("Field = %q, want %q", ee.Field, field)
			}
		})
	}
}

func TestDecode_ValidatesAfterDecoding(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"type":"click","ts":1,"user_id":"u"}`, ""},
		{`{"type":"click","ts":1}`, "user_id: required for type click"},
		{`{"ts":1}`, "type: required"},
		{`{"type":"access"}`, "ts: required"},
		{`{"v":2,"type":"access","ts":1}`, "v: unsupported version 2, want 1"},
		{`{"type":"access","ts":1,"status":700}`, "status: must be 100..599 (or absent), got 700"},
		{`{"type":"access","ts":1,"status":"700"}`, "status: must be an integer, got string"},
		{`{"type":"access","ts":1,`, "invalid JSON: unexpected end of input at offset 24"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Decode([]byte(tt.in))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Decode() = %v, want nil", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Errorf("Decode() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCheckFuture_RejectsEventsTooFarAheadOfWhenTheyArrived(t *testing.T) {
	ref := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ts   time.Time
		max  time.Duration
		fail bool
	}{
		{ref.Add(-time.Hour), DefaultMaxFuture, false},
		{ref.Add(23 * time.Hour), DefaultMaxFuture, false},
		{ref.Add(DefaultMaxFuture), DefaultMaxFuture, false},
		{ref.Add(DefaultMaxFuture + time.Millisecond), DefaultMaxFuture, true},
		{time.Date(2099, 12, 4, 19, 0, 0, 0, time.UTC), DefaultMaxFuture, true},
		{time.Date(2099, 12, 4, 19, 0, 0, 0, time.UTC), 0, false}, // off
	} {
		e := Event{Type: TypeClick, TS: tc.ts, UserID: "u"}
		err := e.CheckFuture(ref, tc.max)
		var ee *Error
		if (err != nil) != tc.fail || err != nil && (!errors.As(err, &ee) || ee.Field != "ts") {
			t.Errorf("ts %v, max %v: %v", tc.ts, tc.max, err)
		}
	}
	e := Event{Type: TypeClick, TS: time.Date(2099, 12, 4, 19, 0, 0, 0, time.UTC), UserID: "u"}
	if msg := e.CheckFuture(ref, DefaultMaxFuture).Error(); !strings.Contains(msg, "ts: 2099-12-04T19:00:00Z is") || !strings.Contains(msg, "clock is wrong") {
		t.Errorf("message %q", msg)
	}
}
