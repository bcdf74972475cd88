package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/lab/proc"
)

func TestCrossingsInterpolateBetweenSamples(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// 100 events put at t0; the consumer's count goes 0 → 200 between
	// 1000 and 2000 ms, so it reached 100 at 1500 ms.
	samples := []sample{
		{at: at(0), onStream: 100, processed: map[string]float64{"x": 0}},
		{at: at(1000), onStream: 100, processed: map[string]float64{"x": 0}},
		{at: at(2000), onStream: 200, processed: map[string]float64{"x": 200}},
	}
	got := crossings(samples, func(s sample) float64 { return s.processed["x"] }, at(5000))
	if len(got) != 3 || got[0] != 1500*time.Millisecond || got[1] != 500*time.Millisecond || got[2] != 0 {
		t.Errorf("crossings = %v, want [1.5s 500ms 0s]", got)
	}
	// A count that never reaches the target gives no sample.
	if got := crossings(samples, func(sample) float64 { return 50 }, at(5000)); len(got) != 0 {
		t.Errorf("crossings of a stuck consumer = %v", got)
	}
}

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(d)
	if p.N != 100 || p.P50 != 51*time.Millisecond || p.P99 != 100*time.Millisecond || p.Max != 100*time.Millisecond {
		t.Errorf("percentiles = %+v", p)
	}
	if (percentiles(nil) != Percentiles{}) {
		t.Error("empty input")
	}
}

func TestUpdateReportKeepsOnePreviousRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	os.WriteFile(path, []byte("# Benchmarks\n\nHand-written notes.\n"), 0o644)
	for _, run := range []string{"### run A", "### run B", "### run C"} {
		if err := UpdateReport(path, run); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	s := string(b)
	if !strings.Contains(s, "Hand-written notes.") {
		t.Error("text outside the markers was lost")
	}
	latest, previous := strings.Index(s, "### run C"), strings.Index(s, "### run B")
	if latest < 0 || previous < latest || strings.Contains(s, "### run A") {
		t.Errorf("want C latest, B previous, A gone:\n%s", s)
	}
	if strings.Count(s, "## Latest run") != 1 || strings.Count(s, "## Previous run") != 1 {
		t.Errorf("headings duplicated:\n%s", s)
	}
}

func TestAppendReportAddsToTheLatestRunSet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	// Without a latest run, append starts one.
	if err := AppendReport(path, "### run A1"); err != nil {
		t.Fatal(err)
	}
	if err := UpdateReport(path, "### run B1"); err != nil {
		t.Fatal(err)
	}
	if err := AppendReport(path, "### run B2"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	s := string(b)
	b1, b2, prev, a1 := strings.Index(s, "### run B1"), strings.Index(s, "### run B2"), strings.Index(s, "## Previous run"), strings.Index(s, "### run A1")
	if b1 < 0 || b2 < b1 || prev < b2 || a1 < prev {
		t.Errorf("want B1, B2 latest and A1 previous:\n%s", s)
	}
	// The next run rotates both B runs to previous together.
	if err := UpdateReport(path, "### run C1"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	s = string(b)
	prev = strings.Index(s, "## Previous run")
	if c1 := strings.Index(s, "### run C1"); c1 < 0 || c1 > prev || strings.Index(s, "### run B2") < prev || strings.Contains(s, "### run A1") {
		t.Errorf("want C1 latest, B1+B2 previous:\n%s", s)
	}
}

func TestReportSectionsShareOneFileEachRewritingItsOwn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	for _, step := range []struct {
		r   ReportSection
		run string
	}{{E2EReport, "### e2e 1"}, {ArchiveReport, "### archive 1"}, {E2EReport, "### e2e 2"}, {ArchiveReport, "### archive 2"}, {ArchiveReport, "### archive 3"}} {
		if err := step.r.Update(path, step.run); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	s := string(b)
	order := []string{"<!-- bench-e2e:latest -->", "### e2e 2", "<!-- bench-e2e:previous -->", "### e2e 1", "<!-- bench-e2e:end -->",
		"## Archive efficiency", "<!-- bench-archive:latest -->", "### archive 3", "<!-- bench-archive:previous -->", "### archive 2", "<!-- bench-archive:end -->"}
	last := -1
	for _, want := range order {
		i := strings.Index(s, want)
		if i <= last {
			t.Fatalf("%q missing or out of order in:\n%s", want, s)
		}
		last = i
	}
	if strings.Contains(s, "### archive 1") || strings.Count(s, "## Archive efficiency") != 1 {
		t.Errorf("archive 1 should be gone and the heading written once:\n%s", s)
	}
}

func TestReadProcStatsOfThisProcess(t *testing.T) {
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	st, err := proc.ReadStats(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PeakRSS < 64<<20 {
		t.Errorf("peak RSS %d below the 64 MiB this test touched", st.PeakRSS)
	}
	if st.CPUSeconds < 0 {
		t.Errorf("CPU %v", st.CPUSeconds)
	}
	_ = buf[len(buf)-1]
}

func TestMetricSetSumMatchesLabels(t *testing.T) {
	text := `# TYPE clickstream_aws_requests_total counter
clickstream_aws_requests_total{operation="UpdateItem",service="DynamoDB"} 7
clickstream_aws_requests_total{operation="PutItem",service="DynamoDB"} 3
clickstream_aws_requests_total{operation="PutObject",service="S3"} 2
`
	m, err := proc.ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.AWSCalls("DynamoDB", dynamoWriteOps...); got != 10 {
		t.Errorf("DynamoDB writes = %v", got)
	}
	if got := m.Sum("clickstream_aws_requests_total"); got != 12 {
		t.Errorf("all = %v", got)
	}
	if got := m.Sum("nope"); got != 0 {
		t.Errorf("missing family = %v", got)
	}
}

func TestSharedPollIntervals_StayWithinFiveReadsPerSecond(t *testing.T) {
	for _, tc := range []struct {
		apps     []string
		combined bool
		want     map[string]time.Duration
	}{
		{[]string{"vectors"}, false, map[string]time.Duration{"vectors": 200 * time.Millisecond}},
		{[]string{"archive", "metrics"}, false, map[string]time.Duration{"archive": 400 * time.Millisecond, "metrics": 400 * time.Millisecond}},
		{[]string{"archive", "vectors", "metrics"}, false, map[string]time.Duration{"archive": time.Second, "vectors": 340 * time.Millisecond, "metrics": time.Second}},
		{[]string{"archive", "vectors", "metrics"}, true, map[string]time.Duration{"archive": 600 * time.Millisecond, "vectors": 600 * time.Millisecond, "metrics": 600 * time.Millisecond}},
	} {
		got := sharedPollIntervals(tc.apps, tc.combined)
		reads := 0.0
		for _, app := range tc.apps {
			if got[app] != tc.want[app] {
				t.Errorf("%v combined=%v: %s polls every %v, want %v", tc.apps, tc.combined, app, got[app], tc.want[app])
			}
			if !tc.combined || app == tc.apps[0] {
				reads += float64(time.Second) / float64(got[app])
			}
		}
		if tc.combined {
			reads *= float64(len(tc.apps))
		}
		if reads > 5.0001 {
			t.Errorf("%v: %.2f GetRecords calls/s per shard, above 5", tc.apps, reads)
		}
	}
}

// The reported run is the median by CPU time: the middle of an odd count,
// the lower middle of an even one, whatever the order of the runs.
func TestMedianRun(t *testing.T) {
	runs := func(cpu ...float64) []ArchiveRun {
		rs := make([]ArchiveRun, len(cpu))
		for i, c := range cpu {
			rs[i] = ArchiveRun{CPUSeconds: c, Rows: int64(i)}
		}
		return rs
	}
	for _, tc := range []struct {
		cpu  []float64
		want float64
	}{{nil, 0}, {[]float64{2}, 2}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2}, {[]float64{1.5, 1.5, 9}, 1.5}} {
		if got := medianRun(runs(tc.cpu...)); got.CPUSeconds != tc.want {
			t.Errorf("median of %v: %v, want %v", tc.cpu, got.CPUSeconds, tc.want)
		}
	}
}
