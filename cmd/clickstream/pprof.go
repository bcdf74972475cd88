package main

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"net/http/pprof"
)

// pprofFlag registers --pprof-addr on the long-running commands.
func pprofFlag(fs *flag.FlagSet, addr *string) {
	fs.StringVar(addr, "pprof-addr", "", `listen address of Go's /debug/pprof/ profiles, e.g. 127.0.0.1:6060 ("" to disable; it exposes internals: keep it on loopback)`)
}

// servePprof serves the runtime profiles on addr, on a listener of their own
// so they are never exposed where /metrics or the API is; "" serves nothing.
// `go tool pprof http://ADDR/debug/pprof/profile?seconds=30` takes a CPU profile.
func servePprof(ctx context.Context, addr string, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	stop, err = serveBackground(ctx, addr, mux, log)
	if err != nil {
		return nil, err
	}
	log.Info("pprof listening", "addr", addr)
	return stop, nil
}
