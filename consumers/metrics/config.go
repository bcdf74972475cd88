package metrics

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the built-in definitions file (access by route,
// engagement by placement), a starting point for a custom one.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Value kinds of a metric definition.
const (
	KindCount      = "count"
	KindCountWhere = "count_where" // alias of count that requires where
	KindSum        = "sum"
	KindMin        = "min"
	KindMax        = "max"
	KindRatio      = "ratio"
	KindQuantile   = "quantile"
	KindDistinct   = "distinct"
)

// LagMetric is the metric the processor writes about itself: per shard and
// minute of processing time, the largest MillisBehindLatest seen
// (millis_behind_latest), how far the watermark trailed the clock
// (watermark_delay_ms) and how many records were read (records).
const LagMetric = "consumer_lag"

// Definitions is a validated metrics definitions file: the metrics the
// processor aggregates and the alert rules evaluated on them. Build it with
// DefaultDefinitions, ParseDefinitions or LoadDefinitions; the zero value is
// not usable.
type Definitions struct {
	// Webhook is the default alert webhook URL (Slack-compatible).
	Webhook string      `yaml:"webhook"`
	Metrics []MetricDef `yaml:"metrics"`
	Alerts  []AlertRule `yaml:"alerts"`

	plan   *plan
	byName map[string]*MetricDef
}

// MetricDef defines one metric: which events it counts (Where), what it
// groups them by (GroupBy, the dimensions) and the values it computes per
// one-minute window and group.
type MetricDef struct {
	Name    string     `yaml:"name"`
	Where   Where      `yaml:"where"`
	GroupBy []string   `yaml:"group_by"`
	Values  []ValueDef `yaml:"values"`
}

// ValueDef defines one value of a metric; see default.yaml for the kinds.
type ValueDef struct {
	Name        string   `yaml:"name"`
	Kind        string   `yaml:"kind"`
	Where       Where    `yaml:"where"`
	Field       string   `yaml:"field"`
	Q           *float64 `yaml:"q"`
	Numerator   []string `yaml:"numerator"`
	Denominator []string `yaml:"denominator"`
}

// Where is a filter: every named field must equal one of its listed values
// ("" matches an absent field). In YAML a single value may be a scalar.
type Where map[string]StringList

// StringList is a list of strings that also accepts a single scalar.
type StringList []string

// UnmarshalYAML accepts `x` as well as `[x, y]`.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = StringList{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(StringList, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: expected a string, got a %s", c.Line, kindName(c.Kind))
			}
			out = append(out, c.Value)
		}
		*l = out
		return nil
	}
	return fmt.Errorf("line %d: expected a string or a list of strings, got a %s", n.Line, kindName(n.Kind))
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	}
	return "scalar"
}

// AlertRule fires when a value of a metric meets a condition in For
// consecutive complete one-minute windows, and resolves when a later window
// does not. Every group (dims combination) matching Where is its own alert.
type AlertRule struct {
	Name   string            `yaml:"name"`
	Metric string            `yaml:"metric"`
	Where  map[string]string `yaml:"where"` // dimension filter; empty: every group
	// When is "VALUE OP NUMBER", OP one of < <= > >= == !=, e.g. "hit_rate < 0.8".
	When string `yaml:"when"`
	// For is the number of consecutive windows the condition must hold. Default 1.
	For int `yaml:"for"`
	// Webhook overrides the file's webhook for this rule.
	Webhook string `yaml:"webhook"`

	value     string
	op        string
	threshold float64
}

// Condition returns the parsed When: value name, operator and threshold.
func (r *AlertRule) Condition() (value, op string, threshold float64) {
	return r.value, r.op, r.threshold
}

// DefaultDefinitions returns the built-in definitions (default.yaml).
func DefaultDefinitions() *Definitions {
	d, err := ParseDefinitions(defaultYAML)
	if err != nil {
		panic("metrics: built-in definitions are invalid: " + err.Error())
	}
	return d
}

// LoadDefinitions reads and validates a definitions file (YAML or JSON).
func LoadDefinitions(path string) (*Definitions, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read metrics definitions: %w", err)
	}
	d, err := ParseDefinitions(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// ParseDefinitions parses and validates a definitions document (YAML, or
// JSON, which is YAML). Unknown keys are errors, so typos do not pass
// silently; every problem found is reported, each with its path.
func ParseDefinitions(data []byte) (*Definitions, error) {
	var d Definitions
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("invalid metrics definitions: empty document")
		}
		return nil, fmt.Errorf("invalid metrics definitions: %w", err)
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

// Metric returns the definition of a metric by name, including the built-in
// consumer_lag metric.
func (d *Definitions) Metric(name string) (*MetricDef, bool) {
	m, ok := d.byName[name]
	return m, ok
}

// MetricNames lists the defined metrics in file order, then consumer_lag.
func (d *Definitions) MetricNames() []string {
	out := make([]string, 0, len(d.Metrics)+1)
	for _, m := range d.Metrics {
		out = append(out, m.Name)
	}
	return append(out, LagMetric)
}

// lagDef is consumer_lag's definition; the processor feeds it per batch.
var lagDef = MetricDef{
	Name:    LagMetric,
	GroupBy: []string{"shard"},
	Values: []ValueDef{
		{Name: "millis_behind_latest", Kind: KindMax},
		{Name: "watermark_delay_ms", Kind: KindMax},
		{Name: "records", Kind: KindCount},
	},
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// maxGroupBy bounds the dimensions of a metric (keys stay short).
const maxGroupBy = 4

func (d *Definitions) validate() error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(d.Metrics) == 0 {
		fail("metrics: at least one metric is required")
	}
	if d.Webhook != "" {
		if err := checkURL(d.Webhook); err != nil {
			fail("webhook: %v", err)
		}
	}
	d.byName = make(map[string]*MetricDef, len(d.Metrics)+1)
	for i := range d.Metrics {
		m := &d.Metrics[i]
		at := fmt.Sprintf("metrics[%d]", i)
		if m.Name != "" {
			at += fmt.Sprintf(" (%s)", m.Name)
		}
		switch {
		case m.Name == "":
			fail("%s: name is required", at)
		case !nameRE.MatchString(m.Name):
			fail("%s: name must match %s", at, nameRE)
		case m.Name == LagMetric:
			fail("%s: name %q is reserved for the consumer's own lag metric", at, LagMetric)
		case d.byName[m.Name] != nil:
			fail("%s: duplicate metric name", at)
		default:
			d.byName[m.Name] = m
		}
		errs = append(errs, validateWhere(at+".where", m.Where)...)
		seen := map[string]bool{}
		if len(m.GroupBy) > maxGroupBy {
			fail("%s.group_by: at most %d fields", at, maxGroupBy)
		}
		for j, g := range m.GroupBy {
			switch {
			case lookupString(g) == nil:
				fail("%s.group_by[%d]: unknown string field %q (fields: %s)", at, j, g, stringFieldList())
			case seen[g]:
				fail("%s.group_by[%d]: duplicate field %q", at, j, g)
			case g == "from" || g == "to" || g == "open":
				fail("%s.group_by[%d]: %q is a reserved query parameter", at, j, g)
			}
			seen[g] = true
		}
		if len(m.Values) == 0 {
			fail("%s.values: at least one value is required", at)
		}
		kinds := map[string]string{}
		for j := range m.Values {
			v := &m.Values[j]
			if v.Kind == KindCountWhere {
				if len(v.Where) == 0 {
					fail("%s.values[%d] (%s): kind count_where needs a where filter", at, j, v.Name)
				}
				v.Kind = KindCount
			}
			if v.Name != "" && nameRE.MatchString(v.Name) && kinds[v.Name] == "" {
				kinds[v.Name] = v.Kind
			}
		}
		names := map[string]bool{}
		for j := range m.Values {
			v := &m.Values[j]
			vat := fmt.Sprintf("%s.values[%d]", at, j)
			if v.Name != "" {
				vat += fmt.Sprintf(" (%s)", v.Name)
			}
			switch {
			case v.Name == "":
				fail("%s: name is required", vat)
			case !nameRE.MatchString(v.Name):
				fail("%s: name must match %s", vat, nameRE)
			case names[v.Name]:
				fail("%s: duplicate value name", vat)
			}
			names[v.Name] = true
			errs = append(errs, validateValue(vat, v, kinds)...)
		}
	}
	if len(errs) == 0 {
		d.byName[LagMetric] = &lagDef
	}
	rules := map[string]bool{}
	for i := range d.Alerts {
		r := &d.Alerts[i]
		at := fmt.Sprintf("alerts[%d]", i)
		if r.Name != "" {
			at += fmt.Sprintf(" (%s)", r.Name)
		}
		if r.Name == "" {
			fail("%s: name is required", at)
		} else if rules[r.Name] {
			fail("%s: duplicate alert name", at)
		}
		rules[r.Name] = true
		if r.For < 0 {
			fail("%s.for: must be at least 1, got %d", at, r.For)
		}
		if r.For == 0 {
			r.For = 1
		}
		if r.Webhook != "" {
			if err := checkURL(r.Webhook); err != nil {
				fail("%s.webhook: %v", at, err)
			}
		}
		m := d.byName[r.Metric]
		if m == nil {
			fail("%s.metric: unknown metric %q", at, r.Metric)
			continue
		}
		for k := range r.Where {
			if !contains(m.GroupBy, k) {
				fail("%s.where: %q is not a dimension of metric %s (dimensions: %s)", at, k, m.Name, strings.Join(m.GroupBy, ", "))
			}
		}
		if err := r.parseWhen(m); err != nil {
			fail("%s.when: %v", at, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid metrics definitions:\n%w", err)
	}
	p, err := compile(d)
	if err != nil {
		return fmt.Errorf("invalid metrics definitions: %w", err)
	}
	d.plan = p
	return nil
}

func validateWhere(at string, w Where) []error {
	var errs []error
	for _, k := range sortedKeys(w) {
		if lookupString(k) == nil {
			errs = append(errs, fmt.Errorf("%s: unknown string field %q (fields: %s)", at, k, stringFieldList()))
		}
		if len(w[k]) == 0 {
			errs = append(errs, fmt.Errorf("%s.%s: at least one value is required", at, k))
		}
	}
	return errs
}

func validateValue(at string, v *ValueDef, kinds map[string]string) []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(at+": "+format, a...)) }
	errs = append(errs, validateWhere(at+".where", v.Where)...)
	noField := func() {
		if v.Field != "" {
			fail("kind %s takes no field", v.Kind)
		}
	}
	noQ := func() {
		if v.Q != nil {
			fail("only kind quantile takes q")
		}
	}
	noRatio := func() {
		if len(v.Numerator) > 0 || len(v.Denominator) > 0 {
			fail("only kind ratio takes numerator and denominator")
		}
	}
	switch v.Kind {
	case KindCount:
		noField()
		noQ()
		noRatio()
	case KindSum, KindMin, KindMax, KindQuantile:
		switch {
		case v.Field == "":
			fail("kind %s needs a numeric field", v.Kind)
		case lookupNumeric(v.Field) == nil:
			_, nums := fieldNames(nil, numericFields)
			fail("unknown numeric field %q (numeric fields: %s)", v.Field, nums)
		}
		if v.Kind == KindQuantile {
			if v.Q == nil {
				fail("kind quantile needs q (0..1)")
			} else if !(*v.Q >= 0 && *v.Q <= 1) {
				fail("q must be within 0..1, got %v", *v.Q)
			}
		} else {
			noQ()
		}
		noRatio()
	case KindDistinct:
		switch {
		case v.Field == "":
			fail("kind distinct needs a string field")
		case lookupString(v.Field) == nil:
			fail("unknown string field %q (fields: %s)", v.Field, stringFieldList())
		}
		noQ()
		noRatio()
	case KindRatio:
		noField()
		noQ()
		if len(v.Where) > 0 {
			fail("kind ratio takes no where (filter its numerator and denominator values instead)")
		}
		for _, side := range []struct {
			name string
			refs []string
		}{{"numerator", v.Numerator}, {"denominator", v.Denominator}} {
			if len(side.refs) == 0 {
				fail("kind ratio needs a %s (a list of count or sum values)", side.name)
			}
			for _, ref := range side.refs {
				switch k := kinds[ref]; k {
				case "":
					fail("%s: unknown value %q", side.name, ref)
				case KindCount, KindSum:
				default:
					fail("%s: value %q is a %s; only count and sum values can be added up", side.name, ref, k)
				}
			}
		}
	case "":
		fail("kind is required (%s)", strings.Join(valueKinds, ", "))
	default:
		fail("unknown kind %q (%s)", v.Kind, strings.Join(valueKinds, ", "))
	}
	return errs
}

var valueKinds = []string{KindCount, KindCountWhere, KindSum, KindMin, KindMax, KindRatio, KindQuantile, KindDistinct}

var whenRE = regexp.MustCompile(`^\s*([a-z][a-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$`)

func (r *AlertRule) parseWhen(m *MetricDef) error {
	g := whenRE.FindStringSubmatch(r.When)
	if g == nil {
		return fmt.Errorf("%q: expected \"VALUE OP NUMBER\" with OP one of < <= > >= == !=, e.g. \"hit_rate < 0.8\"", r.When)
	}
	if m.value(g[1]) == nil {
		return fmt.Errorf("%q: metric %s has no value %q", r.When, m.Name, g[1])
	}
	th, err := strconv.ParseFloat(g[3], 64)
	if err != nil {
		return fmt.Errorf("%q: threshold %q is not a number", r.When, g[3])
	}
	r.value, r.op, r.threshold = g[1], g[2], th
	return nil
}

func (m *MetricDef) value(name string) *ValueDef {
	for i := range m.Values {
		if m.Values[i].Name == name {
			return &m.Values[i]
		}
	}
	return nil
}

// ValueNames lists the metric's values in definition order.
func (m *MetricDef) ValueNames() []string {
	out := make([]string, len(m.Values))
	for i, v := range m.Values {
		out[i] = v.Name
	}
	return out
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

func stringFieldList() string {
	s, _ := fieldNames(stringFields, nil)
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
