package jsonbench

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unsafe"
)

// rec holds the per-record shared string: every unescaped string value is a
// substring of one copy of the input, so all strings of a record cost one allocation.
type rec struct {
	data []byte
	s    string
}

// str converts a raw quoted JSON string (a subslice of r.data) to a Go string.
func (r *rec) str(raw []byte) (string, bool) {
	body := raw[1 : len(raw)-1]
	if bytes.IndexByte(body, '\\') >= 0 {
		u, err := strconv.Unquote(string(raw))
		return u, err == nil
	}
	if r.s == "" {
		r.s = string(r.data)
	}
	if len(body) == 0 {
		return "", true
	}
	off := int(uintptr(unsafe.Pointer(unsafe.SliceData(body))) - uintptr(unsafe.Pointer(unsafe.SliceData(r.data))))
	if off < 0 || off+len(body) > len(r.data) || &r.data[off] != &body[0] {
		return string(body), true
	}
	return r.s[off : off+len(body)], true
}

// setField interprets one already-validated raw JSON value.
func (r *rec) setField(e *Event, key string, raw []byte) error {
	isNull := raw[0] == 'n'
	isNum := raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')
	str := func(dst *string) error {
		if isNull {
			return nil
		}
		if raw[0] != '"' {
			return typeErr(key, "a string", raw)
		}
		s, ok := r.str(raw)
		if !ok {
			return &Error{key, "bad string"}
		}
		*dst = s
		return nil
	}
	switch key {
	case "v":
		if isNull {
			return nil
		}
		if !isNum {
			return typeErr(key, "an integer", raw)
		}
		n, err := parseIntNum(key, raw)
		e.V = int(n)
		return err
	case "id":
		return str(&e.ID)
	case "type":
		return str(&e.Type)
	case "user_id":
		return str(&e.UserID)
	case "session_id":
		return str(&e.SessionID)
	case "item_id":
		return str(&e.ItemID)
	case "app":
		return str(&e.App)
	case "placement":
		return str(&e.Placement)
	case "host":
		return str(&e.Host)
	case "method":
		return str(&e.Method)
	case "uri":
		return str(&e.URI)
	case "route":
		return str(&e.Route)
	case "cache":
		return str(&e.Cache)
	case "user_agent":
		return str(&e.UserAgent)
	case "ts", "received_at":
		dst := &e.TS
		if key == "received_at" {
			dst = &e.ReceivedAt
		}
		var err error
		switch {
		case isNull:
		case raw[0] == '"':
			s, _ := r.str(raw)
			*dst, err = parseTimeString(key, s)
		case isNum:
			*dst, err = parseTimeNumber(key, raw)
		default:
			err = typeErr(key, "an RFC 3339 string or epoch milliseconds", raw)
		}
		return err
	case "position", "status", "bytes":
		if isNull {
			return nil
		}
		if !isNum {
			return typeErr(key, "an integer", raw)
		}
		n, err := parseIntNum(key, raw)
		switch key {
		case "position":
			p := int(n)
			e.Position = &p
		case "status":
			e.Status = int(n)
		default:
			e.Bytes = &n
		}
		return err
	case "request_time_ms":
		if isNull {
			return nil
		}
		if !isNum {
			return typeErr(key, "a number", raw)
		}
		f, err := parseFloatNum(key, raw)
		e.RequestTimeMS = &f
		return err
	}
	if e.Extra == nil {
		e.Extra = make(map[string]json.RawMessage)
	}
	e.Extra[strings.Clone(key)] = append(json.RawMessage(nil), raw...)
	return nil
}

func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
