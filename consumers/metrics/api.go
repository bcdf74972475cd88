package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// APIConfig configures the read API handler. Zero fields take the defaults.
type APIConfig struct {
	// DefaultRange is the span queried when from is absent: [to −
	// DefaultRange, to). Default 1h.
	DefaultRange time.Duration
	// OutOfOrderness must match the processor's; it turns saved shard
	// progress into watermarks in GET /v1/metrics. Default 5s.
	OutOfOrderness time.Duration
	// Logger receives request errors. Default: discard.
	Logger *slog.Logger
}

// NewHandler returns the read API for `clickstream api`:
//
//	GET /v1/metrics                    metrics, dimensions, values, late-dropped counts, shard progress
//	GET /v1/metrics/{metric}?from=&to=&DIM=VALUE[&open=true]
//	    → {"metric","rows":[{"window_start","dims":{…},"values":{…}}]}
//
// from and to are RFC 3339 (from inclusive, to exclusive, on window starts;
// default the last DefaultRange up to now); any other parameter filters a
// dimension; open=true also merges windows not yet published. Errors are
// {"error": "..."} with status 400 (bad parameter), 404 (unknown metric) or
// 500.
func NewHandler(r *Reader, cfg APIConfig) http.Handler {
	if cfg.DefaultRange <= 0 {
		cfg.DefaultRange = time.Hour
	}
	if cfg.OutOfOrderness <= 0 {
		cfg.OutOfOrderness = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &apiHandler{r: r, cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/metrics", h.catalog)
	mux.HandleFunc("GET /v1/metrics/{metric}", h.query)
	return mux
}

type apiHandler struct {
	r   *Reader
	cfg APIConfig
}

func (h *apiHandler) catalog(w http.ResponseWriter, req *http.Request) {
	c, err := h.r.Catalog(req.Context(), h.cfg.OutOfOrderness)
	if err != nil {
		h.fail(w, req, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (h *apiHandler) query(w http.ResponseWriter, req *http.Request) {
	q, err := ParseQuery(req.PathValue("metric"), req.URL.Query(), h.r.cfg.Clock(), h.cfg.DefaultRange)
	if err != nil {
		h.fail(w, req, err)
		return
	}
	res, err := h.r.Query(req.Context(), q)
	if err != nil {
		h.fail(w, req, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// ParseQuery builds a Query from URL parameters (see NewHandler).
func ParseQuery(metric string, params map[string][]string, now time.Time, defaultRange time.Duration) (Query, error) {
	q := Query{Metric: metric, To: now, Dims: map[string]string{}}
	for k, vs := range params {
		if len(vs) != 1 {
			return q, fmt.Errorf("%w: parameter %s given %d times", ErrBadQuery, k, len(vs))
		}
		v := vs[0]
		switch k {
		case "from", "to":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return q, fmt.Errorf("%w: %s: %q is not an RFC 3339 time (e.g. 2026-11-22T10:00:00Z)", ErrBadQuery, k, v)
			}
			if k == "from" {
				q.From = t
			} else {
				q.To = t
			}
		case "open":
			switch v {
			case "true", "1":
				q.IncludeOpen = true
			case "false", "0", "":
			default:
				return q, fmt.Errorf("%w: open: %q is not true or false", ErrBadQuery, v)
			}
		default:
			q.Dims[k] = v
		}
	}
	if _, ok := params["from"]; !ok {
		q.From = q.To.Add(-defaultRange)
	}
	if q.To.Before(q.From) {
		return q, fmt.Errorf("%w: to (%s) is before from (%s)", ErrBadQuery, q.To.Format(time.RFC3339), q.From.Format(time.RFC3339))
	}
	return q, nil
}

func (h *apiHandler) fail(w http.ResponseWriter, req *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrUnknownMetric):
		status = http.StatusNotFound
	case errors.Is(err, ErrBadQuery):
		status = http.StatusBadRequest
	case req.Context().Err() != nil:
		status = http.StatusServiceUnavailable
	}
	if status == http.StatusInternalServerError {
		h.cfg.Logger.Error("metrics query failed", "path", req.URL.Path, "err", err)
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
