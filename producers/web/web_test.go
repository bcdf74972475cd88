package web

import (
	"bytes"
	"compress/gzip"
	"os/exec"
	"testing"
)

// TestSDK_FitsTheSizeBudget: one file, at most 6 KB gzipped.
func TestSDK_FitsTheSizeBudget(t *testing.T) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(SDK())
	_ = zw.Close()
	t.Logf("clickstream.js: %d bytes, %d gzipped", len(SDK()), buf.Len())
	if buf.Len() > 6<<10 {
		t.Fatalf("%d bytes gzipped, over the 6 KB budget", buf.Len())
	}
}

// TestSDK_BatchingAndRetryUnderFakeTimers runs the SDK's unit tests in Node
// (node:test with mocked timers and fetch).
func TestSDK_BatchingAndRetryUnderFakeTimers(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: the SDK's unit tests need Node.js (make test installs the local stack, which needs it too)")
	}
	out, err := exec.Command(node, "--test", "clickstream.test.cjs").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
}
