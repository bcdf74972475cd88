package event

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/clickstream-go/clickstream/internal/decimal"
)

// The fast path. Almost every record a consumer reads is what producers
// write: one object, field names and strings without escapes, numbers,
// and fields of the right types. fast decodes exactly those records with a
// byte scanner of its own, about twice as fast as the tokenizer (see
// BENCHMARKS.md), and gives up on anything else — an escape, a syntax or
// type error, a value nested deeper than fastMaxDepth — so that the
// jsontext decoder decodes the record from the start and reports exactly
// as before. It must never accept a record the tokenizer would reject,
// nor decode one differently: FuzzFastPathAgrees checks both on every
// input.

// fastMaxDepth bounds the nesting of unknown fields the fast path skips;
// deeper values go to the tokenizer, which enforces the real limit.
const fastMaxDepth = 64

// fast decodes data into e, which is zero, and reports whether it did; on
// false, e may be half-filled and the caller starts again.
func (s *decodeState) fast(data []byte, e *Event) bool {
	if bytes.IndexByte(data, '\\') >= 0 {
		return false
	}
	s.data = data
	p := scanner{b: data}
	p.ws()
	if !p.object(func(ks, ke int) bool { return s.fastField(&p, e, ks, ke) }) {
		return false
	}
	p.ws()
	return p.i == len(data)
}

// sub is data[i:j] as a string sharing the record's one copy.
func (s *decodeState) sub(i, j int) string {
	if i == j {
		return ""
	}
	return s.record()[i:j]
}

// fastField decodes the value of the field named data[ks:ke].
func (s *decodeState) fastField(p *scanner, e *Event, ks, ke int) bool {
	var dst *string
	switch string(s.data[ks:ke]) {
	case "id":
		dst = &e.ID
	case "type":
		dst = &e.Type
	case "user_id":
		dst = &e.UserID
	case "session_id":
		dst = &e.SessionID
	case "item_id":
		dst = &e.ItemID
	case "app":
		dst = &e.App
	case "placement":
		dst = &e.Placement
	case "host":
		dst = &e.Host
	case "method":
		dst = &e.Method
	case "uri":
		dst = &e.URI
	case "route":
		dst = &e.Route
	case "cache":
		dst = &e.Cache
	case "user_agent":
		dst = &e.UserAgent
	case "ts":
		return s.fastTime(p, &e.TS)
	case "received_at":
		return s.fastTime(p, &e.ReceivedAt)
	case "features":
		return s.fastFeatures(p, e)
	case "attrs":
		return s.fastAttrs(p, e)
	case "v", "status", "position", "bytes", "request_time_ms":
		return s.fastNumber(p, e, s.data[ks:ke])
	default:
		start := p.i
		if !p.skip(0) {
			return false
		}
		if e.Extra == nil {
			e.Extra = make(map[string]json.RawMessage, 1)
		}
		e.Extra[s.sub(ks, ke)] = bytes.Clone(s.data[start:p.i])
		return true
	}
	switch p.peek() {
	case '"':
		i, j, ok := p.str()
		if !ok {
			return false
		}
		*dst = s.sub(i, j)
		return true
	case 'n':
		*dst = ""
		return p.lit("null")
	}
	return false
}

// fastNumber decodes v, status, position, bytes or request_time_ms: a
// number or null, with the tokenizer path's conversions.
func (s *decodeState) fastNumber(p *scanner, e *Event, key []byte) bool {
	if p.peek() == 'n' {
		switch string(key) {
		case "v":
			e.V = 0
		case "status":
			e.Status = 0
		case "position":
			e.Position = nil
		case "bytes":
			e.Bytes = nil
		case "request_time_ms":
			e.RequestTimeMS = nil
		}
		return p.lit("null")
	}
	i, j, ok := p.num()
	if !ok {
		return false
	}
	v := s.data[i:j]
	if string(key) == "request_time_ms" {
		f, ok := parseFloat(v)
		if !ok {
			return false
		}
		b := s.box()
		b.rtMS = f
		e.RequestTimeMS = &b.rtMS
		return true
	}
	n, err := intValue("", v, '0')
	if err != nil {
		return false
	}
	switch string(key) {
	case "v":
		e.V = int(n)
	case "status":
		e.Status = int(n)
	case "position":
		if int64(int(n)) != n {
			return false
		}
		b := s.box()
		b.position = int(n)
		e.Position = &b.position
	case "bytes":
		b := s.box()
		b.bytes = n
		e.Bytes = &b.bytes
	}
	return true
}

// fastTime decodes ts or received_at as timeField does.
func (s *decodeState) fastTime(p *scanner, dst *time.Time) bool {
	switch c := p.peek(); {
	case c == 'n':
		*dst = time.Time{}
		return p.lit("null")
	case c == '"':
		i, j, ok := p.str()
		if !ok {
			return false
		}
		t, ok := parseRFC3339(unsafeString(s.data[i:j]))
		if !ok || t.Before(minTime) || t.After(maxTime) {
			return false
		}
		*dst = t.Truncate(time.Millisecond)
		return true
	case c == '-' || c >= '0' && c <= '9':
		i, j, ok := p.num()
		if !ok {
			return false
		}
		ms, ok := parseInt(s.data[i:j])
		if !ok || ms < minTime.UnixMilli() || ms > maxTime.UnixMilli() {
			return false
		}
		*dst = time.UnixMilli(ms).UTC()
		return true
	}
	return false
}

// fastFeatures decodes "features": an object of numbers, or null.
func (s *decodeState) fastFeatures(p *scanner, e *Event) bool {
	e.Features, e.FeatureList = nil, nil
	if p.peek() == 'n' {
		return p.lit("null")
	}
	start := s.lists.len()[0]
	ok := p.object(func(ks, ke int) bool {
		i, j, ok := p.num()
		if !ok {
			return false
		}
		f, ok := parseFloat(s.data[i:j])
		if !ok {
			return false
		}
		s.addFeature(e, s.sub(ks, ke), f)
		return true
	})
	if ok {
		s.endFeatures(e, start)
	}
	return ok
}

// fastAttrs decodes "attrs": an object of strings, or null.
func (s *decodeState) fastAttrs(p *scanner, e *Event) bool {
	e.Attrs, e.AttrList = nil, nil
	if p.peek() == 'n' {
		return p.lit("null")
	}
	start := s.lists.len()[1]
	ok := p.object(func(ks, ke int) bool {
		if p.peek() != '"' {
			return false
		}
		i, j, ok := p.str()
		if !ok {
			return false
		}
		s.addAttr(e, s.sub(ks, ke), s.sub(i, j))
		return true
	})
	if ok {
		s.endAttrs(e, start)
	}
	return ok
}

func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// scanner walks a record that holds no backslash. Each method consumes one
// piece of JSON grammar and reports false, leaving the position anywhere,
// when the input is not that piece.
type scanner struct {
	b []byte
	i int
}

func (p *scanner) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *scanner) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *scanner) ws() {
	// Every whitespace byte is at most ' ': one comparison a call for
	// compact JSON, where the switch took four.
	for p.i < len(p.b) && p.b[p.i] <= ' ' {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *scanner) lit(word string) bool {
	if len(p.b)-p.i >= len(word) && string(p.b[p.i:p.i+len(word)]) == word {
		p.i += len(word)
		return true
	}
	return false
}

// str consumes a string and returns where its content is. No escapes are
// possible (the record has no backslash), so the closing quote is the next
// quote; control characters and invalid UTF-8 are refused, as the
// tokenizer refuses them. Eight bytes at a time while they are printable
// ASCII without a quote, then byte by byte.
func (p *scanner) str() (int, int, bool) {
	if !p.eat('"') {
		return 0, 0, false
	}
	const ones, lo, hi, quotes = 0x0101010101010101, 0x2020202020202020, 0x8080808080808080, 0x2222222222222222
	b, start := p.b, p.i
	i := start
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		q := w ^ quotes
		// A zero byte of q (a quote) borrows into its top bit when 1 is
		// subtracted; so does a byte < 0x20 of w when 0x20 is; a byte
		// ≥ 0x80 has its top bit set. A borrow can flag bytes above a
		// flagged one, never below: the lowest flag is exact.
		if m := ((q-ones)&^q | (w-lo)&^w | w) & hi; m != 0 {
			i += bits.TrailingZeros64(m) / 8
			if b[i] == '"' {
				// The usual end: every byte before it plain ASCII.
				p.i = i + 1
				return start, i, true
			}
			break
		}
	}
	ascii := true
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			p.i = i + 1
			if !ascii && !utf8.Valid(b[start:i]) {
				return 0, 0, false
			}
			return start, i, true
		case c < 0x20:
			return 0, 0, false
		case c >= 0x80:
			ascii = false
		}
	}
	return 0, 0, false
}

// num consumes a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *scanner) num() (int, int, bool) {
	start := p.i
	p.eat('-')
	switch c := p.peek(); {
	case c == '0':
		p.i++
	case c >= '1' && c <= '9':
		p.digits()
	default:
		return 0, 0, false
	}
	if p.eat('.') && !p.digits() {
		return 0, 0, false
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if !p.digits() {
			return 0, 0, false
		}
	}
	return start, p.i, true
}

// digits consumes one or more digits.
func (p *scanner) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// object consumes an object, calling entry after each name and colon to
// consume the value.
func (p *scanner) object(entry func(ks, ke int) bool) bool {
	if !p.eat('{') {
		return false
	}
	p.ws()
	if p.eat('}') {
		return true
	}
	for {
		ks, ke, ok := p.str()
		if !ok {
			return false
		}
		p.ws()
		if !p.eat(':') {
			return false
		}
		p.ws()
		if !entry(ks, ke) {
			return false
		}
		p.ws()
		if p.eat(',') {
			p.ws()
			continue
		}
		return p.eat('}')
	}
}

// skip consumes any value, nested at most fastMaxDepth deep.
func (p *scanner) skip(depth int) bool {
	switch c := p.peek(); {
	case c == '"':
		_, _, ok := p.str()
		return ok
	case c == '{':
		if depth >= fastMaxDepth {
			return false
		}
		return p.object(func(int, int) bool { return p.skip(depth + 1) })
	case c == '[':
		if depth >= fastMaxDepth {
			return false
		}
		p.i++
		p.ws()
		if p.eat(']') {
			return true
		}
		for {
			if !p.skip(depth + 1) {
				return false
			}
			p.ws()
			if p.eat(',') {
				p.ws()
				continue
			}
			return p.eat(']')
		}
	case c == 't':
		return p.lit("true")
	case c == 'f':
		return p.lit("false")
	case c == 'n':
		return p.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		_, _, ok := p.num()
		return ok
	}
	return false
}

// parseFloat is strconv.ParseFloat of a JSON number the scanner accepted,
// plain decimals parsed by the decimal package (a third of the time).
func parseFloat(v []byte) (float64, bool) {
	if f, ok := decimal.Float(v); ok {
		return f, true
	}
	f, err := strconv.ParseFloat(unsafeString(v), 64)
	return f, err == nil
}
