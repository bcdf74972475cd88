package jsonbench

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// Event mirrors event.Event so every candidate fills the same struct.
type Event struct {
	V             int
	ID            string
	Type          string
	TS            time.Time
	UserID        string
	SessionID     string
	ItemID        string
	App           string
	Placement     string
	Position      *int
	Features      map[string]float64
	Attrs         map[string]string
	Host          string
	Method        string
	URI           string
	Route         string
	Status        int
	Cache         string
	RequestTimeMS *float64
	Bytes         *int64
	UserAgent     string
	ReceivedAt    time.Time
	Extra         map[string]json.RawMessage
}

type Error struct{ Field, Reason string }

func (e *Error) Error() string {
	if e.Field == "" {
		return "invalid JSON: " + e.Reason
	}
	return e.Field + ": " + e.Reason
}

func typeErr(field, want string, raw []byte) error {
	return &Error{Field: field, Reason: "must be " + want + ", got " + kindName(raw)}
}

func kindName(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// parseTime handles "ts" from raw JSON number text or unquoted string.
func parseTimeString(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &Error{field, "must be an RFC 3339 string or epoch milliseconds, got " + strconv.Quote(s)}
	}
	return t.UTC().Truncate(time.Millisecond), nil
}

func parseTimeNumber(field string, num []byte) (time.Time, error) {
	if ms, err := strconv.ParseInt(string(num), 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return time.Time{}, &Error{field, "must be integral epoch milliseconds, got " + string(num)}
	}
	return time.UnixMilli(int64(f)).UTC(), nil
}

func parseIntNum(field string, num []byte) (int64, error) {
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(num), 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, &Error{field, "must be an integer, got " + string(num)}
		}
		return int64(f), nil
	}
	return n, nil
}

func parseFloatNum(field string, num []byte) (float64, error) {
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil {
		return 0, &Error{field, "out of range: " + string(num)}
	}
	return f, nil
}

// DecodeMap is the drop-in-library approach: decode to map[string]RawMessage,
// then each field with the same library.
func DecodeMap(unmarshal func([]byte, any) error, data []byte, e *Event) error {
	*e = Event{}
	var m map[string]json.RawMessage
	if err := unmarshal(data, &m); err != nil {
		return &Error{"", err.Error()}
	}
	if m == nil {
		return &Error{"", "not an object"}
	}
	str := func(name string, raw []byte, dst *string) error {
		switch raw[0] {
		case 'n':
			return nil
		case '"':
			return unmarshal(raw, dst)
		}
		return typeErr(name, "a string", raw)
	}
	num := func(raw []byte) bool { return raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9') }
	for k, raw := range m {
		var err error
		switch k {
		case "v":
			if raw[0] == 'n' {
				continue
			}
			if !num(raw) {
				return typeErr(k, "an integer", raw)
			}
			var n int64
			n, err = parseIntNum(k, raw)
			e.V = int(n)
		case "id":
			err = str(k, raw, &e.ID)
		case "type":
			err = str(k, raw, &e.Type)
		case "user_id":
			err = str(k, raw, &e.UserID)
		case "session_id":
			err = str(k, raw, &e.SessionID)
		case "item_id":
			err = str(k, raw, &e.ItemID)
		case "app":
			err = str(k, raw, &e.App)
		case "placement":
			err = str(k, raw, &e.Placement)
		case "host":
			err = str(k, raw, &e.Host)
		case "method":
			err = str(k, raw, &e.Method)
		case "uri":
			err = str(k, raw, &e.URI)
		case "route":
			err = str(k, raw, &e.Route)
		case "cache":
			err = str(k, raw, &e.Cache)
		case "user_agent":
			err = str(k, raw, &e.UserAgent)
		case "ts", "received_at":
			dst := &e.TS
			if k == "received_at" {
				dst = &e.ReceivedAt
			}
			switch {
			case raw[0] == 'n':
			case raw[0] == '"':
				var s string
				if err = unmarshal(raw, &s); err == nil {
					*dst, err = parseTimeString(k, s)
				}
			case num(raw):
				*dst, err = parseTimeNumber(k, raw)
			default:
				err = typeErr(k, "an RFC 3339 string or epoch milliseconds", raw)
			}
		case "position":
			if raw[0] == 'n' {
				continue
			}
			if !num(raw) {
				return typeErr(k, "an integer", raw)
			}
			var n int64
			n, err = parseIntNum(k, raw)
			p := int(n)
			e.Position = &p
		case "status":
			if raw[0] == 'n' {
				continue
			}
			if !num(raw) {
				return typeErr(k, "an integer", raw)
			}
			var n int64
			n, err = parseIntNum(k, raw)
			e.Status = int(n)
		case "bytes":
			if raw[0] == 'n' {
				continue
			}
			if !num(raw) {
				return typeErr(k, "an integer", raw)
			}
			var n int64
			n, err = parseIntNum(k, raw)
			e.Bytes = &n
		case "request_time_ms":
			if raw[0] == 'n' {
				continue
			}
			if !num(raw) {
				return typeErr(k, "a number", raw)
			}
			var f float64
			f, err = parseFloatNum(k, raw)
			e.RequestTimeMS = &f
		case "features":
			if raw[0] == 'n' {
				continue
			}
			if raw[0] != '{' {
				return typeErr(k, "an object", raw)
			}
			err = unmarshal(raw, &e.Features)
		case "attrs":
			if raw[0] == 'n' {
				continue
			}
			if raw[0] != '{' {
				return typeErr(k, "an object", raw)
			}
			err = unmarshal(raw, &e.Attrs)
		default:
			if e.Extra == nil {
				e.Extra = make(map[string]json.RawMessage)
			}
			e.Extra[k] = raw
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Plain is the upper bound for drop-in libraries: a struct decode that
// neither captures unknown fields nor checks null vs absent.
type Plain struct {
	V             int                `json:"v"`
	ID            string             `json:"id"`
	Type          string             `json:"type"`
	TS            json.RawMessage    `json:"ts"`
	UserID        string             `json:"user_id"`
	SessionID     string             `json:"session_id"`
	ItemID        string             `json:"item_id"`
	App           string             `json:"app"`
	Placement     string             `json:"placement"`
	Position      *int               `json:"position"`
	Features      map[string]float64 `json:"features"`
	Attrs         map[string]string  `json:"attrs"`
	Host          string             `json:"host"`
	Method        string             `json:"method"`
	URI           string             `json:"uri"`
	Route         string             `json:"route"`
	Status        int                `json:"status"`
	Cache         string             `json:"cache"`
	RequestTimeMS *float64           `json:"request_time_ms"`
	Bytes         *int64             `json:"bytes"`
	UserAgent     string             `json:"user_agent"`
	ReceivedAt    json.RawMessage    `json:"received_at"`
}
