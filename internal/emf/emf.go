// Package emf writes Prometheus metrics as CloudWatch Embedded Metric Format
// log lines: how the Lambda functions report the figures the long-running
// consumers serve on /metrics. A line written to stdout (or stderr) by a
// Lambda function becomes CloudWatch metrics without a PutMetricData call.
//
// Counters and histograms are reported as the change since the previous
// line (what happened during the invocation), gauges as their value.
// Labels with many values (shard ids) would make a metric per value, so a
// metric's series are summed over every label except the low-cardinality
// ones kept (e.g. type, kind, result), whose values are appended to the
// metric name: clickstream_vectors_events_total{type="click"} becomes
// clickstream_vectors_events_total_click.
package emf

import (
	"encoding/json"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// maxPerDirective is CloudWatch's limit of metrics per directive.
const maxPerDirective = 100

// Emitter turns a Gatherer's metrics into EMF lines.
type Emitter struct {
	g         prometheus.Gatherer
	namespace string
	dims      map[string]string
	keep      []string

	mu   sync.Mutex
	prev map[string]float64 // cumulative values at the previous line
}

// New returns an emitter of g's metrics into namespace, each with the
// dimensions dims (e.g. {"Function": "clickstream-vectors"}); keepLabels
// are the labels whose values stay apart (see the package doc).
func New(g prometheus.Gatherer, namespace string, dims map[string]string, keepLabels ...string) *Emitter {
	return &Emitter{g: g, namespace: namespace, dims: dims, keep: keepLabels, prev: map[string]float64{}}
}

type metricDef struct {
	Name string `json:"Name"`
	Unit string `json:"Unit,omitempty"`
}

type directive struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []metricDef `json:"Metrics"`
}

// Emit writes one EMF line (JSON and a newline) with every metric of the
// gatherer, at now. Nothing is written when there are no metrics.
func (e *Emitter) Emit(w io.Writer, now time.Time) error {
	mfs, err := e.g.Gather()
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	values := map[string]float64{}
	units := map[string]string{}
	cum := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := e.name(mf.GetName(), m.GetLabel())
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				cum[name] += m.GetCounter().GetValue()
				units[name] = "Count"
			case dto.MetricType_GAUGE:
				values[name] += m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				cum[name+"_count"] += float64(h.GetSampleCount())
				cum[name+"_sum"] += h.GetSampleSum()
				units[name+"_count"] = "Count"
				if strings.HasSuffix(name, "_seconds") {
					units[name+"_sum"] = "Seconds"
				}
			}
		}
	}
	for name, v := range cum {
		values[name] = max(0, v-e.prev[name]) // a restarted counter counts from zero
		e.prev[name] = v
	}
	if len(values) == 0 {
		return nil
	}
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	slices.Sort(names)
	dimNames := make([]string, 0, len(e.dims))
	for k := range e.dims {
		dimNames = append(dimNames, k)
	}
	slices.Sort(dimNames)
	var directives []directive
	for i := 0; i < len(names); i += maxPerDirective {
		d := directive{Namespace: e.namespace, Dimensions: [][]string{dimNames}}
		for _, n := range names[i:min(len(names), i+maxPerDirective)] {
			d.Metrics = append(d.Metrics, metricDef{Name: n, Unit: units[n]})
		}
		directives = append(directives, d)
	}
	doc := map[string]any{"_aws": map[string]any{"Timestamp": now.UnixMilli(), "CloudWatchMetrics": directives}}
	for k, v := range e.dims {
		doc[k] = v
	}
	for n, v := range values {
		doc[n] = v
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// name is the metric name with the kept labels' values appended.
func (e *Emitter) name(base string, labels []*dto.LabelPair) string {
	var b strings.Builder
	b.WriteString(base)
	for _, k := range e.keep {
		for _, l := range labels {
			if l.GetName() == k && l.GetValue() != "" {
				b.WriteByte('_')
				b.WriteString(l.GetValue())
			}
		}
	}
	return b.String()
}
