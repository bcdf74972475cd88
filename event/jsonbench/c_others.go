package jsonbench

import (
	"encoding/json"
	"errors"
	"strconv"
	"unsafe"

	"github.com/buger/jsonparser"
	jsoniter "github.com/json-iterator/go"
	"github.com/valyala/fastjson"
)

// Token-level candidates on other libraries. jsoniter's Skip and jsonparser
// do not fully validate what they skip (jsonparser needs json.Valid first to
// be correct); fastjson cannot return an unknown field's raw bytes, so it
// re-serialises Extra instead of keeping it verbatim.
var jiCfg = jsoniter.ConfigCompatibleWithStandardLibrary

func DecodeJsoniterIter(data []byte, e *Event) error {
	*e = Event{}
	it := jiCfg.BorrowIterator(data)
	defer jiCfg.ReturnIterator(it)
	r := rec{data: data}
	if it.WhatIsNext() != jsoniter.ObjectValue {
		return &Error{"", "not an object"}
	}
	for key := it.ReadObject(); key != ""; key = it.ReadObject() {
		switch key {
		case "features", "attrs":
			switch it.WhatIsNext() {
			case jsoniter.NilValue:
				it.Skip()
				continue
			case jsoniter.ObjectValue:
			default:
				return typeErr(key, "an object", it.SkipAndReturnBytes())
			}
			for k := it.ReadObject(); k != ""; k = it.ReadObject() {
				if key == "features" {
					if it.WhatIsNext() != jsoniter.NumberValue {
						return typeErr(key, "a number", it.SkipAndReturnBytes())
					}
					if e.Features == nil {
						e.Features = make(map[string]float64, 4)
					}
					e.Features[k] = it.ReadFloat64()
				} else {
					if it.WhatIsNext() != jsoniter.StringValue {
						return typeErr(key, "a string", it.SkipAndReturnBytes())
					}
					if e.Attrs == nil {
						e.Attrs = make(map[string]string, 4)
					}
					e.Attrs[k] = it.ReadString()
				}
			}
			continue
		}
		if err := r.setField(e, key, it.SkipAndReturnBytes()); err != nil {
			return err
		}
	}
	if it.Error != nil {
		return &Error{"", it.Error.Error()}
	}
	return nil
}

var fjPool fastjson.ParserPool

func DecodeFastJSON(data []byte, e *Event) error {
	*e = Event{}
	p := fjPool.Get()
	defer fjPool.Put(p)
	v, err := p.ParseBytes(data)
	if err != nil {
		return &Error{"", err.Error()}
	}
	o, err := v.Object()
	if err != nil {
		return &Error{"", "not an object"}
	}
	arena := make([]byte, 0, len(data))
	s := func(b []byte) string {
		start := len(arena)
		arena = append(arena, b...)
		return b2s(arena[start:len(arena):len(arena)])
	}
	var scratch []byte
	o.Visit(func(k []byte, v *fastjson.Value) {
		if err != nil {
			return
		}
		key := string(k) // compiler avoids alloc in switch only; fine for bench
		t := v.Type()
		switch key {
		case "features", "attrs":
			if t == fastjson.TypeNull {
				return
			}
			mo, oerr := v.Object()
			if oerr != nil {
				err = &Error{key, "must be an object"}
				return
			}
			mo.Visit(func(mk []byte, mv *fastjson.Value) {
				if err != nil {
					return
				}
				if key == "features" {
					f, ferr := mv.Float64()
					if ferr != nil {
						err = &Error{key, "must be a number"}
						return
					}
					if e.Features == nil {
						e.Features = make(map[string]float64, 4)
					}
					e.Features[s(mk)] = f
				} else {
					sb, serr := mv.StringBytes()
					if serr != nil {
						err = &Error{key, "must be a string"}
						return
					}
					if e.Attrs == nil {
						e.Attrs = make(map[string]string, 4)
					}
					e.Attrs[s(mk)] = s(sb)
				}
			})
			return
		}
		if t == fastjson.TypeString {
			sb, _ := v.StringBytes()
			str := s(sb)
			switch key {
			case "id":
				e.ID = str
			case "type":
				e.Type = str
			case "user_id":
				e.UserID = str
			case "session_id":
				e.SessionID = str
			case "item_id":
				e.ItemID = str
			case "app":
				e.App = str
			case "placement":
				e.Placement = str
			case "host":
				e.Host = str
			case "method":
				e.Method = str
			case "uri":
				e.URI = str
			case "route":
				e.Route = str
			case "cache":
				e.Cache = str
			case "user_agent":
				e.UserAgent = str
			case "ts":
				e.TS, err = parseTimeString(key, str)
			case "received_at":
				e.ReceivedAt, err = parseTimeString(key, str)
			default:
				goto extra
			}
			return
		}
		if t == fastjson.TypeNumber {
			scratch = v.MarshalTo(scratch[:0])
			err = (&rec{}).setField(e, key, scratch)
			return
		}
	extra:
		if e.Extra == nil {
			e.Extra = make(map[string]json.RawMessage)
		}
		e.Extra[key] = v.MarshalTo(nil)
	})
	return err
}

func DecodeJSONParser(validate bool) func(data []byte, e *Event) error {
	return func(data []byte, e *Event) error {
		*e = Event{}
		if validate && !json.Valid(data) {
			return &Error{"", "invalid"}
		}
		r := rec{data: data}
		var ferr error
		err := jsonparser.ObjectEach(data, func(k, v []byte, t jsonparser.ValueType, off int) error {
			// jsonparser strips quotes from strings; widen back to the quoted span.
			raw := v
			if t == jsonparser.String {
				start := off - len(v) - 2
				raw = data[start:off:off]
			}
			key := b2s(k)
			switch key {
			case "features", "attrs":
				if t == jsonparser.Null {
					return nil
				}
				if t != jsonparser.Object {
					return typeErr(key, "an object", raw)
				}
				return jsonparser.ObjectEach(v, func(mk, mv []byte, mt jsonparser.ValueType, moff int) error {
					if key == "features" {
						if mt != jsonparser.Number {
							return typeErr(key, "a number", mv)
						}
						f, err := strconv.ParseFloat(b2s(mv), 64)
						if err != nil {
							return err
						}
						if e.Features == nil {
							e.Features = make(map[string]float64, 4)
						}
						ks, _ := r.str(quoted(data, mk))
						e.Features[ks] = f
						return nil
					}
					if mt != jsonparser.String {
						return typeErr(key, "a string", mv)
					}
					if e.Attrs == nil {
						e.Attrs = make(map[string]string, 4)
					}
					ks, _ := r.str(quoted(data, mk))
					vs, _ := r.str(quoted(data, mv))
					e.Attrs[ks] = vs
					return nil
				})
			}
			if ferr = r.setField(e, key, raw); ferr != nil {
				return ferr
			}
			return nil
		})
		if err != nil {
			if errors.As(err, new(*Error)) {
				return err
			}
			return &Error{"", err.Error()}
		}
		return nil
	}
}

func quoted(data, body []byte) []byte {
	off := int(uintptr(unsafe.Pointer(unsafe.SliceData(body))) - uintptr(unsafe.Pointer(unsafe.SliceData(data))))
	return data[off-1 : off+len(body)+1]
}
