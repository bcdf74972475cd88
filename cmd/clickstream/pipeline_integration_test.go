package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickstream-go/clickstream/consumers/archive"
	"github.com/clickstream-go/clickstream/consumers/metrics"
	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy"
	"github.com/clickstream-go/clickstream/localstack/kinesisproxy/proxytest"
)

// syncBuffer is a bytes.Buffer safe to write from a running command while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// background runs a long-running command until the returned stop is called;
// stop reports its exit code and output.
func background(t *testing.T, args ...string) (stop func() (int, string)) {
	t.Helper()
	stop, _ = backgroundLogs(t, args...)
	return stop
}

// backgroundLogs is background that also returns the output so far.
func backgroundLogs(t *testing.T, args ...string) (stop func() (int, string), logs func() string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, &out, &out) }()
	var once sync.Once
	code := -1
	stop = func() (int, string) {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(60 * time.Second):
				t.Errorf("%s did not stop within 60s", args[0])
			}
		})
		return code, out.String()
	}
	t.Cleanup(func() { stop() })
	return stop, out.String
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHealthy(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s/healthz not up within 30s", addr)
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	var out, errw bytes.Buffer
	if code := run(context.Background(), args, &out, &errw); code != 0 {
		t.Fatalf("clickstream %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errw.String())
	}
	return out.String()
}

// TestIntegration_Pipeline runs the binary's commands the way `make demo`
// does — setup, collector, consume archive vectors metrics, api, loadgen —
// and checks that every output holds what loadgen sent. As under `make up`,
// Kinesis is reached through the proxy that serves enhanced fan-out, and
// vectors and metrics read with it (archive polls).
func TestIntegration_Pipeline(t *testing.T) {
	c := testenv.Clients(t)
	ps := proxytest.Start(t, c, kinesisproxy.Config{Limits: kinesisproxy.NoLimits()})
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", ps.URL)
	ctx := context.Background()
	stream, bucket := testenv.Name("cli"), testenv.Bucket(t, c)
	vt, mt, lt := testenv.Name("cli-vectors"), testenv.Name("cli-metrics"), testenv.Name("cli-leases")
	t.Cleanup(func() {
		c.Kinesis.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(stream)})
		for _, tb := range []string{vt, mt, lt} {
			c.DynamoDB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(tb)})
		}
	})
	res := []string{"--stream", stream, "--bucket", bucket, "--vectors-table", vt, "--metrics-table", mt, "--leases-table", lt}

	out := mustRun(t, append([]string{"setup", "--shards", "2"}, res...)...)
	for _, want := range []string{"created stream " + stream, "created table  " + vt, "created table  " + mt, "created table  " + lt, "found   bucket " + bucket} {
		if !strings.Contains(out, want) {
			t.Errorf("setup output lacks %q:\n%s", want, out)
		}
	}
	if out := mustRun(t, append([]string{"setup", "--shards", "2"}, res...)...); strings.Contains(out, "created") {
		t.Errorf("second setup created something:\n%s", out)
	}

	collAddr, consAddr, apiAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	stopCollector := background(t, "collector", "--addr", collAddr, "--insecure-no-auth", "--stream", stream, "--linger", "20ms")
	stopConsume := background(t, append([]string{"consume", "archive", "vectors", "metrics", "--metrics-addr", consAddr,
		"--archive-max-age", "2s", "--lease-duration", "3s", "--poll-interval", "100ms", "--read-mode", "efo,archive=poll"}, res...)...)
	const apiKey = "pipeline-test-key-0123456789"
	stopAPI := background(t, append([]string{"api", "--addr", apiAddr, "--no-alerts", "--api-key", apiKey}, res...)...)
	waitHealthy(t, collAddr)
	waitHealthy(t, consAddr)
	waitHealthy(t, apiAddr)

	out = mustRun(t, "loadgen", "--url", "http://"+collAddr, "--events", "1500", "--bad-rate", "0.02", "--users", "40", "--seed", "11", "--quiet")
	counts := map[string]int64{}
	for _, m := range regexp.MustCompile(`(\w+)=(\d+)`).FindAllStringSubmatch(out, -1) {
		counts[m[1]], _ = strconv.ParseInt(m[2], 10, 64)
	}
	if counts["sent"]+counts["rejected"] != 1500 || counts["rejected"] == 0 || counts["failed"] != 0 {
		t.Fatalf("loadgen summary: %s", out)
	}

	// Archive: every accepted event, exactly once.
	deadline := time.Now().Add(2 * time.Minute)
	var inv archive.Inventory
	for {
		var err error
		if inv, err = archive.Stats(ctx, c.S3, bucket, "", archive.Filter{}); err != nil {
			t.Fatal(err)
		}
		if inv.Rows >= counts["sent"] || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if inv.Rows != counts["sent"] {
		t.Fatalf("archive holds %d rows, want %d", inv.Rows, counts["sent"])
	}

	// Stop the consumers gracefully: the final flush writes every window.
	if code, logs := stopConsume(); code != 0 {
		t.Fatalf("consume exit %d:\n%s", code, logs)
	}
	if st := ps.Stats(); st.FanOutRecords == 0 || st.Subscriptions < 4 {
		t.Errorf("vectors and metrics on 2 shards: %d subscriptions, %d records pushed", st.Subscriptions, st.FanOutRecords)
	}
	// Their stream consumers stay registered (and cost money on AWS) until deregistered.
	out = mustRun(t, "stream", "consumers", "--stream", stream)
	if !regexp.MustCompile(`(?m)^metrics +ACTIVE`).MatchString(out) || !regexp.MustCompile(`(?m)^vectors +ACTIVE`).MatchString(out) || strings.Contains(out, "archive") {
		t.Errorf("stream consumers:\n%s", out)
	}
	mustRun(t, "stream", "deregister-consumer", "--stream", stream, "vectors", "metrics")
	if out := mustRun(t, "stream", "consumers", "--stream", stream); !strings.Contains(out, "no stream consumers registered") &&
		regexp.MustCompile(`(?m)^\w+ +(CREATING|ACTIVE)`).MatchString(out) {
		t.Errorf("after deregistering:\n%s", out)
	}

	// Metrics through the API: impressions and clicks over all windows
	// equal what was sent.
	q := url.Values{"from": {time.Now().Add(-30 * time.Minute).UTC().Format(time.RFC3339)}, "open": {"true"}}
	var mres metrics.Result
	// The read API refuses requests without the key, and says what to send.
	for _, auth := range []string{"", "Bearer wrong-key-0123456789"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+apiAddr+"/v1/metrics/engagement", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "Authorization: Bearer KEY") {
			t.Errorf("authorization %q: %s %s", auth, resp.Status, body)
		}
	}
	getJSON(t, "http://"+apiAddr+"/v1/metrics/engagement?"+q.Encode(), &mres, apiKey)
	var impressions, clicks float64
	for _, r := range mres.Rows {
		impressions += r.Values["impressions"]
		clicks += r.Values["clicks"]
	}
	if int64(impressions) != counts["impression"] || int64(clicks) != counts["click"] {
		t.Errorf("metrics: %v impressions, %v clicks; loadgen sent %d and %d", impressions, clicks, counts["impression"], counts["click"])
	}

	// Vectors: a user through the API and through `vectors get` agree.
	scan, err := c.DynamoDB.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(vt), Limit: aws.Int32(1)})
	if err != nil || len(scan.Items) == 0 {
		t.Fatalf("no user vectors: %v", err)
	}
	uid, ok := scan.Items[0]["user_id"].(*types.AttributeValueMemberS)
	if !ok {
		t.Fatalf("user_id is %T", scan.Items[0]["user_id"])
	}
	user := uid.Value
	at := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
	var viaAPI, viaCLI map[string]any
	getJSON(t, "http://"+apiAddr+"/v1/users/"+url.PathEscape(user)+"/vector?k=5&at="+at, &viaAPI, apiKey)
	if err := json.Unmarshal([]byte(mustRun(t, "vectors", "get", "--vectors-table", vt, "--k", "5", "--at", at, user)), &viaCLI); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(viaAPI) != fmt.Sprint(viaCLI) {
		t.Errorf("API and CLI disagree:\n%v\n%v", viaAPI, viaCLI)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+apiAddr+"/v1/users/nobody-here/vector", nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 404 {
		t.Errorf("unknown user: %v %v", resp.StatusCode, err)
	}

	for name, stop := range map[string]func() (int, string){"collector": stopCollector, "api": stopAPI} {
		if code, logs := stop(); code != 0 {
			t.Errorf("%s exit %d:\n%s", name, code, logs)
		}
	}
}

func getJSON(t *testing.T, u string, v any, key string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		t.Fatalf("GET %s: %s %s", u, resp.Status, b.String())
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// TestIntegration_TwoConsumeProcessesOnOneHostWithDefaultFlags starts two
// `clickstream consume vectors` on one host without --metrics-addr, as
// `consume --help` suggests for scaling out: both run, the second serves its
// metrics on the next free port and says so, and the shards are split
// between them.
func TestIntegration_TwoConsumeProcessesOnOneHostWithDefaultFlags(t *testing.T) {
	c := testenv.Clients(t)
	stream, vt, lt := testenv.Name("cli-two"), testenv.Name("cli-two-vectors"), testenv.Name("cli-two-leases")
	t.Cleanup(func() {
		ctx := context.Background()
		c.Kinesis.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(stream)})
		for _, tb := range []string{vt, lt} {
			c.DynamoDB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(tb)})
		}
	})
	res := []string{"--stream", stream, "--vectors-table", vt, "--leases-table", lt, "--bucket", testenv.Bucket(t, c)}
	mustRun(t, append([]string{"setup", "--shards", "2"}, res...)...)
	args := append([]string{"consume", "vectors", "--lease-duration", "3s", "--log-format", "text"}, res...)
	addrOf := func(stop func() (int, string), logs func() string) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if m := regexp.MustCompile(`msg=consuming .*metrics_addr=(\S+)`).FindStringSubmatch(logs()); m != nil {
				return m[1]
			}
			time.Sleep(100 * time.Millisecond)
		}
		code, out := stop()
		t.Fatalf("no consuming line within 30s (exit %d):\n%s", code, out)
		return ""
	}
	stopA, logsA := backgroundLogs(t, args...)
	addrA := addrOf(stopA, logsA)
	stopB, logsB := backgroundLogs(t, args...)
	addrB := addrOf(stopB, logsB)
	if addrA == addrB {
		t.Fatalf("both serve metrics on %s", addrA)
	}
	if addrA == DefaultConsumeMetricsAddr && !strings.Contains(logsB(), "metrics address in use") {
		t.Errorf("the second process does not say why it moved:\n%s", logsB())
	}
	waitHealthy(t, addrA)
	waitHealthy(t, addrB)
	// Each takes one of the two shards.
	held := func(addr string) float64 {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^clickstream_consumer_leases_held\{app="vectors"\} (\d+)`).FindSubmatch(b)
		if m == nil {
			return 0
		}
		n, _ := strconv.ParseFloat(string(m[1]), 64)
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for held(addrA) != 1 || held(addrB) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("leases held: %v and %v, want 1 each", held(addrA), held(addrB))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for name, stop := range map[string]func() (int, string){"first": stopA, "second": stopB} {
		if code, logs := stop(); code != 0 {
			t.Errorf("%s consume exit %d:\n%s", name, code, logs)
		}
	}
}
