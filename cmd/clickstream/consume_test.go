package main

import (
	"maps"
	"net"
	"strconv"
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

func TestListenMetrics_TheDefaultMovesToTheNextFreePortAnExplicitAddressNamesTheFlag(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	first, _ := strconv.Atoi(port)

	ln, err := listenMetrics(addr, true)
	if err != nil {
		t.Fatalf("default address taken: %v", err)
	}
	defer ln.Close()
	_, got, _ := net.SplitHostPort(ln.Addr().String())
	if p, _ := strconv.Atoi(got); p <= first || p >= first+metricsPortsTried {
		t.Fatalf("serving on %s, want a port in %d-%d", ln.Addr(), first+1, first+metricsPortsTried-1)
	}
	if _, err := listenMetrics(addr, false); err == nil || !strings.Contains(err.Error(), "set --metrics-addr to a free address") {
		t.Fatalf("explicit address taken: %v", err)
	}
}
