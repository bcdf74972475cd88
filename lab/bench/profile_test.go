package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/clickstream-go/clickstream/lab/proc"
)

// TestSummarize_FlatIsLeafCumIsAnyFrame checks the top-function maths on a
// hand-built profile: flat time goes to the leaf frame (including an inlined
// leaf), cumulative time to every distinct function on the stack once.
func TestSummarize_FlatIsLeafCumIsAnyFrame(t *testing.T) {
	fn := func(id uint64, name string) *profile.Function { return &profile.Function{ID: id, Name: name} }
	main, decode, parse, inl := fn(1, "main"), fn(2, "decode"), fn(3, "parse"), fn(4, "inlined")
	loc := func(id uint64, fs ...*profile.Function) *profile.Location {
		l := &profile.Location{ID: id}
		for _, f := range fs {
			l.Line = append(l.Line, profile.Line{Function: f})
		}
		return l
	}
	lMain, lDecode, lParse, lInl := loc(1, main), loc(2, decode), loc(3, parse), loc(4, inl, parse)
	p := &profile.Profile{
		SampleType:    []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		DurationNanos: int64(10 * time.Second),
		Sample: []*profile.Sample{
			{Location: []*profile.Location{lParse, lDecode, lMain}, Value: []int64{6, 60}},
			{Location: []*profile.Location{lDecode, lMain}, Value: []int64{3, 30}},
			{Location: []*profile.Location{lInl, lDecode, lMain}, Value: []int64{1, 10}},
		},
	}
	got := summarize("consume-archive", "x.pprof", p, 2)
	if got.CPU != 100 || got.Duration != 10*time.Second || len(got.Top) != 2 {
		t.Fatalf("summary = %+v", got)
	}
	want := []ProfileFunc{{Name: "parse", Flat: 0.6, Cum: 0.7}, {Name: "decode", Flat: 0.3, Cum: 1}}
	for i, w := range want {
		if got.Top[i] != w {
			t.Errorf("top[%d] = %+v, want %+v", i, got.Top[i], w)
		}
	}
}

// TestFetchProfiles_WritesAParsableProfile takes a real CPU profile from a
// pprof endpoint like the one --pprof-addr serves and summarises it.
func TestFetchProfiles_WritesAParsableProfile(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // something to sample
		x := 0
		for {
			select {
			case <-stop:
				return
			default:
				for i := range 1 << 16 {
					x += i * i
				}
				_ = strings.Repeat("x", x%7)
			}
		}
	}()
	dir := t.TempDir()
	comps := []*proc.Process{{Name: "busy", PprofAddr: strings.TrimPrefix(srv.URL, "http://")}, {Name: "unprofiled"}}
	paths, errs := fetchProfiles(context.Background(), comps, dir, time.Second)
	if len(errs) != 0 || len(paths) != 1 || paths["busy"] != filepath.Join(dir, "busy.cpu.pprof") {
		t.Fatalf("fetchProfiles = %v, %v", paths, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "busy.heap.pprof")); err != nil {
		t.Errorf("no heap profile: %v", err)
	}
	sum, err := summarizeProfile("busy", paths["busy"], 5)
	if err != nil {
		t.Fatal(err)
	}
	if sum.CPU <= 0 || len(sum.Top) == 0 || sum.Top[0].Flat <= 0 || sum.Top[0].Cum < sum.Top[0].Flat {
		t.Errorf("summary of a busy process = %+v", sum)
	}
}

func TestFetchProfiles_ReportsAnUnreachableComponent(t *testing.T) {
	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	paths, errs := fetchProfiles(context.Background(), []*proc.Process{{Name: "gone", PprofAddr: addr}}, t.TempDir(), time.Second)
	if len(paths) != 0 || len(errs) != 1 || !strings.Contains(errs[0], "profile gone:") {
		t.Errorf("fetchProfiles of a dead address = %v, %v", paths, errs)
	}
}
