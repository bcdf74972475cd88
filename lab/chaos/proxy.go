package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/clickstream-go/clickstream/internal/retry"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy"
)

// faultProxy is the shard-limit/fault proxy (localstack/kinesisproxy) served
// in-process in front of the emulator: the components talk to Kinesis only
// through it, the ground truth and resharding bypass it. Restart closes it
// with every connection and serves a new one on the same address.
type faultProxy struct {
	upstream string
	addr     string

	mu    sync.Mutex
	p     *kinesisproxy.Proxy
	srv   *http.Server
	total kinesisproxy.Stats // of the proxies already closed
}

func startProxy(upstream string) (*faultProxy, error) {
	fp := &faultProxy{upstream: upstream, addr: "127.0.0.1:0"}
	if err := fp.serve(); err != nil {
		return nil, err
	}
	return fp, nil
}

func (fp *faultProxy) serve() error {
	p, err := kinesisproxy.New(kinesisproxy.Config{Upstream: fp.upstream, Limits: kinesisproxy.AWSLimits()})
	if err != nil {
		return err
	}
	var ln net.Listener
	for i := 0; ; i++ { // the old listener's port may take a moment to free
		if ln, err = net.Listen("tcp", fp.addr); err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("listen for the Kinesis proxy: %w", err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the next restart or Close reports nothing more useful
		}
	}()
	fp.mu.Lock()
	fp.p, fp.srv, fp.addr = p, srv, ln.Addr().String()
	fp.mu.Unlock()
	return nil
}

// URL is the endpoint the components use.
func (fp *faultProxy) URL() string { return "http://" + fp.addr }

// SetFaults changes the faults injected.
func (fp *faultProxy) SetFaults(f kinesisproxy.Faults) error {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.p.SetFaults(f)
}

// Restart drops the proxy and every connection through it, then serves a
// fresh one (with fresh shard buckets) on the same address after down.
func (fp *faultProxy) Restart(ctx context.Context, down time.Duration) error {
	fp.close()
	if err := retry.Sleep(ctx, down); err != nil {
		return err
	}
	return fp.serve()
}

func (fp *faultProxy) close() {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if fp.srv == nil {
		return
	}
	fp.srv.Close()
	fp.p.Close()
	addStats(&fp.total, fp.p.Stats())
	fp.srv, fp.p = nil, nil
}

// Stats are the counters of every proxy served so far.
func (fp *faultProxy) Stats() kinesisproxy.Stats {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	s := fp.total
	s.Requests = nil
	if fp.p != nil {
		addStats(&s, fp.p.Stats())
	}
	return s
}

func addStats(dst *kinesisproxy.Stats, s kinesisproxy.Stats) {
	dst.PutEntriesThrottled += s.PutEntriesThrottled
	dst.GetRecordsThrottled += s.GetRecordsThrottled
	dst.InjectedErrors += s.InjectedErrors
	dst.Injected500s += s.Injected500s
	dst.DroppedBefore += s.DroppedBefore
	dst.DroppedAfter += s.DroppedAfter
}

// withEnv returns env with key set to value.
func withEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}

// envValue returns key's value in env.
func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}
