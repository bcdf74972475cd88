package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// QueryHelp is the --help text of `clickstream metrics query METRIC`.
const QueryHelp = `Print a metric's one-minute windows as a table, merged over shards.

  clickstream metrics query access --from -15m route=/api/items/:id
  clickstream metrics query engagement --values ctr,clicks,impressions
  clickstream metrics query consumer_lag --json

--from/--to take RFC 3339 times, "now", or durations relative to now
("-15m"); default the last 15 minutes. Arguments NAME=VALUE filter
dimensions. Only published windows are shown unless --open is given.
Rates print with 3 decimals; "-" means no data (a rate over zero requests).`

// TableOptions selects what WriteTable prints.
type TableOptions struct {
	// Values lists the value columns; default every value of the metric.
	Values []string
	// JSON prints the API's JSON instead of a table.
	JSON bool
}

// RunQuery runs q on r and prints the result to w: the whole of
// `clickstream metrics query`.
func RunQuery(ctx context.Context, w io.Writer, r *Reader, q Query, opt TableOptions) error {
	res, err := r.Query(ctx, q)
	if err != nil {
		return err
	}
	if opt.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(res)
	}
	def, _ := r.Definitions().Metric(q.Metric)
	return WriteTable(w, def, res, opt.Values)
}

// WriteTable prints res as an aligned table: window start, the dimensions,
// then the values (all of def's, or those named).
func WriteTable(w io.Writer, def *MetricDef, res *Result, values []string) error {
	if len(values) == 0 {
		values = def.ValueNames()
	}
	for _, v := range values {
		if def.value(v) == nil {
			return fmt.Errorf("%w: metric %s has no value %q (values: %s)", ErrBadQuery, def.Name, v, strings.Join(def.ValueNames(), ", "))
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := append([]string{"window_start"}, def.GroupBy...)
	head = append(head, values...)
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, row := range res.Rows {
		cells := []string{row.WindowStart.UTC().Format(windowFormat)}
		for _, g := range def.GroupBy {
			cells = append(cells, row.Dims[g])
		}
		for _, v := range values {
			cells = append(cells, formatValue(def.value(v).Kind, row.Values, v))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	if len(res.Rows) == 0 {
		fmt.Fprintln(tw, "(no published windows in range)\t")
	}
	return tw.Flush()
}

func formatValue(kind string, vals map[string]float64, name string) string {
	x, ok := vals[name]
	if !ok || math.IsNaN(x) {
		return "-"
	}
	switch kind {
	case KindCount, KindDistinct:
		return strconv.FormatInt(int64(math.Round(x)), 10)
	case KindRatio:
		return strconv.FormatFloat(x, 'f', 3, 64)
	}
	s := strconv.FormatFloat(x, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// ParseTime reads a CLI time: RFC 3339, "now", or a duration relative to
// now ("-15m", "-2h").
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time, \"now\" or a relative duration like -15m", s)
}
