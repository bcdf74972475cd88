package bench

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/internal/testenv"
)

// TestIntegration_ShortRun runs the whole benchmark briefly against the
// local stack, with the real binary, and checks the figures hold together.
func TestIntegration_ShortRun(t *testing.T) {
	c := testenv.Clients(t)
	bin := filepath.Join(t.TempDir(), "clickstream")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/clickstream").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	bucket := testenv.Bucket(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r, err := Run(ctx, Config{Binary: bin, Clients: c, Shards: 2, Bucket: bucket, Rate: 300, Duration: 8 * time.Second,
		Drain: 20 * time.Second, ArchiveMaxAge: 2 * time.Second, Label: "integration test"})
	if err != nil {
		t.Fatal(err)
	}
	md := r.Markdown()
	t.Log("\n" + md)
	if r.OnStream < 1500 || r.Accepted != r.OnStream {
		t.Errorf("on stream %d, accepted %d: want ~2400 and equal", r.OnStream, r.Accepted)
	}
	for _, app := range consumerApps {
		if r.Processed[app] != r.OnStream {
			t.Errorf("%s processed %d of %d", app, r.Processed[app], r.OnStream)
		}
	}
	if r.Archived != r.OnStream {
		t.Errorf("archived %d of %d", r.Archived, r.OnStream)
	}
	if r.VectorLatency.N == 0 {
		t.Errorf("no vector-visibility samples; errors: %v", r.Errors)
	}
	if len(r.Components) != 5 {
		t.Errorf("components: %+v", r.Components)
	}
	for _, cs := range r.Components {
		if cs.PeakRSS <= 0 || cs.CPUSeconds < 0 {
			t.Errorf("component %+v", cs)
		}
	}
	if r.Calls.DynamoDBWrites == 0 || r.Calls.S3Puts == 0 || r.Calls.KinesisPutCalls == 0 {
		t.Errorf("calls %+v", r.Calls)
	}
	if total, _ := r.CostPerMillion(); total <= 0 {
		t.Error("no cost estimate")
	}
	for _, want := range []string{"sustained events/s", "put → vector visible", "peak RSS", "Estimated AWS cost"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// TestIntegration_ArchiveRun runs the archive-efficiency benchmark on a
// small aggregated stream against the local stack, with the real binary
// twice against itself (--runs 2 --versus): every event archived by every
// run, the figures present and consistent, the median run reported.
func TestIntegration_ArchiveRun(t *testing.T) {
	c := testenv.Clients(t)
	bin := filepath.Join(t.TempDir(), "clickstream")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/clickstream").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	bucket := testenv.Bucket(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := RunArchive(ctx, ArchiveConfig{Binary: bin, Clients: c, Bucket: bucket, Shards: 2, Events: 3000, Aggregate: true,
		MaxAge: time.Second, Label: "integration test", Runs: 2, Versus: bin})
	if err != nil {
		t.Fatal(err)
	}
	md := r.Markdown()
	t.Log("\n" + md)
	if r.Events != 3000 || r.OnStream != 3000 || r.Rows != 3000 || len(r.Errors) > 0 {
		t.Errorf("events %d, on stream %d, rows %d, errors %v: want 3000 each and none", r.Events, r.OnStream, r.Rows, r.Errors)
	}
	if r.KinesisRecords <= 0 || r.KinesisRecords >= 3000 {
		t.Errorf("%d Kinesis records for 3000 aggregated events", r.KinesisRecords)
	}
	if r.CPUSeconds <= 0 || r.PeakRSS <= 0 || r.Objects <= 0 || r.Bytes <= 0 || r.EventsPerCPUSecond() <= 0 {
		t.Errorf("figures missing: %+v", r)
	}
	if len(r.Runs) != 2 || len(r.VersusRuns) != 2 {
		t.Fatalf("%d runs and %d versus runs, want 2 each", len(r.Runs), len(r.VersusRuns))
	}
	if r.WarmUp.Rows != 3000 || r.WarmUp.CPUSeconds <= 0 || slices.Contains(r.Runs, r.WarmUp) {
		t.Errorf("warm-up run %+v: want 3000 rows, its CPU time, and not among the counted runs", r.WarmUp)
	}
	for i, run := range append(slices.Clone(r.Runs), r.VersusRuns...) {
		if run.Rows != 3000 || run.CPUSeconds <= 0 || run.PeakRSS <= 0 {
			t.Errorf("run %d: %+v, want 3000 rows and its CPU time and RSS", i, run)
		}
	}
	if r.ArchiveRun != r.Runs[0] && r.ArchiveRun != r.Runs[1] || r.CPUSeconds > max(r.Runs[0].CPUSeconds, r.Runs[1].CPUSeconds) {
		t.Errorf("reported run %+v is not the median of %+v", r.ArchiveRun, r.Runs)
	}
	for _, want := range []string{"events per CPU-second", "peak RSS", "bytes on S3 per event", "KPL-aggregated", "median of 2 runs", "run alternately on the same stream", "A first run before them ("} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
