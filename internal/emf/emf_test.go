package emf

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// emfDoc is the part of the EMF specification the test checks.
type emfDoc struct {
	AWS struct {
		Timestamp         int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct {
				Name string `json:"Name"`
				Unit string `json:"Unit"`
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	} `json:"_aws"`
}

func TestEmit_WritesValidEMFWithDeltasOfCountersAndLowCardinalityNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	events := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clickstream_vectors_events_total"}, []string{"type"})
	records := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clickstream_consumer_records_total"}, []string{"app", "shard"})
	lag := prometheus.NewGauge(prometheus.GaugeOpts{Name: "clickstream_consumer_millis_behind_latest"})
	write := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "clickstream_vectors_user_write_seconds"})
	reg.MustRegister(events, records, lag, write)
	e := New(reg, "Clickstream", map[string]string{"Function": "clickstream-vectors"}, "type")

	events.WithLabelValues("click").Add(3)
	events.WithLabelValues("impression").Add(5)
	records.WithLabelValues("vectors", "shardId-000000000000").Add(4)
	records.WithLabelValues("vectors", "shardId-000000000001").Add(6)
	lag.Set(250)
	write.Observe(0.02)
	write.Observe(0.04)
	var buf bytes.Buffer
	now := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	if err := e.Emit(&buf, now); err != nil {
		t.Fatal(err)
	}
	events.WithLabelValues("click").Add(2)
	if err := e.Emit(&buf, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, want := range []map[string]float64{
		{"clickstream_vectors_events_total_click": 3, "clickstream_vectors_events_total_impression": 5,
			"clickstream_consumer_records_total": 10, "clickstream_consumer_millis_behind_latest": 250,
			"clickstream_vectors_user_write_seconds_count": 2, "clickstream_vectors_user_write_seconds_sum": 0.06},
		{"clickstream_vectors_events_total_click": 2, "clickstream_vectors_events_total_impression": 0,
			"clickstream_consumer_records_total": 0, "clickstream_vectors_user_write_seconds_count": 0},
	} {
		var doc emfDoc
		var vals map[string]any
		if err := json.Unmarshal(lines[i], &doc); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(lines[i], &vals)
		d := doc.AWS.CloudWatchMetrics
		if doc.AWS.Timestamp != now.Add(time.Duration(i)*time.Second).UnixMilli() || len(d) != 1 || d[0].Namespace != "Clickstream" ||
			len(d[0].Dimensions) != 1 || d[0].Dimensions[0][0] != "Function" || vals["Function"] != "clickstream-vectors" {
			t.Fatalf("line %d: %s", i, lines[i])
		}
		// Every metric named in the directive has a number at the root.
		declared := map[string]string{}
		for _, m := range d[0].Metrics {
			declared[m.Name] = m.Unit
			if _, ok := vals[m.Name].(float64); !ok {
				t.Errorf("line %d: %s declared without a value", i, m.Name)
			}
		}
		for name, v := range want {
			got, _ := vals[name].(float64)
			if _, ok := declared[name]; !ok || got < v-1e-9 || got > v+1e-9 {
				t.Errorf("line %d: %s = %v (declared %v), want %v", i, name, vals[name], isDeclared(declared, name), v)
			}
		}
		if declared["clickstream_vectors_events_total_click"] != "Count" || declared["clickstream_vectors_user_write_seconds_sum"] != "Seconds" {
			t.Errorf("units %v", declared)
		}
	}
}

func isDeclared(m map[string]string, k string) bool { _, found := m[k]; return found }

func TestEmit_SplitsDirectivesAtCloudWatchsHundredMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "m"}, []string{"kind"})
	reg.MustRegister(c)
	for i := range 250 {
		c.WithLabelValues(string(rune('a'+i%26)) + string(rune('a'+i/26))).Inc()
	}
	var buf bytes.Buffer
	if err := New(reg, "N", map[string]string{"Function": "f"}, "kind").Emit(&buf, time.Now()); err != nil {
		t.Fatal(err)
	}
	var doc emfDoc
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range doc.AWS.CloudWatchMetrics {
		if len(d.Metrics) > 100 {
			t.Fatalf("a directive with %d metrics", len(d.Metrics))
		}
		n += len(d.Metrics)
	}
	if len(doc.AWS.CloudWatchMetrics) != 3 || n != 250 {
		t.Fatalf("%d directives, %d metrics", len(doc.AWS.CloudWatchMetrics), n)
	}
}
