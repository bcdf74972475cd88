// Package httpadapter serves an http.Handler (the collector's) from AWS Lambda
// behind an API Gateway HTTP API or a function URL: both deliver
// events.APIGatewayV2HTTPRequest (payload format 2.0) and take
// events.APIGatewayV2HTTPResponse.
//
// Hand-written rather than awslabs/aws-lambda-go-api-proxy: the conversion is
// about a hundred lines, and the proxy module brings framework adapters (gin,
// echo, fiber, ...) into the module graph for the one function used here.
package httpadapter

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// Handler adapts an http.Handler: lambda.Start(New(h).Handle).
type Handler struct {
	h http.Handler
}

// New returns an adapter serving h.
func New(h http.Handler) *Handler { return &Handler{h: h} }

// Handle serves one request. The request context is ctx, so the function's
// deadline bounds the handler.
func (a *Handler) Handle(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	r, err := Request(ctx, ev)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusBadRequest, Body: "bad request\n",
			Headers: map[string]string{"Content-Type": "text/plain; charset=utf-8"}}, nil
	}
	w := &recorder{header: http.Header{}}
	a.h.ServeHTTP(w, r)
	return Response(w.result())
}

// recorder buffers a response (Lambda answers with the whole body at once).
// httptest.ResponseRecorder would do, but it is a test package.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if w.header.Get("Content-Type") == "" && w.body.Len() == 0 {
		w.header.Set("Content-Type", http.DetectContentType(b))
	}
	return w.body.Write(b)
}

// Flush implements http.Flusher (a no-op: the body is sent at the end).
func (w *recorder) Flush() {}

func (w *recorder) result() *http.Response {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return &http.Response{StatusCode: w.code, Header: w.header, Body: io.NopCloser(&w.body)}
}

// Request converts a payload format 2.0 event into an *http.Request.
func Request(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (*http.Request, error) {
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			return nil, fmt.Errorf("decode base64 body: %w", err)
		}
		body = b
	}
	path := ev.RawPath
	if path == "" {
		path = ev.RequestContext.HTTP.Path
	}
	if path == "" {
		path = "/"
	}
	u := &url.URL{Path: path, RawQuery: ev.RawQueryString}
	if raw, err := url.PathUnescape(path); err == nil && raw != path {
		u.Path, u.RawPath = raw, path
	}
	method := ev.RequestContext.HTTP.Method
	if method == "" {
		method = http.MethodGet
	}
	r, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, v := range ev.Headers {
		// Payload 2.0 joins repeated headers with commas; that is also
		// how HTTP allows them to be combined.
		r.Header.Set(k, v)
	}
	if len(ev.Cookies) > 0 {
		r.Header.Set("Cookie", strings.Join(ev.Cookies, "; "))
	}
	r.Host = ev.RequestContext.DomainName
	if h := ev.Headers["host"]; h != "" {
		r.Host = h
	}
	r.ContentLength = int64(len(body))
	r.RemoteAddr = net.JoinHostPort(ev.RequestContext.HTTP.SourceIP, "0")
	if p := ev.RequestContext.HTTP.Protocol; p != "" {
		if major, minor, ok := http.ParseHTTPVersion(p); ok {
			r.Proto, r.ProtoMajor, r.ProtoMinor = p, major, minor
		}
	}
	if id := ev.RequestContext.RequestID; id != "" && r.Header.Get("X-Request-Id") == "" {
		r.Header.Set("X-Request-Id", id)
	}
	return r, nil
}

// Response converts a recorded response: single-value headers go to
// Headers, repeated ones to MultiValueHeaders, Set-Cookie to Cookies, and
// bodies that are not text (or are content-encoded) are base64-encoded.
func Response(res *http.Response) (events.APIGatewayV2HTTPResponse, error) {
	out := events.APIGatewayV2HTTPResponse{StatusCode: res.StatusCode, Headers: map[string]string{}}
	for k, vs := range res.Header {
		switch {
		case k == "Set-Cookie":
			out.Cookies = append(out.Cookies, vs...)
		case len(vs) == 1:
			out.Headers[k] = vs[0]
		default:
			if out.MultiValueHeaders == nil {
				out.MultiValueHeaders = map[string][]string{}
			}
			out.MultiValueHeaders[k] = vs
		}
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return out, fmt.Errorf("read response body: %w", err)
	}
	if isText(res.Header) {
		out.Body = string(body)
	} else {
		out.Body, out.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	return out, nil
}

// isText reports whether a body with these headers can travel as a string.
func isText(h http.Header) bool {
	if ce := h.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return false
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		return true // empty bodies (204, 202 without content)
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return strings.HasPrefix(mt, "text/") || mt == "application/json" || mt == "application/x-ndjson" ||
		strings.HasSuffix(mt, "+json") || mt == "application/javascript" || mt == "application/xml"
}
