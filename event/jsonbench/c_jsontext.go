package jsonbench

import (
	"bytes"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// DecodeJSONText is the first token-level prototype on jsontext; package
// event's Unmarshal is its refined form.
var jtOpts = jsontext.AllowDuplicateNames(true)

type jtState struct {
	dec jsontext.Decoder
	buf bytes.Buffer
}

var jtPool = sync.Pool{New: func() any { return new(jtState) }}

func DecodeJSONText(data []byte, e *Event) error {
	*e = Event{}
	st := jtPool.Get().(*jtState)
	defer jtPool.Put(st)
	st.buf = *bytes.NewBuffer(data)
	d := &st.dec
	d.Reset(&st.buf, jtOpts)
	r := rec{data: data}
	if d.PeekKind() != '{' {
		_, err := d.ReadValue()
		if err != nil {
			return &Error{"", err.Error()}
		}
		return &Error{"", "not an object"}
	}
	if _, err := d.ReadToken(); err != nil {
		return &Error{"", err.Error()}
	}
	for d.PeekKind() != '}' {
		name, err := d.ReadValue()
		if err != nil {
			return &Error{"", err.Error()}
		}
		key, _ := r.str(name)
		switch key {
		case "features", "attrs":
			if err := jtMap(d, &r, e, key); err != nil {
				return err
			}
			continue
		}
		v, err := d.ReadValue()
		if err != nil {
			return &Error{"", err.Error()}
		}
		if err := r.setField(e, key, v); err != nil {
			return err
		}
	}
	if _, err := d.ReadToken(); err != nil {
		return &Error{"", err.Error()}
	}
	if err := d.SkipValue(); err == nil || d.PeekKind() != 0 {
		return &Error{"", "trailing data"}
	}
	return nil
}

func jtMap(d *jsontext.Decoder, r *rec, e *Event, key string) error {
	switch d.PeekKind() {
	case 'n':
		_, err := d.ReadValue()
		return err
	case '{':
	default:
		v, err := d.ReadValue()
		if err != nil {
			return &Error{"", err.Error()}
		}
		return typeErr(key, "an object", v)
	}
	d.ReadToken()
	for d.PeekKind() != '}' {
		name, err := d.ReadValue()
		if err != nil {
			return &Error{"", err.Error()}
		}
		k, _ := r.str(name)
		v, err := d.ReadValue()
		if err != nil {
			return &Error{"", err.Error()}
		}
		if key == "features" {
			if v.Kind() != '0' {
				return typeErr(key+"."+k, "a number", v)
			}
			f, err := parseFloatNum(key, v)
			if err != nil {
				return err
			}
			if e.Features == nil {
				e.Features = make(map[string]float64, 4)
			}
			e.Features[k] = f
		} else {
			if v.Kind() != '"' {
				return typeErr(key+"."+k, "a string", v)
			}
			s, _ := r.str(v)
			if e.Attrs == nil {
				e.Attrs = make(map[string]string, 4)
			}
			e.Attrs[k] = s
		}
	}
	_, err := d.ReadToken()
	return err
}
