package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

func TestSplitEvents_FramesArraysObjectsAndLines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		format bodyFormat
		want   []string
	}{
		{"array", ` [ {"a":1} , {"b":[1,2]}, 3 ] `, formatJSON, []string{`{"a":1}`, `{"b":[1,2]}`, `3`}},
		{"empty array", `[]`, formatJSON, nil},
		{"object", "\ufeff{\"a\":\"[\"}\n", formatJSON, []string{`{"a":"["}`}},
		{"ndjson", "{\"a\":1}\r\n\n  \n{bad\n{\"c\":3}", formatNDJSON, []string{`{"a":1}`, `{bad`, `{"c":3}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splitEvents([]byte(tc.body), tc.format, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d events %q, want %q", len(got), got, tc.want)
			}
			for i := range got {
				if string(got[i]) != tc.want[i] {
					t.Errorf("event %d: %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func FuzzSplitEvents(f *testing.F) {
	for _, s := range []string{`[{"a":1},{"b":2}]`, `{"a":1}`, "{\"a\":1}\n\n{\"b\"", `[1,`, "", " ", `[{"a":"\u00e9"}] x`} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		format := formatJSON
		if ndjson {
			format = formatNDJSON
		}
		evs, err := splitEvents(body, format, 50)
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) || (re.status != http.StatusBadRequest && re.status != http.StatusRequestEntityTooLarge) {
				t.Fatalf("error %v is not a 400/413 request error", err)
			}
			return
		}
		if len(evs) > 50 {
			t.Fatalf("%d events over the limit", len(evs))
		}
		for i, e := range evs {
			if len(e) == 0 {
				t.Fatalf("event %d is empty", i)
			}
			if format == formatJSON && !json.Valid(e) {
				t.Fatalf("event %d %q is not valid JSON", i, e)
			}
			if format == formatNDJSON && (bytes.ContainsRune(e, '\n') || len(bytes.TrimSpace(e)) != len(e)) {
				t.Fatalf("line %d %q not trimmed to one line", i, e)
			}
		}
	})
}
