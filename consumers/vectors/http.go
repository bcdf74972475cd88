package vectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Route is the read API's route pattern (net/http ServeMux syntax).
const Route = "GET /v1/users/{user_id}/vector"

// HandlerConfig configures the read API handler. Zero fields mean defaults.
type HandlerConfig struct {
	// DefaultK is the number of features returned without ?k=. Default 20.
	DefaultK int
	// MaxK is the largest ?k= accepted (400 above). Default 1000.
	MaxK int
	// Timeout bounds one request's DynamoDB read. Default 5s.
	Timeout time.Duration
	// Logger receives errors of the store. Default: discard.
	Logger *slog.Logger
	// Registerer receives the request latency histogram. Default nil: none.
	Registerer prometheus.Registerer
}

// VectorGetter is what the handler reads from: *Reader in production.
type VectorGetter interface {
	Get(ctx context.Context, user string, at time.Time, k int) (*Vector, error)
}

var _ VectorGetter = (*Reader)(nil)

// NewHandler serves Route:
//
//	GET /v1/users/{user_id}/vector?k=20&at=2026-11-22T10:00:00Z
//
// 200 with the Vector as JSON; 400 {"error":…} for a bad k (1..MaxK) or at
// (RFC 3339) or an at too far before the user's events; 404 for an unknown
// user; 503 when DynamoDB throttles (Retry-After: 1); 500 otherwise. Mount
// it on the API server's mux, e.g. mux.Handle("/v1/users/", h). The user id
// is one path segment, URL-escaped ("a/b" as "a%2Fb"); the ids "." and ".."
// cannot be addressed (net/http cleans them out of paths): use Reader.Get.
func NewHandler(g VectorGetter, cfg HandlerConfig) (http.Handler, error) {
	if cfg.DefaultK <= 0 {
		cfg.DefaultK = 20
	}
	if cfg.MaxK <= 0 {
		cfg.MaxK = 1000
	}
	if cfg.DefaultK > cfg.MaxK {
		return nil, fmt.Errorf("vectors handler: default k %d above max k %d", cfg.DefaultK, cfg.MaxK)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{g: g, cfg: cfg, mux: http.NewServeMux()}
	h.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "clickstream", Subsystem: "vectors", Name: "read_seconds",
		Help:    "Read API latency of GET /v1/users/{user_id}/vector by status code.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"code"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(h.latency); err != nil {
			return nil, fmt.Errorf("vectors handler: register metrics: %w", err)
		}
	}
	h.mux.HandleFunc(Route, h.get)
	return h.mux, nil
}

type handler struct {
	g       VectorGetter
	cfg     HandlerConfig
	mux     *http.ServeMux
	latency *prometheus.HistogramVec
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := h.serve(w, r)
	h.latency.WithLabelValues(strconv.Itoa(code)).Observe(time.Since(start).Seconds())
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) int {
	user := r.PathValue("user_id")
	if user == "" {
		return writeError(w, http.StatusBadRequest, "user_id: required")
	}
	q := r.URL.Query()
	k := h.cfg.DefaultK
	if s := q.Get("k"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > h.cfg.MaxK {
			return writeError(w, http.StatusBadRequest, fmt.Sprintf("k: must be an integer from 1 to %d, got %q", h.cfg.MaxK, s))
		}
		k = n
	}
	var at time.Time
	if s := q.Get("at"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return writeError(w, http.StatusBadRequest, fmt.Sprintf("at: must be an RFC 3339 time, got %q", s))
		}
		at = t
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	v, err := h.g.Get(ctx, user, at, k)
	switch {
	case errors.Is(err, ErrNotFound):
		return writeError(w, http.StatusNotFound, "user not found: "+user)
	case errors.Is(err, ErrAtOutOfRange):
		return writeError(w, http.StatusBadRequest, "at: too far before the user's events")
	case err != nil && isThrottle(err):
		w.Header().Set("Retry-After", "1")
		return writeError(w, http.StatusServiceUnavailable, "vector store is throttling; retry")
	case err != nil:
		h.cfg.Logger.Error("vectors: read failed", slog.String("user", user), slog.Any("error", err))
		return writeError(w, http.StatusInternalServerError, "vector store error")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
	return http.StatusOK
}

func writeError(w http.ResponseWriter, code int, msg string) int {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
	return code
}

// WriteVector prints user's vector as indented JSON (the read API's shape)
// to w: what `clickstream vectors get USER [--k 20] [--at RFC3339]` runs.
// Zero at means now; k <= 0 means 20. ErrNotFound for an unknown user.
func WriteVector(ctx context.Context, w io.Writer, g VectorGetter, user string, at time.Time, k int) error {
	if k <= 0 {
		k = 20
	}
	v, err := g.Get(ctx, user, at, k)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteSummary prints the top k features of up to n users of the table, one
// line per user, for `make demo`'s closing summary:
//
//	u-42  (37 events)  cat:sports 1.92/6.10  tag:soccer 0.96/3.05 …
//
// (decayed clicks/impressions as of now).
func WriteSummary(ctx context.Context, w io.Writer, r *Reader, n, k int) error {
	users, err := r.SampleUsers(ctx, n)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		_, err := fmt.Fprintln(w, "no user vectors yet")
		return err
	}
	for _, u := range users {
		v, err := r.Get(ctx, u, time.Time{}, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%-12s (%d events)", v.UserID, v.Events)
		for _, f := range v.Features {
			fmt.Fprintf(&b, "  %s %.3g/%.3g", f.Name, f.Clicks, f.Impressions)
		}
		if _, err := fmt.Fprintln(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}
