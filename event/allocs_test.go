//go:build !race

package event

import "testing"

// Consumers decode every record, so allocations per event are part of the
// contract of this package: one copy of the record for all its strings, one
// box for the optional numbers, two per non-empty map.
func TestUnmarshal_AllocationsPerEvent(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  float64
	}{
		{"access", `{"v":1,"type":"access","ts":1763805600123,"id":"01JD3","host":"api-1","method":"GET","uri":"/x","route":"/x","status":200,"cache":"HIT","request_time_ms":12.5,"bytes":5120,"user_agent":"curl"}`, 2},
		{"impression", `{"v":1,"id":"01JD3","type":"impression","ts":"2026-11-22T10:00:00.123Z","user_id":"u-1","position":3,"features":{"a":1,"b":0.5},"attrs":{"k":"v"}}`, 6},
	}
	for _, tt := range tests {
		var e Event
		data := []byte(tt.in)
		got := testing.AllocsPerRun(200, func() {
			if err := Unmarshal(data, &e); err != nil {
				t.Fatal(err)
			}
		})
		if got > tt.max {
			t.Errorf("%s: %.1f allocations per event, want at most %.0f", tt.name, got, tt.max)
		}
	}
	var e Event
	if err := Unmarshal([]byte(`{"type":"click","ts":1,"user_id":"u","features":{"b":1,"a":2},"attrs":{"k":"v"},"x":[1]}`), &e); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 256)
	if got := testing.AllocsPerRun(200, func() { buf = e.AppendJSON(buf[:0]) }); got > 0 {
		t.Errorf("AppendJSON into a large enough buffer: %.1f allocations, want 0", got)
	}
}
