// Package web is the Clickstream web SDK (clickstream.js, one file, no
// dependencies) and its TypeScript declarations, embedded so the collector
// serves them at /v1/sdk.js and /v1/sdk.d.ts, with an example page at
// /v1/sdk/example.html. See the SDK's header comment and README.md for the API.
package web

import (
	"embed"
	"net/http"
)

//go:embed clickstream.js clickstream.d.ts example.html
var files embed.FS

// Paths the collector serves.
const (
	SDKPath     = "/v1/sdk.js"
	TypesPath   = "/v1/sdk.d.ts"
	ExamplePath = "/v1/sdk/example.html"
)

// Handler serves the SDK, its declarations and the example page (GET only;
// cached for 5 minutes).
func Handler() http.Handler {
	serve := func(name, ctype string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, err := files.ReadFile(name)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", ctype)
			w.Header().Set("Cache-Control", "public, max-age=300")
			w.Header().Set("Access-Control-Allow-Origin", "*") // a public script
			_, _ = w.Write(b)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+SDKPath, serve("clickstream.js", "text/javascript; charset=utf-8"))
	mux.Handle("GET "+TypesPath, serve("clickstream.d.ts", "application/typescript; charset=utf-8"))
	mux.Handle("GET "+ExamplePath, serve("example.html", "text/html; charset=utf-8"))
	return mux
}

// SDK returns the SDK's source.
func SDK() []byte { b, _ := files.ReadFile("clickstream.js"); return b }
