package httpadapter_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/clickstream-go/clickstream/lambdas/httpadapter"
)

func TestHandle_ConvertsRequestAndResponse(t *testing.T) {
	var got *http.Request
	var gotBody string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Add("Vary", "Origin")
		w.Header().Add("Vary", "Accept-Encoding")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"accepted":1}`)
	})
	ev := events.APIGatewayV2HTTPRequest{
		RawPath: "/v1/events", RawQueryString: "x=1&y=%20",
		Cookies: []string{"s=1", "t=2"},
		Headers: map[string]string{"authorization": "Bearer k", "content-type": "application/x-ndjson", "host": "api.example.com"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{RequestID: "rid",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", SourceIP: "203.0.113.9", Protocol: "HTTP/1.1"}},
		Body: base64.StdEncoding.EncodeToString([]byte("{\"a\":1}\n")), IsBase64Encoded: true,
	}
	resp, err := httpadapter.New(h).Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != "POST" || got.URL.Path != "/v1/events" || got.URL.Query().Get("y") != " " || got.Host != "api.example.com" ||
		got.Header.Get("Authorization") != "Bearer k" || got.Header.Get("Cookie") != "s=1; t=2" || gotBody != "{\"a\":1}\n" ||
		got.ContentLength != 8 || got.RemoteAddr != "203.0.113.9:0" || got.Header.Get("X-Request-Id") != "rid" {
		t.Fatalf("request %+v body %q", got, gotBody)
	}
	if resp.StatusCode != 202 || resp.Body != `{"accepted":1}` || resp.IsBase64Encoded || resp.Headers["Content-Type"] != "application/json" ||
		len(resp.Cookies) != 2 || len(resp.MultiValueHeaders["Vary"]) != 2 {
		t.Fatalf("response %+v", resp)
	}
}

func TestHandle_BinaryBodiesAreBase64(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write([]byte{0x1f, 0x8b, 0, 1})
	})
	resp, err := httpadapter.New(h).Handle(context.Background(), events.APIGatewayV2HTTPRequest{RawPath: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.IsBase64Encoded || resp.Body != base64.StdEncoding.EncodeToString([]byte{0x1f, 0x8b, 0, 1}) || resp.StatusCode != 200 {
		t.Fatalf("response %+v", resp)
	}
	if resp, _ := httpadapter.New(h).Handle(context.Background(), events.APIGatewayV2HTTPRequest{Body: "%%%", IsBase64Encoded: true}); resp.StatusCode != 400 {
		t.Fatalf("bad base64: %d", resp.StatusCode)
	}
}
