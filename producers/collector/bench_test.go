package collector_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/producers"
	"github.com/clickstream-go/clickstream/producers/collector"
	"github.com/clickstream-go/clickstream/producers/loadgen"
)

type discardSink struct{}

func (discardSink) TryPutBatch([]producers.Record) error { return nil }

// BenchmarkHandler measures POST /v1/events end to end in process (split,
// decode, validate, assign id, re-encode) for 500 realistic events a request.
func BenchmarkHandler(b *testing.B) {
	g, err := loadgen.NewGenerator(loadgen.GeneratorConfig{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var ndjson, array bytes.Buffer
	array.WriteByte('[')
	for i := range 500 {
		e := g.NextAt(t0.Add(time.Duration(i) * time.Millisecond))
		e.ID = "" // the collector assigns ids
		data := e.AppendJSON(nil)
		ndjson.Write(data)
		ndjson.WriteByte('\n')
		if i > 0 {
			array.WriteByte(',')
		}
		array.Write(data)
	}
	array.WriteByte(']')
	for _, tc := range []struct {
		name, ct string
		body     []byte
		encoding string
	}{
		{"ndjson", "application/x-ndjson", ndjson.Bytes(), ""},
		{"array", "application/json", array.Bytes(), ""},
		{"ndjson-gzip", "application/x-ndjson", gz(b, ndjson.Bytes()), "gzip"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := collector.New(collector.Config{InsecureNoAuth: true, RatePerKey: -1}, discardSink{}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			h := s.Handler()
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(tc.body))
				r.Header.Set("Content-Type", tc.ct)
				if tc.encoding != "" {
					r.Header.Set("Content-Encoding", tc.encoding)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusAccepted {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
