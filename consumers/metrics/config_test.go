package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
)

func TestDefaultDefinitions_HaveTheDesignedMetricsAndValues(t *testing.T) {
	d := DefaultDefinitions()
	want := map[string][]string{
		"access": {"requests", "cache_hit", "cache_miss", "cache_expired", "cache_other", "hit_rate", "miss_rate", "expired_rate",
			"status_2xx", "status_3xx", "status_4xx", "status_5xx", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"},
		"engagement": {"impressions", "clicks", "ctr", "unique_users"},
	}
	for name, values := range want {
		m, ok := d.Metric(name)
		if !ok {
			t.Fatalf("metric %s missing", name)
		}
		if got := strings.Join(m.ValueNames(), ","); got != strings.Join(values, ",") {
			t.Errorf("%s values = %s, want %s", name, got, strings.Join(values, ","))
		}
	}
	if m, _ := d.Metric("access"); strings.Join(m.GroupBy, ",") != "route" {
		t.Errorf("access group_by = %v", m.GroupBy)
	}
	if m, _ := d.Metric("engagement"); strings.Join(m.GroupBy, ",") != "placement" {
		t.Errorf("engagement group_by = %v", m.GroupBy)
	}
	if _, ok := d.Metric(LagMetric); !ok {
		t.Error("consumer_lag not defined")
	}
}

func TestParseDefinitions_AcceptsJSONAndCustomMetrics(t *testing.T) {
	d, err := ParseDefinitions([]byte(`{"webhook": "https://hooks.example.com/x",
	  "metrics": [{"name": "checkout", "where": {"type": "access", "attrs.flow": ["checkout", "cart"]},
	    "group_by": ["host", "method"],
	    "values": [{"name": "n", "kind": "count"}, {"name": "bytes", "kind": "sum", "field": "bytes"},
	               {"name": "slow", "kind": "count_where", "where": {"status_class": "5xx"}},
	               {"name": "err_rate", "kind": "ratio", "numerator": ["slow"], "denominator": ["n"]},
	               {"name": "max_ms", "kind": "max", "field": "request_time_ms"},
	               {"name": "score", "kind": "quantile", "field": "features.sports", "q": 0.9},
	               {"name": "sessions", "kind": "distinct", "field": "session_id"}]}],
	  "alerts": [{"name": "errors", "metric": "checkout", "when": "err_rate >= 0.05", "for": 2}]}`))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := d.Metric("checkout")
	if m.Values[2].Kind != KindCount {
		t.Errorf("count_where not normalised to count: %q", m.Values[2].Kind)
	}
	v, op, th := d.Alerts[0].Condition()
	if v != "err_rate" || op != ">=" || th != 0.05 || d.Alerts[0].For != 2 {
		t.Errorf("alert condition = %s %s %v for %d", v, op, th, d.Alerts[0].For)
	}
}

func TestParseDefinitions_RejectsMistakesWithClearErrors(t *testing.T) {
	base := func(values string) string {
		return "metrics:\n  - name: m\n    group_by: [route]\n    values:\n" + values
	}
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"empty", ``, "empty document"},
		{"no metrics", `metrics: []`, "at least one metric"},
		{"unknown key", "metrics:\n  - name: m\n    valuez: []\n", "field valuez not found"},
		{"bad name", "metrics:\n  - name: Access\n    values: [{name: n, kind: count}]\n", "name must match"},
		{"reserved name", "metrics:\n  - name: consumer_lag\n    values: [{name: n, kind: count}]\n", "reserved"},
		{"duplicate metric", "metrics:\n  - {name: m, values: [{name: n, kind: count}]}\n  - {name: m, values: [{name: n, kind: count}]}\n", "duplicate metric name"},
		{"unknown where field", "metrics:\n  - {name: m, where: {colour: red}, values: [{name: n, kind: count}]}\n", `unknown string field "colour"`},
		{"unknown group_by", "metrics:\n  - {name: m, group_by: [rout], values: [{name: n, kind: count}]}\n", `group_by[0]: unknown string field "rout"`},
		{"numeric group_by", "metrics:\n  - {name: m, group_by: [request_time_ms], values: [{name: n, kind: count}]}\n", "unknown string field"},
		{"no values", "metrics:\n  - {name: m}\n", "at least one value"},
		{"missing kind", base("      - {name: n}\n"), "kind is required"},
		{"unknown kind", base("      - {name: n, kind: avg}\n"), `unknown kind "avg"`},
		{"duplicate value", base("      - {name: n, kind: count}\n      - {name: n, kind: count}\n"), "duplicate value name"},
		{"count_where without where", base("      - {name: n, kind: count_where}\n"), "needs a where filter"},
		{"quantile without q", base("      - {name: p, kind: quantile, field: request_time_ms}\n"), "needs q"},
		{"quantile q out of range", base("      - {name: p, kind: quantile, field: request_time_ms, q: 95}\n"), "q must be within 0..1"},
		{"quantile of a string", base("      - {name: p, kind: quantile, field: route, q: 0.5}\n"), `unknown numeric field "route"`},
		{"sum without field", base("      - {name: s, kind: sum}\n"), "needs a numeric field"},
		{"distinct of a number", base("      - {name: u, kind: distinct, field: bytes}\n"), `unknown string field "bytes"`},
		{"ratio of unknown", base("      - {name: n, kind: count}\n      - {name: r, kind: ratio, numerator: [n], denominator: [m]}\n"), `denominator: unknown value "m"`},
		{"ratio of a quantile", base("      - {name: p, kind: quantile, field: bytes, q: 0.5}\n      - {name: r, kind: ratio, numerator: [p], denominator: [p]}\n"), "only count and sum values"},
		{"ratio without denominator", base("      - {name: n, kind: count}\n      - {name: r, kind: ratio, numerator: [n]}\n"), "needs a denominator"},
		{"field on count", base("      - {name: n, kind: count, field: bytes}\n"), "takes no field"},
		{"where value is a map", "metrics:\n  - {name: m, where: {type: {a: b}}, values: [{name: n, kind: count}]}\n", "expected a string or a list of strings"},
		{"alert on unknown metric", base("      - {name: n, kind: count}\n") + "alerts:\n  - {name: a, metric: x, when: n > 1}\n", `unknown metric "x"`},
		{"alert with bad condition", base("      - {name: n, kind: count}\n") + "alerts:\n  - {name: a, metric: m, when: n is big}\n", `expected "VALUE OP NUMBER"`},
		{"alert on unknown value", base("      - {name: n, kind: count}\n") + "alerts:\n  - {name: a, metric: m, when: hits > 1}\n", `no value "hits"`},
		{"alert where not a dimension", base("      - {name: n, kind: count}\n") + "alerts:\n  - {name: a, metric: m, where: {host: x}, when: n > 1}\n", `"host" is not a dimension`},
		{"alert bad webhook", base("      - {name: n, kind: count}\n") + "alerts:\n  - {name: a, metric: m, when: n > 1, webhook: 'ftp://x'}\n", "not an http(s) URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDefinitions([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseDefinitions_ReportsEveryProblemWithItsPath(t *testing.T) {
	_, err := ParseDefinitions([]byte("metrics:\n  - name: m\n    group_by: [nope]\n    values:\n      - {name: a, kind: count}\n      - {name: b, kind: ratio, numerator: [a], denominator: [zz]}\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`metrics[0] (m).group_by[0]: unknown string field "nope"`, `metrics[0] (m).values[1] (b): denominator: unknown value "zz"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func FuzzParseDefinitions(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte(`{"metrics":[{"name":"m","values":[{"name":"n","kind":"count"}]}]}`))
	f.Add([]byte("metrics:\n  - {name: m, where: {type: [a, b]}, group_by: [route, attrs.x], values: [{name: q, kind: quantile, field: features.f, q: 0.5}]}\nalerts:\n  - {name: a, metric: m, when: q > 1, for: 2}\n"))
	f.Add([]byte("metrics: [&a {name: m}, *a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDefinitions(data)
		if err != nil {
			return
		}
		// Whatever validates must compile into a usable processor and reader.
		if _, err := NewProcessor(NewMemoryStore(), Config{Definitions: d}); err != nil {
			t.Fatalf("valid definitions, processor: %v", err)
		}
		for _, name := range d.MetricNames() {
			if _, err := NewReader(NewMemoryStore(), ReaderConfig{Definitions: d}).Query(t.Context(), Query{Metric: name, From: t0, To: t0.Add(time.Minute)}); err != nil {
				t.Fatalf("valid definitions, query %s: %v", name, err)
			}
		}
	})
}

func FuzzDecodePosition(f *testing.F) {
	f.Add(EncodePosition(consumers.Position{SequenceNumber: seq(1), SubSequence: 3}))
	f.Add("")
	f.Add("999x/1")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := DecodePosition(s)
		if err == nil && EncodePosition(p) != s {
			t.Fatalf("%q decodes to %v, which encodes as %q: not canonical", s, p, EncodePosition(p))
		}
	})
}
