package functions_test

import (
	"encoding/json"
	"fmt"
	"github.com/clickstream-go/clickstream/consumers/apps"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/clickstream-go/clickstream/internal/testenv"
)

// runtimeAPI is a minimal Lambda Runtime API (2018-06-01): it hands out one
// event, records the answer, and then holds the next poll until the test
// ends, as Lambda holds a frozen instance.
type runtimeAPI struct {
	srv     *httptest.Server
	event   []byte
	mu      sync.Mutex
	polls   int
	firstAt time.Time // first poll: init is done
	done    chan struct{}
	answer  []byte
	failed  string
	stop    chan struct{}
}

func newRuntimeAPI(t *testing.T, event []byte) *runtimeAPI {
	a := &runtimeAPI{event: event, done: make(chan struct{}), stop: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.polls++
		n := a.polls
		if n == 1 {
			a.firstAt = time.Now()
		}
		a.mu.Unlock()
		if n > 1 {
			select { // no more events: hold the poll
			case <-a.stop:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", "req-1")
		w.Header().Set("Lambda-Runtime-Deadline-Ms", fmt.Sprint(time.Now().Add(time.Minute).UnixMilli()))
		w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:test")
		w.Write(a.event)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.answer = b
		a.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		close(a.done)
	})
	fail := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.failed = r.URL.Path + ": " + string(b)
		a.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		close(a.done)
	}
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", fail)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", fail)
	a.srv = httptest.NewServer(mux)
	t.Cleanup(func() { close(a.stop); a.srv.Close() })
	return a
}

// TestColdStart_BootstrapAnswersItsFirstInvocation builds each function's
// bootstrap for this machine (the flags of make lambdas, host GOARCH), runs
// it under the Runtime API above against the local stack, and reports the
// time from process start to the first poll (init) and to the first answer.
func TestColdStart_BootstrapAnswersItsFirstInvocation(t *testing.T) {
	c := testenv.Clients(t)
	dir := t.TempDir()
	bucket := testenv.Bucket(t, c)
	e := newEnv(t, c, bucket, "coldstart/")
	stream := testenv.Stream(t, c, 1)
	mixed, err := os.ReadFile(filepath.Join("testdata", "mixed.event.json"))
	if err != nil {
		t.Fatal(err)
	}
	post, _ := json.Marshal(apiRequest(http.MethodPost, "/v1/events", "collector-key-0123456789", `{"type":"click","ts":"2026-11-22T10:00:00Z","user_id":"u-1"}`))
	for _, fn := range append(append([]string{}, apps.Names()...), "collector") {
		t.Run(fn, func(t *testing.T) {
			bin := filepath.Join(dir, fn)
			// As make lambdas builds them: one consumer main stamped with
			// the application's name, and the collector's own.
			pkg, ldflags := "../consumer", "-s -w -X main.function="+fn
			if fn == "collector" {
				pkg, ldflags = "../collector", "-s -w"
			}
			build := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-tags", "lambda.norpc", "-ldflags", ldflags, "-o", bin, pkg)
			build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("build: %v\n%s", err, out)
			}
			ev := mixed
			if fn == "collector" {
				ev = post
			}
			api := newRuntimeAPI(t, ev)
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+strings.TrimPrefix(api.srv.URL, "http://"),
				"AWS_LAMBDA_FUNCTION_NAME="+fn, "CLICKSTREAM_LOG_LEVEL=warn",
				"CLICKSTREAM_STREAM="+stream, "CLICKSTREAM_BUCKET="+bucket, "CLICKSTREAM_PREFIX="+e.prefix,
				"CLICKSTREAM_VECTORS_TABLE="+e.vectorsTable, "CLICKSTREAM_METRICS_TABLE="+e.metricsTable,
				"CLICKSTREAM_LEASES_TABLE="+e.lse, "CLICKSTREAM_API_KEYS=collector-key-0123456789")
			var logs strings.Builder
			cmd.Stdout, cmd.Stderr = &logs, &logs
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			select {
			case <-api.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("no answer within 30s; logs:\n%s", logs.String())
			}
			answered := time.Since(start)
			api.mu.Lock()
			defer api.mu.Unlock()
			if api.failed != "" {
				t.Fatalf("function failed: %s\nlogs:\n%s", api.failed, logs.String())
			}
			init := api.firstAt.Sub(start)
			t.Logf("%s: init (start → first poll) %v, first invocation answered after %v; answer %s", fn, init.Round(100*time.Microsecond),
				answered.Round(100*time.Microsecond), api.answer)
			if fn == "collector" {
				var resp events.APIGatewayV2HTTPResponse
				if err := json.Unmarshal(api.answer, &resp); err != nil || resp.StatusCode != http.StatusAccepted {
					t.Fatalf("collector answer %s (%v)", api.answer, err)
				}
			} else {
				var resp events.KinesisEventResponse
				if err := json.Unmarshal(api.answer, &resp); err != nil || len(resp.BatchItemFailures) != 0 {
					t.Fatalf("consumer answer %s (%v)", api.answer, err)
				}
			}
			if init > 5*time.Second {
				t.Fatalf("init took %v", init)
			}
		})
	}
}
