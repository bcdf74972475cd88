package producers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/clickstream-go/clickstream/kpl"
)

// faultRates are the probabilities a faultProxy injects each fault with.
type faultRates struct {
	failEntry    float64 // a PutRecords entry answered ProvisionedThroughputExceededException, not forwarded
	throttleCall float64 // a whole PutRecords call answered 400 ProvisionedThroughputExceededException
	dropBefore   float64 // the connection closed before forwarding: nothing written
	dropAfter    float64 // the connection closed after Kinesis wrote the call: the client cannot know
}

type faultStats struct {
	calls, entriesFailed, callsThrottled, dropsBefore, dropsAfter int
	userRecordsWrittenThenDropped                                 int
}

// faultProxy sits between the SDK and a real Kinesis endpoint and breaks
// PutRecords calls; other operations pass through. Failed entries are
// really not written: the proxy forwards only the others and merges the
// answers back in order.
type faultProxy struct {
	*httptest.Server
	target string
	rates  faultRates
	mu     sync.Mutex
	rng    *rand.Rand
	st     faultStats
}

func newFaultProxy(t *testing.T, target string, rates faultRates) *faultProxy {
	t.Helper()
	if target == "" {
		t.Fatal("no Kinesis endpoint to proxy")
	}
	fp := &faultProxy{target: strings.TrimSuffix(target, "/"), rates: rates, rng: rand.New(rand.NewPCG(7, 7))}
	fp.Server = httptest.NewServer(fp)
	t.Cleanup(fp.Close)
	return fp
}

func (fp *faultProxy) stats() faultStats {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.st
}

func (fp *faultProxy) roll(p float64) bool {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.rng.Float64() < p
}

func (fp *faultProxy) count(f func(*faultStats)) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	f(&fp.st)
}

func (fp *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".PutRecords") {
		fp.forward(w, r, body)
		return
	}
	var call int
	fp.count(func(s *faultStats) { s.calls++; call = s.calls })
	// The first calls get one fault of each kind, so a short test sees them all.
	switch {
	case call == 1 || fp.roll(fp.rates.dropBefore):
		fp.count(func(s *faultStats) { s.dropsBefore++ })
		drop(w)
		return
	case call == 2 || fp.roll(fp.rates.throttleCall):
		fp.count(func(s *faultStats) { s.callsThrottled++ })
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for stream (injected)"}`)
		return
	}

	var in map[string]json.RawMessage
	var entries []json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil || json.Unmarshal(in["Records"], &entries) != nil {
		http.Error(w, "proxy: cannot parse PutRecords", http.StatusBadRequest)
		return
	}
	failed := make([]bool, len(entries))
	var forward []json.RawMessage
	for i, e := range entries {
		if failed[i] = fp.roll(fp.rates.failEntry); !failed[i] {
			forward = append(forward, e)
		}
	}
	fp.count(func(s *faultStats) { s.entriesFailed += len(entries) - len(forward) })

	var results []json.RawMessage
	if len(forward) > 0 {
		in["Records"], _ = json.Marshal(forward)
		fwdBody, _ := json.Marshal(in)
		resp, err := fp.send(r, fwdBody)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		respBody, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			copyResponse(w, resp, respBody)
			return
		}
		var out struct{ Records []json.RawMessage }
		if err := json.Unmarshal(respBody, &out); err != nil || len(out.Records) != len(forward) {
			http.Error(w, "proxy: bad PutRecords answer", http.StatusBadGateway)
			return
		}
		results = out.Records
		if call == 3 || fp.roll(fp.rates.dropAfter) {
			// Kinesis wrote these; the client will never hear of it.
			n := 0
			for i, e := range forward {
				var res struct{ ErrorCode string }
				_ = json.Unmarshal(results[i], &res)
				if res.ErrorCode == "" {
					n += userRecordsIn(e)
				}
			}
			fp.count(func(s *faultStats) { s.dropsAfter++; s.userRecordsWrittenThenDropped += n })
			drop(w)
			return
		}
	}
	merged := make([]json.RawMessage, len(entries))
	failedCount := 0
	for i := range entries {
		if failed[i] {
			merged[i] = json.RawMessage(`{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard (injected)"}`)
			failedCount++
			continue
		}
		merged[i], results = results[0], results[1:]
		if bytes.Contains(merged[i], []byte(`"ErrorCode"`)) {
			failedCount++
		}
	}
	out, _ := json.Marshal(map[string]any{"FailedRecordCount": failedCount, "Records": merged})
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_, _ = w.Write(out)
}

// userRecordsIn counts the user records in a PutRecords entry's Data.
func userRecordsIn(entry json.RawMessage) int {
	var e struct {
		Data         []byte
		PartitionKey string
	}
	if json.Unmarshal(entry, &e) != nil {
		return 1
	}
	rs, err := kpl.Deaggregate(e.Data, e.PartitionKey)
	if err != nil {
		return 1
	}
	return len(rs)
}

func (fp *faultProxy) send(r *http.Request, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, fp.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range r.Header {
		if k != "Content-Length" && k != "Accept-Encoding" {
			req.Header[k] = v
		}
	}
	return http.DefaultClient.Do(req)
}

func (fp *faultProxy) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	resp, err := fp.send(r, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(resp.Body)
	copyResponse(w, resp, respBody)
}

func copyResponse(w http.ResponseWriter, resp *http.Response, body []byte) {
	for k, v := range resp.Header {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

// drop closes the client's connection without an answer.
func drop(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}
