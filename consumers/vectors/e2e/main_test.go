package e2e

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChildMain())
	}
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of the SDK's HTTP transport.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		// kpl.VerifyChecksums's MD5 server, kept for the process.
		goleak.IgnoreTopFunction("github.com/minio/md5-simd.(*md5Server).process"),
	)
}
