package functions_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/testenv"
	"github.com/clickstream-go/clickstream/kpl"
	"github.com/clickstream-go/clickstream/lambdas/functions"
	"github.com/clickstream-go/clickstream/lambdas/functions/collectorfn"
)

func apiRequest(method, path, key, body string) events.APIGatewayV2HTTPRequest {
	req := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "$default", RawPath: path,
		Headers: map[string]string{"content-type": "application/x-ndjson", "host": "abc.execute-api.us-east-1.amazonaws.com"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{RequestID: "req-1", DomainName: "abc.execute-api.us-east-1.amazonaws.com",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path, Protocol: "HTTP/1.1", SourceIP: "203.0.113.9"}},
		Body: base64.StdEncoding.EncodeToString([]byte(body)), IsBase64Encoded: true,
	}
	if key != "" {
		req.Headers["authorization"] = "Bearer " + key
	}
	return req
}

func TestCollector_PutsAcceptedEventsOnTheStream(t *testing.T) {
	c := testenv.Clients(t)
	stream := testenv.Stream(t, c, 1)
	ctx := context.Background()
	col, err := collectorfn.New(ctx, c, nil, functions.Config{Stream: stream, APIKeys: []string{"collector-key-0123456789"}})
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close(ctx)

	body := `{"type":"click","ts":"2026-11-22T10:00:00Z","user_id":"u-1","id":"c-1"}
{"type":"click"}
{"type":"impression","ts":"2026-11-22T10:00:01Z","user_id":"u-2","id":"c-2","features":{"cat:x":1}}
`
	resp, err := col.Handle(ctx, apiRequest(http.MethodPost, "/v1/events", "collector-key-0123456789", body))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(resp.Body, `"accepted":2`) || resp.IsBase64Encoded {
		t.Fatalf("response %d %q (base64 %v), want 202 with 2 accepted", resp.StatusCode, resp.Body, resp.IsBase64Encoded)
	}
	if resp, _ := col.Handle(ctx, apiRequest(http.MethodPost, "/v1/events", "wrong", body)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad key: %d %s", resp.StatusCode, resp.Body)
	}
	if resp, _ := col.Handle(ctx, apiRequest(http.MethodGet, "/healthz", "", "")); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}

	// 202 means on the stream: read it back.
	shards, err := c.Kinesis.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	it, err := c.Kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
		ShardId: shards.Shards[0].ShardId, ShardIteratorType: "TRIM_HORIZON"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range out.Records {
		datas := [][]byte{r.Data}
		if kpl.IsAggregated(r.Data) {
			subs, err := kpl.Deaggregate(r.Data, aws.ToString(r.PartitionKey))
			if err != nil {
				t.Fatal(err)
			}
			datas = nil
			for _, s := range subs {
				datas = append(datas, s.Data)
			}
		}
		for _, d := range datas {
			e, err := event.Decode(d)
			if err != nil {
				t.Fatalf("record on the stream: %v", err)
			}
			ids = append(ids, e.ID)
		}
	}
	if strings.Join(ids, ",") != "c-1,c-2" {
		t.Fatalf("events on the stream %v, want c-1,c-2", ids)
	}
}

// TestLoadAPIKeys_FromSecretsManager reads the keys secret the way the
// collector function does at a cold start, from moto_server (Secrets
// Manager is not part of the local stack; moto is installed for infra-test).
func TestLoadAPIKeys_FromSecretsManager(t *testing.T) {
	c := testenv.Clients(t)
	endpoint := startMoto(t)
	sm := secretsmanager.NewFromConfig(c.Config, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(endpoint) })
	ctx := context.Background()
	sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("clickstream-collector-keys"),
		SecretString: aws.String(`["key-a-0123456789abcd","key-b-0123456789abcd"]`)})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := collectorfn.LoadAPIKeys(ctx, sm, functions.Config{APIKeysSecretARN: aws.ToString(sec.ARN), APIKeys: []string{"local-key-0123456789"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != "local-key-0123456789,key-a-0123456789abcd,key-b-0123456789abcd" {
		t.Fatalf("keys %v", keys)
	}
	bad, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("not-a-list"), SecretString: aws.String(`key-a`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := collectorfn.LoadAPIKeys(ctx, sm, functions.Config{APIKeysSecretARN: aws.ToString(bad.ARN)}); err == nil || !strings.Contains(err.Error(), "JSON array") {
		t.Fatalf("malformed secret: err %v", err)
	}
	if _, err := collectorfn.LoadAPIKeys(ctx, sm, functions.Config{APIKeysSecretARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing"}); err == nil {
		t.Fatal("missing secret accepted")
	}
	if _, err := collectorfn.LoadAPIKeys(ctx, nil, functions.Config{}); !errors.Is(err, collectorfn.ErrNoAPIKeys) {
		t.Fatalf("no keys: err %v", err)
	}
}

// startMoto runs moto_server on a free loopback port until the test ends.
func startMoto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Fatalf("moto_server not installed (make install-tools / infra-test need it): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(endpoint + "/moto-api/"); err == nil {
			resp.Body.Close()
			return endpoint
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server did not start: %s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
