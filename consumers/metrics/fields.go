package metrics

import (
	"sort"
	"strconv"
	"strings"

	"github.com/clickstream-go/clickstream/event"
)

// strField reads a string field of an event; "" means absent.
type strField func(e *event.Event) string

// numField reads a numeric field of an event; ok is false when absent.
type numField func(e *event.Event) (v float64, ok bool)

var stringFields = map[string]strField{
	"type":         func(e *event.Event) string { return e.Type },
	"id":           func(e *event.Event) string { return e.ID },
	"user_id":      func(e *event.Event) string { return e.UserID },
	"session_id":   func(e *event.Event) string { return e.SessionID },
	"item_id":      func(e *event.Event) string { return e.ItemID },
	"app":          func(e *event.Event) string { return e.App },
	"placement":    func(e *event.Event) string { return e.Placement },
	"host":         func(e *event.Event) string { return e.Host },
	"method":       func(e *event.Event) string { return e.Method },
	"uri":          func(e *event.Event) string { return e.URI },
	"route":        func(e *event.Event) string { return e.Route },
	"cache":        func(e *event.Event) string { return e.Cache },
	"cache_class":  func(e *event.Event) string { return event.ClassifyCache(e.Cache) },
	"status":       func(e *event.Event) string { return statusString(e.Status) },
	"status_class": func(e *event.Event) string { return statusClass(e.Status) },
	"user_agent":   func(e *event.Event) string { return e.UserAgent },
}

var numericFields = map[string]numField{
	"request_time_ms": func(e *event.Event) (float64, bool) {
		if e.RequestTimeMS == nil {
			return 0, false
		}
		return *e.RequestTimeMS, true
	},
	"bytes": func(e *event.Event) (float64, bool) {
		if e.Bytes == nil {
			return 0, false
		}
		return float64(*e.Bytes), true
	},
	"position": func(e *event.Event) (float64, bool) {
		if e.Position == nil {
			return 0, false
		}
		return float64(*e.Position), true
	},
	"status": func(e *event.Event) (float64, bool) { return float64(e.Status), e.Status != 0 },
}

const (
	attrsPrefix    = "attrs."
	featuresPrefix = "features."
)

// lookupString returns the accessor of a string field name, or nil.
func lookupString(name string) strField {
	if f, ok := stringFields[name]; ok {
		return f
	}
	if key, ok := strings.CutPrefix(name, attrsPrefix); ok && key != "" {
		return func(e *event.Event) string { return e.Attrs[key] }
	}
	return nil
}

// lookupNumeric returns the accessor of a numeric field name, or nil.
func lookupNumeric(name string) numField {
	if f, ok := numericFields[name]; ok {
		return f
	}
	if key, ok := strings.CutPrefix(name, featuresPrefix); ok && key != "" {
		return func(e *event.Event) (float64, bool) {
			v, ok := e.Features[key]
			return v, ok
		}
	}
	return nil
}

func fieldNames(m map[string]strField, n map[string]numField) (strs, nums string) {
	var s, u []string
	for k := range m {
		s = append(s, k)
	}
	for k := range n {
		u = append(u, k)
	}
	sort.Strings(s)
	sort.Strings(u)
	return strings.Join(append(s, attrsPrefix+"KEY"), ", "), strings.Join(append(u, featuresPrefix+"NAME"), ", ")
}

// statusStrings holds "100".."599" so the status field allocates nothing.
var statusStrings = func() (t [600]string) {
	for i := 100; i < len(t); i++ {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func statusString(s int) string {
	if s >= 100 && s < len(statusStrings) {
		return statusStrings[s]
	}
	return ""
}

func statusClass(s int) string {
	switch {
	case s >= 100 && s < 200:
		return "1xx"
	case s >= 200 && s < 300:
		return "2xx"
	case s >= 300 && s < 400:
		return "3xx"
	case s >= 400 && s < 500:
		return "4xx"
	case s >= 500 && s < 600:
		return "5xx"
	}
	return ""
}
