package vectors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/consumers/vectors/client"
	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/internal/testenv"
)

// getterFunc adapts a function to VectorGetter for the handler's pure tests.
type getterFunc func(ctx context.Context, user string, at time.Time, k int) (*Vector, error)

func (f getterFunc) Get(ctx context.Context, user string, at time.Time, k int) (*Vector, error) {
	return f(ctx, user, at, k)
}

type call struct {
	user string
	at   time.Time
	k    int
}

func fakeGetter(calls *[]call) VectorGetter {
	return getterFunc(func(ctx context.Context, user string, at time.Time, k int) (*Vector, error) {
		*calls = append(*calls, call{user, at, k})
		switch user {
		case "missing":
			return nil, fmt.Errorf("%w: %s", ErrNotFound, user)
		case "broken":
			return nil, errors.New("boom")
		case "throttled":
			return nil, fmt.Errorf("get: %w", &types.ProvisionedThroughputExceededException{Message: aws.String("slow")})
		case "ancient":
			return nil, ErrAtOutOfRange
		}
		return &Vector{UserID: user, AsOf: time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC), HalfLifeHours: 168, Events: 3,
			Features: []Feature{{Name: "cat:sports", Clicks: 1.5, Impressions: 4}, {Name: "tag:soccer", Clicks: 0, Impressions: 2.25}}}, nil
	})
}

func TestHandler_StatusCodesAndParameters(t *testing.T) {
	var calls []call
	reg := prometheus.NewRegistry()
	h, err := NewHandler(fakeGetter(&calls), HandlerConfig{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, target string
		code           int
		errPart        string
		want           call
	}{
		{"GET", "/v1/users/u-42/vector", 200, "", call{user: "u-42", k: 20}},
		{"GET", "/v1/users/u-42/vector?k=5&at=2026-11-22T10:00:00Z", 200, "", call{"u-42", time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), 5}},
		{"GET", "/v1/users/u-42/vector?at=2026-11-22T12:00:00.5%2B02:00", 200, "", call{"u-42", time.Date(2026, 11, 22, 10, 0, 0, 5e8, time.UTC), 20}},
		{"GET", "/v1/users/a%2Fb%20c/vector", 200, "", call{user: "a/b c", k: 20}},
		{"GET", "/v1/users/missing/vector", 404, "user not found: missing", call{user: "missing", k: 20}},
		{"GET", "/v1/users/u/vector?k=0", 400, "k: must be an integer from 1 to 1000", call{}},
		{"GET", "/v1/users/u/vector?k=1001", 400, "k:", call{}},
		{"GET", "/v1/users/u/vector?k=ten", 400, "k:", call{}},
		{"GET", "/v1/users/u/vector?at=yesterday", 400, "at: must be an RFC 3339 time", call{}},
		{"GET", "/v1/users/ancient/vector", 400, "at: too far", call{user: "ancient", k: 20}},
		{"GET", "/v1/users/broken/vector", 500, "vector store error", call{user: "broken", k: 20}},
		{"GET", "/v1/users/throttled/vector", 503, "throttling", call{user: "throttled", k: 20}},
		{"POST", "/v1/users/u/vector", 405, "", call{}},
		{"GET", "/v1/users/u/vectors", 404, "", call{}},
	} {
		calls = nil
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.target, nil))
		if rec.Code != tc.code {
			t.Errorf("%s %s: %d, want %d (%s)", tc.method, tc.target, rec.Code, tc.code, rec.Body)
			continue
		}
		if tc.errPart != "" {
			var e struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, tc.errPart) {
				t.Errorf("%s: body %s, want an error containing %q", tc.target, rec.Body, tc.errPart)
			}
		}
		if tc.code == 503 && rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", tc.target)
		}
		if tc.want.user != "" {
			if len(calls) != 1 || calls[0].user != tc.want.user || calls[0].k != tc.want.k || !calls[0].at.Equal(tc.want.at) {
				t.Errorf("%s: getter called with %+v, want %+v", tc.target, calls, tc.want)
			}
		} else if len(calls) != 0 {
			t.Errorf("%s: getter called for a rejected request", tc.target)
		}
	}
	if n := counterCount(t, reg, "clickstream_vectors_read_seconds"); n < 10 {
		t.Errorf("read latency histogram has %d samples", n)
	}
}

func counterCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// The JSON shape is a contract (docs/DESIGN.md §4.2).
func TestHandler_ResponseHasTheDesignedJSONShape(t *testing.T) {
	var calls []call
	h, _ := NewHandler(fakeGetter(&calls), HandlerConfig{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/users/u-42/vector", nil))
	const golden = `{"user_id":"u-42","as_of":"2026-11-22T10:00:00.123Z","half_life_hours":168,"events":3,` +
		`"features":[{"name":"cat:sports","clicks":1.5,"impressions":4},{"name":"tag:soccer","clicks":0,"impressions":2.25}]}`
	if got := strings.TrimSpace(rec.Body.String()); got != golden {
		t.Errorf("body\n%s\nwant\n%s", got, golden)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestClient_TalksToTheHandler(t *testing.T) {
	var calls []call
	h, _ := NewHandler(fakeGetter(&calls), HandlerConfig{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := client.New(srv.URL+"/", srv.Client())
	ctx := context.Background()
	v, err := c.Vector(ctx, "a/b c", 7)
	if err != nil {
		t.Fatal(err)
	}
	if v.UserID != "a/b c" || len(v.Features) != 2 || v.Features[0].Name != "cat:sports" || v.Features[0].Impressions != 4 || v.Events != 3 {
		t.Errorf("vector %+v", v)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.FixedZone("x", 3600))
	if _, err := c.VectorAt(ctx, "u", 0, at); err != nil {
		t.Fatal(err)
	}
	if calls[0].k != 7 || calls[0].user != "a/b c" || calls[1].k != 20 || !calls[1].at.Equal(at) {
		t.Errorf("calls %+v", calls)
	}
	if _, err := c.Vector(ctx, "missing", 0); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("missing: %v, want ErrNotFound", err)
	}
	var se *client.StatusError
	if _, err := c.Vector(ctx, "broken", 0); !errors.As(err, &se) || se.StatusCode != 500 || se.Message != "vector store error" {
		t.Errorf("broken: %v", err)
	}
	for _, bad := range []string{"", ".", ".."} {
		if _, err := c.Vector(ctx, bad, 0); err == nil || len(calls) != 4 {
			t.Errorf("user %q: %v (the client must refuse ids a URL path cannot carry)", bad, err)
		}
	}
}

// The read side on DynamoDB Local, through the HTTP API and the client:
// ordering, k, decay to ?at=, 404, and the CLI and demo printers.
func TestReader_DynamoDBThroughHTTPAndClient(t *testing.T) {
	c := testenv.Clients(t)
	table := testenv.Table(t, c, setup.VectorsTable)
	p, err := New(c.DynamoDB, Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	sp := open(t, p)
	week := 7 * 24 * time.Hour
	b := batchOf(
		rec(1, event.TypeClick, "u-1", testNow, map[string]float64{"a": 1, "b": 3}),
		rec(2, event.TypeImpression, "u-1", testNow.Add(-week), map[string]float64{"a": 8, "c": 2}),
		rec(3, event.TypeClick, "u-2", testNow, map[string]float64{"z": 1}),
	)
	if _, err := sp.Process(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	rd := NewReader(c.DynamoDB, ReaderConfig{Table: table, Now: func() time.Time { return testNow }})
	h, _ := NewHandler(rd, HandlerConfig{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	cl := client.New(srv.URL, srv.Client())
	ctx := context.Background()

	v, err := cl.Vector(ctx, "u-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Feature{{Name: "b", Clicks: 3}, {Name: "a", Clicks: 1, Impressions: 4}, {Name: "c", Impressions: 1}}
	if !v.AsOf.Equal(testNow) || v.Events != 2 || v.HalfLifeHours != 168 || !sameFeatures(v.Features, want) {
		t.Errorf("vector %+v, want features %v", v, want)
	}
	v, err = cl.VectorAt(ctx, "u-1", 1, testNow.Add(week))
	if err != nil {
		t.Fatal(err)
	}
	if !sameFeatures(v.Features, []Feature{{Name: "b", Clicks: 1.5}}) {
		t.Errorf("k=1 a week later: %+v", v.Features)
	}
	if _, err := cl.Vector(ctx, "nobody", 0); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("unknown user: %v", err)
	}
	if _, err := cl.VectorAt(ctx, "u-1", 0, testNow.AddDate(-500, 0, 0)); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("at 500 years back: %v, want 400", err)
	}
	if _, err := Get(ctx, c.DynamoDB, table, "u-2", testNow, 5); err != nil {
		t.Errorf("Get: %v", err)
	}

	var out bytes.Buffer
	if err := WriteVector(ctx, &out, rd, "u-1", testNow, 2); err != nil {
		t.Fatal(err)
	}
	var printed Vector
	if err := json.Unmarshal(out.Bytes(), &printed); err != nil || len(printed.Features) != 2 || printed.UserID != "u-1" {
		t.Errorf("WriteVector printed %s (%v)", out.String(), err)
	}
	if err := WriteVector(ctx, io.Discard, rd, "nobody", time.Time{}, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("WriteVector unknown user: %v", err)
	}
	out.Reset()
	if err := WriteSummary(ctx, &out, rd, 10, 2); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "u-1") || !strings.Contains(s, "u-2") || !strings.Contains(s, "b 3/0 ") {
		t.Errorf("summary:\n%s", s)
	}
	// The route escapes: a user id with a slash round-trips.
	if _, err := cl.Vector(ctx, "a/b", 0); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("a/b: %v", err)
	}
}

func sameFeatures(got, want []Feature) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Name != want[i].Name || !near(got[i].Clicks, want[i].Clicks) || !near(got[i].Impressions, want[i].Impressions) {
			return false
		}
	}
	return true
}

func TestClient_DoesNotFollowTheServerIntoUnboundedBodies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(502)
		_, _ = io.WriteString(w, strings.Repeat("x", 1000))
	}))
	defer srv.Close()
	_, err := client.New(srv.URL, nil).Vector(context.Background(), "u", 0)
	var se *client.StatusError
	if !errors.As(err, &se) || se.StatusCode != 502 || len(se.Message) > 200 {
		t.Errorf("err %v", err)
	}
}

// TestReader_DirectReadsEqualTheAPI: a service inside AWS reading the table
// directly (Get, GetMany) gets exactly what the read API answers, for the
// same users, k and at.
func TestReader_DirectReadsEqualTheAPI(t *testing.T) {
	c := testenv.Clients(t)
	table := testenv.Table(t, c, setup.VectorsTable)
	p, err := New(c.DynamoDB, Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	sp := open(t, p)
	var recs []consumers.Record
	users := make([]string, 130) // more than one BatchGetItem call
	for i := range users {
		users[i] = fmt.Sprintf("u-%03d", i)
		for j := range 1 + i%3 {
			typ := event.TypeImpression
			if j%2 == 0 {
				typ = event.TypeClick
			}
			recs = append(recs, rec(len(recs)+1, typ, users[i], testNow.Add(-time.Duration(i*j)*time.Hour),
				map[string]float64{fmt.Sprintf("f%d", j): 1 + float64(i%5), "common": 0.5}))
		}
	}
	if _, err := sp.Process(context.Background(), batchOf(recs...)); err != nil {
		t.Fatal(err)
	}
	rd := NewReader(c.DynamoDB, ReaderConfig{Table: table, Now: func() time.Time { return testNow }})
	h, _ := NewHandler(rd, HandlerConfig{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	cl := client.New(srv.URL, srv.Client())
	ctx := context.Background()
	at := testNow.Add(36 * time.Hour)
	many, err := rd.GetMany(ctx, append(users, "nobody", users[0]), at, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(many) != len(users) || many["nobody"] != nil {
		t.Fatalf("GetMany: %d vectors for %d users", len(many), len(users))
	}
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	for _, u := range users {
		viaAPI, err := cl.VectorAt(ctx, u, 3, at)
		if err != nil {
			t.Fatal(err)
		}
		direct, err := rd.Get(ctx, u, at, 3)
		if err != nil {
			t.Fatal(err)
		}
		if a, d, m := js(viaAPI), js(direct), js(many[u]); a != d || a != m {
			t.Fatalf("%s:\nAPI     %s\nGet     %s\nGetMany %s", u, a, d, m)
		}
	}
}
