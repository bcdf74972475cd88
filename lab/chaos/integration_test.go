package chaos

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/internal/testenv"
)

// TestChaos_ShortRunUnderKillsAndReshardingLosesAndDuplicatesNothing is the
// short version of `make chaos`: 75 s of load on kinesis-local while every
// consumer is SIGKILLed and restarted, run twice at once, and a shard is
// split and two merged; then every output must equal the direct
// computation from the stream.
func TestChaos_ShortRunUnderKillsAndReshardingLosesAndDuplicatesNothing(t *testing.T) {
	c := testenv.Clients(t)
	if testenv.KinesisEmulator() != "kinesis-local" {
		t.Skip("needs kinesis-local: kinesalite cannot split or merge with ChildShards")
	}
	bin := filepath.Join(t.TempDir(), "clickstream")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/clickstream").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	bucket := testenv.Bucket(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Config{Binary: bin, Clients: c, Bucket: bucket, Shards: 3, Rate: 200,
		Duration: 75 * time.Second, Drain: 3 * time.Minute, FaultEvery: 6 * time.Second,
		LeaseDuration: 5 * time.Second, ArchiveMaxAge: 5 * time.Second, Users: 300, Seed: 42,
		LogDir: filepath.Join(t.TempDir(), "logs"), Progress: &progress})
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.WriteText(&out)
	t.Log(out.String())
	if rep.Valid < 10000 || rep.Bad == 0 {
		t.Errorf("%d valid and %d bad records on the stream: want ~15,000 and some bad", rep.Valid, rep.Bad)
	}
	if !rep.Passed() {
		t.Fatal("chaos run failed: see the table")
	}
}
