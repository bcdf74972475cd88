package bench

import (
	"context"
	"os/exec"
	"path/filepath"
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
