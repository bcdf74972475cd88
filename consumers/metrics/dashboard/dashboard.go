// Package dashboard serves the minute-metrics dashboard of `clickstream api`
// at "/": per-minute charts of requests and cache hit rate per route, CTR
// per placement, p95 latency and consumer lag, drawn as SVG in the browser
// from the read API (/v1/metrics/…) and refreshed live. Every file is
// embedded in the binary; the page loads nothing from elsewhere.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the dashboard's files: index.html at "/", plus app.js and
// style.css. Mount it at "/" next to the metrics API handler (it fetches
// /v1/metrics/… from the same origin). Page parameters: ?minutes=N (the
// time range, default 60) and ?refresh=S (seconds between refreshes,
// default 15).
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}
