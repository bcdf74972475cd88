package main

import (
	"maps"
	"strings"
	"testing"
)

func TestParseReadModes_OneForAllPerApplicationOrBoth(t *testing.T) {
	names := []string{"archive", "vectors", "metrics"}
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{"poll", map[string]string{"archive": "poll", "vectors": "poll", "metrics": "poll"}},
		{"efo", map[string]string{"archive": "efo", "vectors": "efo", "metrics": "efo"}},
		{"vectors=efo", map[string]string{"archive": "poll", "vectors": "efo", "metrics": "poll"}},
		{"efo, archive=poll", map[string]string{"archive": "poll", "vectors": "efo", "metrics": "efo"}},
	} {
		got, err := parseReadModes(tc.in, names)
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for in, msg := range map[string]string{
		"fast":         `the mode is "poll" or "efo"`,
		"vectors=":     `the mode is "poll" or "efo"`,
		"searcher=efo": "searcher is not one of the applications run (archive, vectors, metrics)",
	} {
		if _, err := parseReadModes(in, names); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want one saying %q", in, err, msg)
		}
	}
}
