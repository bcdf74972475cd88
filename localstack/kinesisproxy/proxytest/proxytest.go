// Package proxytest starts the shard-limit proxy in-process for integration
// tests, in front of the local stack's Kinesis emulator, so a test can
// choose tight limits and faults of its own.
package proxytest

import (
	"net/http/httptest"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy"
)

// UpstreamEnv names the emulator behind a stack started with LIMITS=aws
// (stack.sh writes it to the env file); a test proxy goes straight to it
// rather than through the stack's own proxy.
const UpstreamEnv = "CLICKSTREAM_KINESIS_UPSTREAM"

// Upstream returns the Kinesis emulator's URL.
func Upstream(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(UpstreamEnv); u != "" {
		return u
	}
	u := os.Getenv("AWS_ENDPOINT_URL_KINESIS")
	if u == "" {
		t.Fatal("AWS_ENDPOINT_URL_KINESIS is not set: source the stack's env file")
	}
	return u
}

// Server is a proxy serving on a local port.
type Server struct {
	*kinesisproxy.Proxy
	URL string
	// Kinesis is a client of the proxy.
	Kinesis *kinesis.Client
	// Upstream is a client of the emulator itself, for checking what was
	// really written.
	Upstream *kinesis.Client
}

// Start starts a proxy for cfg (Upstream defaults to the stack's emulator),
// stopped when the test ends. Its clients use c's config; optFns adjust the
// proxy's client (e.g. the retryer).
func Start(t testing.TB, c *awsx.Clients, cfg kinesisproxy.Config, optFns ...func(*kinesis.Options)) *Server {
	t.Helper()
	if cfg.Upstream == "" {
		cfg.Upstream = Upstream(t)
	}
	p, err := kinesisproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(p)
	t.Cleanup(func() { hs.Close(); p.Close() })
	up := cfg.Upstream
	return &Server{
		Proxy: p,
		URL:   hs.URL,
		Kinesis: kinesis.NewFromConfig(c.Config, append([]func(*kinesis.Options){
			func(o *kinesis.Options) { o.BaseEndpoint = aws.String(hs.URL) }}, optFns...)...),
		Upstream: kinesis.NewFromConfig(c.Config, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(up) }),
	}
}
