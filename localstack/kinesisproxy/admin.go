package kinesisproxy

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// admin serves the proxy's own API, under paths no Kinesis client uses:
//
//	GET    /__health   200 "ok"
//	GET    /__stats    the counters (Stats) as JSON
//	GET    /__faults   the faults being injected (Faults) as JSON
//	POST   /__faults   replace them, e.g. {"error_rate":0.1,"latency":"50ms","drop_rate":0.01,"status500_rate":0.05}
//	DELETE /__faults   stop injecting faults
//	GET    /__limits   the per-shard limits (Limits) as JSON
//	POST   /__limits   replace them (zero fields: AWS values; negative: no limit); buckets start full
func (p *Proxy) admin(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/__health":
		fmt.Fprintln(w, "ok")
	case "/__stats":
		writeJSON(w, p.Stats())
	case "/__faults":
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, p.Faults())
		case http.MethodPost, http.MethodPut:
			var f Faults
			if !readJSON(w, r, &f) {
				return
			}
			if err := p.SetFaults(f); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			p.log.Info("faults set", "faults", f)
			writeJSON(w, f)
		case http.MethodDelete:
			_ = p.SetFaults(Faults{})
			writeJSON(w, Faults{})
		default:
			http.Error(w, "GET, POST or DELETE", http.StatusMethodNotAllowed)
		}
	case "/__limits":
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, p.Limits())
		case http.MethodPost, http.MethodPut:
			var l Limits
			if !readJSON(w, r, &l) {
				return
			}
			p.SetLimits(l)
			p.log.Info("limits set", "limits", p.Limits())
			writeJSON(w, p.Limits())
		default:
			http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
		}
	default:
		http.NotFound(w, r)
	}
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
