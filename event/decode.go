package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/clickstream-go/clickstream/internal/decimal"
)

// Decoding reads the record token by token with jsontext (the tokenizer behind
// encoding/json/v2) instead of unmarshalling into a struct: unknown fields must
// be kept verbatim, "ts" takes two JSON types, null must mean absent and every
// type error must name its field. BENCHMARKS.md has the measurements that chose
// this over encoding/json, goccy/go-json, sonic, jsoniter, segmentio, fastjson
// and jsonparser.

// decOpts: duplicate names are allowed (the last one wins, as in encoding/json);
// invalid UTF-8 stays a syntax error.
var decOpts = jsontext.AllowDuplicateNames(true)

// Range of epoch milliseconds that RFC 3339 can write (years 0000-9999).
var (
	minTime = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// maxExactFloat bounds integers written as floats (1.7e12): beyond 2^53 a
// float64 no longer holds every integer, so the value would be silently changed.
const maxExactFloat = 1 << 53

// decodeState is the reusable part of a decode, pooled so a decode allocates
// only what the Event keeps.
type decodeState struct {
	dec     jsontext.Decoder
	buf     bytes.Buffer
	scratch []byte // unquoted escaped strings

	data []byte
	rec  string  // string(data), made on first use; unescaped strings are substrings of it
	nums *numBox // storage behind the optional numeric pointers
	// shared: rec is data itself, not a copy (DecodeShared).
	shared bool
	// maps lends the features and attrs maps (DecodeWith); nil: made.
	maps *Maps
	// lists holds the features and attrs instead of maps (DecodeLists).
	lists *Lists
}

// record is data as the string the event's unescaped strings are
// substrings of: one copy of it, or data itself for DecodeShared.
func (s *decodeState) record() string {
	if s.rec == "" {
		if s.shared {
			s.rec = unsafe.String(unsafe.SliceData(s.data), len(s.data))
		} else {
			s.rec = string(s.data)
		}
	}
	return s.rec
}

// numBox lets Position, Bytes and RequestTimeMS share one allocation.
type numBox struct {
	position int
	bytes    int64
	rtMS     float64
}

var statePool = sync.Pool{New: func() any { return new(decodeState) }}

// Unmarshal decodes one JSON object into e, checking syntax and field types
// only (Validate checks the contract rules). It resets e first; on error e
// holds the fields decoded before the error.
//
// The error is always an *Error: Field "" and Reason "invalid JSON: … at
// offset N" for syntax errors, or the offending field and "must be …, got …".
// Strings must be valid UTF-8 without escaped lone surrogates: such records
// are rejected as invalid JSON rather than silently altered (encoding/json
// would replace the bytes with U+FFFD). A record that is both mistyped and
// broken is reported as invalid JSON.
//
// Null means absent; for duplicate names the last one wins; unknown fields go
// to Extra with their raw bytes copied; an empty features or attrs object
// decodes as nil. Integer fields accept integral numbers written as 2e2 or
// 200.0 up to 2^53. Unmarshal never panics, and neither keeps nor modifies
// data: the caller may reuse it at once. Safe for concurrent use.
func Unmarshal(data []byte, e *Event) error { return unmarshal(data, e, false, nil, nil) }

// unmarshal is Unmarshal, e's strings pointing into data itself when
// shared (DecodeShared), its maps lent by maps when not nil (DecodeWith),
// its features and attrs in lists when lists is not nil (DecodeLists).
func unmarshal(data []byte, e *Event, shared bool, maps *Maps, lists *Lists) error {
	*e = Event{}
	s := statePool.Get().(*decodeState)
	s.shared, s.maps, s.lists = shared, maps, lists
	var err error
	if !s.fast(data, e) {
		*e = Event{}
		if lists != nil {
			lists.truncate(lists.mark)
		}
		err = s.decode(data, e)
	}
	s.release()
	statePool.Put(s)
	return err
}

// unmarshalTokens is Unmarshal without the fast path: the reference the
// fast path is checked against.
func unmarshalTokens(data []byte, e *Event) error {
	*e = Event{}
	s := statePool.Get().(*decodeState)
	err := s.decode(data, e)
	s.release()
	statePool.Put(s)
	return err
}

// Decode is Unmarshal followed by Validate: the one call consumers make per
// record. On error the event holds what was decoded (an id, say, for the
// dead-letter entry).
func Decode(data []byte) (Event, error) {
	var e Event
	err := DecodeInto(data, &e)
	return e, err
}

// DecodeInto is Decode into e, which it resets first: for a caller that
// keeps events in slots of its own (a batch of records), it saves copying
// the Event out.
func DecodeInto(data []byte, e *Event) error {
	if err := Unmarshal(data, e); err != nil {
		return err
	}
	return e.validate(true)
}

// DecodeShared is DecodeInto with e's strings pointing into data itself
// instead of into one copy of it: the copy, an allocation as large as the
// record, is saved. data must never change afterwards, and a string kept
// from e keeps all of data's array alive, so strings.Clone what outlives
// the record. The consumers' runtime decodes this way: record data is
// never modified once read, and a batch's records share one buffer.
func DecodeShared(data []byte, e *Event) error {
	return DecodeWith(data, e, nil)
}

// DecodeWith is DecodeShared with e's Features and Attrs maps taken from
// maps, which lends those Recycle gave back (new ones when it has none).
// maps is not safe for concurrent use; nil is DecodeShared.
func DecodeWith(data []byte, e *Event, maps *Maps) error {
	if err := unmarshal(data, e, true, maps, nil); err != nil {
		return err
	}
	return e.validate(true)
}

// DecodeLists is DecodeShared with e's features and attrs decoded into
// FeatureList and AttrList, spans of lists, instead of the maps. Names
// repeated in an object keep their last value, as in a map. On error an
// object read only in part has no list. lists is not safe for concurrent
// use.
func DecodeLists(data []byte, e *Event, lists *Lists) error {
	lists.mark = lists.len()
	if err := unmarshal(data, e, true, nil, lists); err != nil {
		return err
	}
	return e.validate(true)
}

// Lists holds the features and attrs of the events DecodeLists decodes,
// one event's after another's: an event's FeatureList and AttrList are
// spans of it. Reset reuses its memory for later events, once nothing
// holds the earlier ones' lists. The zero Lists is ready.
type Lists struct {
	features []Feature
	attrs    []Attr
	mark     [2]int // lengths when the event being decoded began
}

// maxKeptListEntries bounds what Reset keeps of each list: a batch of
// 10,000 impressions holds ~30,000 features.
const maxKeptListEntries = 1 << 16

// Reset empties l for later events. Nothing may use the lists of the
// events decoded before: not those events, nor copies of them.
//
// The entries are cleared, not only cut off: their names point into the
// records' data (DecodeShared), and entries a smaller batch does not
// overwrite kept whole GetRecords answers alive, several a shard (31 MB
// of answers held on an 8-shard archive, 10 of them needed). Nothing
// beyond the lists' length is ever left set (truncate and endList clear
// what they drop), so clearing up to it is enough.
func (l *Lists) Reset() {
	clear(l.features)
	clear(l.attrs)
	l.features, l.attrs = l.features[:0], l.attrs[:0]
	if cap(l.features) > maxKeptListEntries {
		l.features = nil
	}
	if cap(l.attrs) > maxKeptListEntries {
		l.attrs = nil
	}
}

// len is how long the lists are; nil's are empty.
func (l *Lists) len() [2]int {
	if l == nil {
		return [2]int{}
	}
	return [2]int{len(l.features), len(l.attrs)}
}

// truncate drops what was appended after n (a fast-path decode that gave
// up midway).
func (l *Lists) truncate(n [2]int) {
	clear(l.features[n[0]:])
	clear(l.attrs[n[1]:])
	l.features, l.attrs = l.features[:n[0]], l.attrs[:n[1]]
}

// addFeature and addAttr add an entry of the object being decoded: to its
// map, or to the end of the lists (features and attrs are objects of the
// event's top level, decoded one at a time; endFeatures and endAttrs make
// the entries since the object began its list).
func (s *decodeState) addFeature(e *Event, name string, f float64) {
	if s.lists != nil {
		s.lists.features = append(s.lists.features, Feature{name, f})
		return
	}
	if e.Features == nil {
		e.Features = s.newFeatures()
	}
	e.Features[name] = f
}

func (s *decodeState) addAttr(e *Event, name, v string) {
	if s.lists != nil {
		s.lists.attrs = append(s.lists.attrs, Attr{name, v})
		return
	}
	if e.Attrs == nil {
		e.Attrs = s.newAttrs()
	}
	e.Attrs[name] = v
}

// endFeatures and endAttrs make the entries appended since start e's
// FeatureList or AttrList, in name order with each name's last value; nil
// for none.
func (s *decodeState) endFeatures(e *Event, start int) {
	if s.lists != nil {
		e.FeatureList = endList(&s.lists.features, start, func(f Feature) string { return f.Name })
	}
}

func (s *decodeState) endAttrs(e *Event, start int) {
	if s.lists != nil {
		e.AttrList = endList(&s.lists.attrs, start, func(a Attr) string { return a.Name })
	}
}

// endList is the entries of list from start, by name (byName), the
// entries dropped also dropped from list.
func endList[T any](list *[]T, start int, name func(T) string) []T {
	l := (*list)[start:len(*list):len(*list)]
	if len(l) == 0 {
		return nil
	}
	l = byName(l, name)
	clear((*list)[start+len(l):]) // the repeated names' entries
	*list = (*list)[:start+len(l)]
	return l
}

// byName sorts l, in the order its entries came, by name, keeps the last
// entry of each name, and returns what is left. Producers send names in
// order (this package's encoder does): checked in one pass.
func byName[T any](l []T, name func(T) string) []T {
	sorted := true
	for i := 1; i < len(l); i++ {
		if name(l[i]) <= name(l[i-1]) {
			sorted = false
			break
		}
	}
	if sorted {
		return l
	}
	slices.SortStableFunc(l, func(a, b T) int { return strings.Compare(name(a), name(b)) })
	n := 0
	for i := range l {
		if i+1 < len(l) && name(l[i+1]) == name(l[i]) {
			continue // a later entry of the same name wins
		}
		l[n] = l[i]
		n++
	}
	return l[:n]
}

// Maps keeps the Features and Attrs maps of events done with, for
// DecodeWith to decode later events into: making and growing two small
// maps per impression was ~12% of decoding the benchmark corpus and 330 of
// the 372 bytes it allocated per event (BenchmarkDecodeWithMaps against
// BenchmarkDecodeShared).
// A consumer that handles events in batches recycles a batch's maps once
// nothing holds them. The zero Maps is ready; it is not safe for
// concurrent use.
type Maps struct {
	features []map[string]float64
	attrs    []map[string]string
}

// maxKeptMaps bounds the maps a Maps keeps, of each kind, and
// maxKeptEntries the entries of a map it keeps: a map grows to the most
// entries it held, and one event with hundreds of features must not make
// every later event's map that large. Kept maps are live heap between
// batches: 16,384 of each took the archive's peak RSS 6 MiB higher on
// `make bench-archive`'s aggregated stream (4 shards) than 2,048, for no
// CPU measurably saved; a caught-up shard's batches are smaller than that.
const (
	maxKeptMaps    = 1 << 11
	maxKeptEntries = 32
)

// Recycle takes e's Features and Attrs maps, cleared, for later events,
// and sets them nil in e. Nothing may use those maps afterwards: not e,
// and not a copy of e.
func (m *Maps) Recycle(e *Event) {
	keep(&m.features, e.Features)
	keep(&m.attrs, e.Attrs)
	e.Features, e.Attrs = nil, nil
}

// keep puts m, cleared, on a free list, unless it is nil, the list is full
// or m grew too large.
func keep[M ~map[string]V, V any](free *[]M, m M) {
	if m != nil && len(m) <= maxKeptEntries && len(*free) < maxKeptMaps {
		clear(m)
		*free = append(*free, m)
	}
}

// UnmarshalJSON implements json.Unmarshaler with Unmarshal's rules (no
// validation), so encoding/json users decode events the same way. A JSON null
// leaves e unchanged, as encoding/json expects.
func (e *Event) UnmarshalJSON(data []byte) error {
	if string(bytes.TrimSpace(data)) == "null" {
		return nil
	}
	return Unmarshal(data, e)
}

// release prepares s for the pool. The jsontext decoder still points at the
// last record until its next Reset (it is never read again, but a pooled state
// keeps that one record alive); resetting it here as well cost ~7% more CPU
// per decode.
func (s *decodeState) release() {
	s.data, s.rec, s.nums, s.shared, s.maps, s.lists = nil, "", nil, false, nil, nil
	if cap(s.scratch) > 4<<10 {
		s.scratch = nil
	}
}

func (s *decodeState) decode(data []byte, e *Event) error {
	s.data = data
	s.buf = *bytes.NewBuffer(data) // jsontext reads a bytes.Buffer in place, without copying
	d := &s.dec
	d.Reset(&s.buf, decOpts)

	switch k := d.PeekKind(); k {
	case '{':
	case 0:
		_, err := d.ReadValue()
		return s.syntaxError(err)
	default:
		if _, err := d.ReadValue(); err != nil {
			return s.syntaxError(err)
		}
		return &Error{Reason: "event must be a JSON object, got " + kindName(k)}
	}
	if _, err := d.ReadToken(); err != nil {
		return s.syntaxError(err)
	}
	for {
		if d.PeekKind() == '}' {
			break
		}
		name, err := d.ReadValue()
		if err != nil {
			return s.syntaxError(err)
		}
		key, err := s.stringAt(name)
		if err != nil {
			return err
		}
		if err := s.field(e, key); err != nil {
			if ee, ok := err.(*Error); ok && ee.Field != "" {
				return s.finish(err)
			}
			return err
		}
	}
	if _, err := d.ReadToken(); err != nil {
		return s.syntaxError(err)
	}
	return s.checkTrailing()
}

// finish reports a type error only once the rest of the record is known to be
// valid JSON, so a record that is also broken is reported as invalid JSON.
func (s *decodeState) finish(typeErr error) error {
	d := &s.dec
	for d.StackDepth() > 0 {
		var err error
		switch d.PeekKind() {
		case '}', ']':
			_, err = d.ReadToken()
		default:
			_, err = d.ReadValue()
		}
		if err != nil {
			return s.syntaxError(err)
		}
	}
	if err := s.checkTrailing(); err != nil {
		return err
	}
	return typeErr
}

func (s *decodeState) checkTrailing() error {
	off := int(s.dec.InputOffset())
	for i := off; i < len(s.data); i++ {
		switch s.data[i] {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return &Error{Reason: "invalid JSON: unexpected data after the object at offset " + strconv.Itoa(i)}
	}
	return nil
}

func (s *decodeState) syntaxError(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		reason := "syntax error"
		if se.Err != nil {
			reason = strings.TrimPrefix(se.Err.Error(), "jsontext: ")
		}
		if errors.Is(se.Err, io.ErrUnexpectedEOF) {
			reason = "unexpected end of input"
		}
		return &Error{Reason: "invalid JSON: " + reason + " at offset " + strconv.FormatInt(se.ByteOffset, 10)}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Reason: "invalid JSON: unexpected end of input at offset " + strconv.Itoa(len(s.data))}
	}
	return &Error{Reason: "invalid JSON: " + strings.TrimPrefix(err.Error(), "jsontext: ")}
}

// stringAt converts v, a JSON string just returned by the decoder, to a Go
// string. Without escapes it is a substring of one copy of the record, so all
// strings of a record cost a single allocation.
func (s *decodeState) stringAt(v jsontext.Value) (string, error) {
	if len(v) <= 2 {
		return "", nil
	}
	if bytes.IndexByte(v, '\\') < 0 {
		off := int(s.dec.InputOffset()) - len(v)
		return s.record()[off+1 : off+len(v)-1], nil
	}
	var err error
	s.scratch, err = jsontext.AppendUnquote(s.scratch[:0], v)
	if err != nil { // unreachable: the decoder has validated v
		return "", &Error{Reason: "invalid JSON: " + err.Error()}
	}
	return string(s.scratch), nil
}

// newFeatures and newAttrs return an empty map for an event's features
// or attrs: one lent by s.maps, or a new one.
func (s *decodeState) newFeatures() map[string]float64 {
	if s.maps != nil {
		if f, ok := pop(&s.maps.features); ok {
			return f
		}
	}
	return make(map[string]float64)
}

func (s *decodeState) newAttrs() map[string]string {
	if s.maps != nil {
		if a, ok := pop(&s.maps.attrs); ok {
			return a
		}
	}
	return make(map[string]string)
}

// pop takes the last map of a free list.
func pop[M any](free *[]M) (m M, ok bool) {
	n := len(*free)
	if n == 0 {
		return m, false
	}
	m, *free = (*free)[n-1], (*free)[:n-1]
	return m, true
}

func (s *decodeState) box() *numBox {
	if s.nums == nil {
		s.nums = new(numBox)
	}
	return s.nums
}

// field decodes the value of the top-level field key.
func (s *decodeState) field(e *Event, key string) error {
	switch key {
	case "id":
		return s.str(key, &e.ID)
	case "type":
		return s.str(key, &e.Type)
	case "user_id":
		return s.str(key, &e.UserID)
	case "session_id":
		return s.str(key, &e.SessionID)
	case "item_id":
		return s.str(key, &e.ItemID)
	case "app":
		return s.str(key, &e.App)
	case "placement":
		return s.str(key, &e.Placement)
	case "host":
		return s.str(key, &e.Host)
	case "method":
		return s.str(key, &e.Method)
	case "uri":
		return s.str(key, &e.URI)
	case "route":
		return s.str(key, &e.Route)
	case "cache":
		return s.str(key, &e.Cache)
	case "user_agent":
		return s.str(key, &e.UserAgent)
	case "ts":
		return s.timeField(key, &e.TS)
	case "received_at":
		return s.timeField(key, &e.ReceivedAt)
	case "features":
		return s.features(e)
	case "attrs":
		return s.attrs(e)
	}

	v, err := s.dec.ReadValue()
	if err != nil {
		return s.syntaxError(err)
	}
	k := v.Kind()
	switch key {
	case "v":
		n, err := intValue(key, v, k)
		e.V = int(n)
		return err
	case "status":
		n, err := intValue(key, v, k)
		e.Status = int(n)
		return err
	case "position":
		if k == 'n' {
			e.Position = nil
			return nil
		}
		n, err := intValue(key, v, k)
		if err != nil {
			return err
		}
		if int64(int(n)) != n { // only where int is 32 bits
			return &Error{key, "integer out of range, got " + clip(string(v))}
		}
		b := s.box()
		b.position = int(n)
		e.Position = &b.position
		return nil
	case "bytes":
		if k == 'n' {
			e.Bytes = nil
			return nil
		}
		n, err := intValue(key, v, k)
		if err != nil {
			return err
		}
		b := s.box()
		b.bytes = n
		e.Bytes = &b.bytes
		return nil
	case "request_time_ms":
		if k == 'n' {
			e.RequestTimeMS = nil
			return nil
		}
		if k != '0' {
			return typeError(key, "a number", k)
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return &Error{key, "must be a finite number, got " + clip(string(v))}
		}
		b := s.box()
		b.rtMS = f
		e.RequestTimeMS = &b.rtMS
		return nil
	}
	if e.Extra == nil {
		e.Extra = make(map[string]json.RawMessage, 1)
	}
	e.Extra[key] = bytes.Clone(v)
	return nil
}

// str decodes a string field; null leaves it empty.
func (s *decodeState) str(key string, dst *string) error {
	v, err := s.dec.ReadValue()
	if err != nil {
		return s.syntaxError(err)
	}
	switch k := v.Kind(); k {
	case '"':
		*dst, err = s.stringAt(v)
		return err
	case 'n':
		*dst = ""
		return nil
	default:
		return typeError(key, "a string", k)
	}
}

// time decodes "ts" or "received_at": an RFC 3339 string (any offset,
// converted to UTC) or integral epoch milliseconds, truncated to milliseconds.
func (s *decodeState) timeField(key string, dst *time.Time) error {
	v, err := s.dec.ReadValue()
	if err != nil {
		return s.syntaxError(err)
	}
	const want = "an RFC 3339 string or epoch milliseconds"
	switch k := v.Kind(); k {
	case 'n':
		*dst = time.Time{}
		return nil
	case '"':
		str, err := s.stringAt(v)
		if err != nil {
			return err
		}
		t, ok := parseRFC3339(str)
		if !ok {
			return &Error{key, "must be " + want + ", got " + strconv.Quote(clip(str))}
		}
		if t.Before(minTime) || t.After(maxTime) {
			return &Error{key, "out of range (years 0000-9999), got " + strconv.Quote(clip(str))}
		}
		*dst = t.Truncate(time.Millisecond)
		return nil
	case '0':
		ms, ok := parseInt(v)
		if !ok && !isIntegral(v) {
			return &Error{key, "must be " + want + ", got " + clip(string(v))}
		}
		if !ok || ms < minTime.UnixMilli() || ms > maxTime.UnixMilli() {
			return &Error{key, "out of range (years 0000-9999), got " + clip(string(v))}
		}
		*dst = time.UnixMilli(ms).UTC()
		return nil
	default:
		return typeError(key, want, k)
	}
}

// parseRFC3339 parses s and returns it in UTC. RFC 3339 also allows a
// lowercase "t"/"z" and a space between date and time; those are accepted.
func parseRFC3339(s string) (time.Time, bool) {
	if t, ok := parseUTCMillis(s); ok {
		return t, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		if len(s) < 20 {
			return time.Time{}, false
		}
		b := []byte(s)
		if b[10] == 't' || b[10] == ' ' {
			b[10] = 'T'
		}
		if b[len(b)-1] == 'z' {
			b[len(b)-1] = 'Z'
		}
		if string(b) == s {
			return time.Time{}, false
		}
		if t, err = time.Parse(time.RFC3339Nano, string(b)); err != nil {
			return time.Time{}, false
		}
	}
	return t.UTC(), true
}

// parseUTCMillis parses the timestamps producers send, in UTC with up to
// millisecond digits ("2006-01-02T15:04:05.000Z", "2006-01-02T15:04:05Z"),
// ~5 times faster than time.Parse; false for any other form, valid or
// not, which time.Parse then judges.
func parseUTCMillis(s string) (time.Time, bool) {
	if len(s) < 20 || len(s) > 24 || len(s) == 21 || s[len(s)-1] != 'Z' ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for i := from; i < to; i++ {
			c := s[i] - '0'
			if c > 9 {
				return 0, false
			}
			n = n*10 + int(c)
		}
		return n, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 7)
	day, ok3 := num(8, 10)
	hour, ok4 := num(11, 13)
	minute, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || year < 1 ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	ms := 0
	if len(s) > 20 {
		if s[19] != '.' {
			return time.Time{}, false
		}
		frac, ok := num(20, len(s)-1)
		if !ok {
			return time.Time{}, false
		}
		for range 24 - len(s) {
			frac *= 10
		}
		ms = frac
	}
	days := daysFromCivil(year, month, day)
	return time.UnixMilli(((days*24+int64(hour))*60+int64(minute))*60_000 + int64(sec)*1000 + int64(ms)).UTC(), true
}

// daysIn is the number of days of month in year.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d in the
// proleptic Gregorian calendar (H. Hinnant's days_from_civil).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400 // y ≥ 0: the caller's years start at 1
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// features decodes "features": an object of finite numbers.
func (s *decodeState) features(e *Event) error {
	const key = "features"
	if ok, err := s.beginMap(key); !ok {
		e.Features, e.FeatureList = nil, nil
		return err
	}
	e.Features, e.FeatureList = nil, nil // a repeated "features" replaces the earlier one
	start := s.lists.len()[0]
	d := &s.dec
	for d.PeekKind() != '}' {
		name, v, err := s.mapEntry()
		if err != nil {
			return err
		}
		if k := v.Kind(); k != '0' {
			return &Error{key, "value of " + strconv.Quote(clip(name)) + " must be a number, got " + kindName(k)}
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return &Error{key, "value of " + strconv.Quote(clip(name)) + " must be a finite number, got " + clip(string(v))}
		}
		s.addFeature(e, name, f)
	}
	s.endFeatures(e, start)
	_, err := d.ReadToken()
	return s.syntaxErrorOrNil(err)
}

// attrs decodes "attrs": an object of strings.
func (s *decodeState) attrs(e *Event) error {
	const key = "attrs"
	if ok, err := s.beginMap(key); !ok {
		e.Attrs, e.AttrList = nil, nil
		return err
	}
	e.Attrs, e.AttrList = nil, nil
	start := s.lists.len()[1]
	d := &s.dec
	for d.PeekKind() != '}' {
		name, v, err := s.mapEntry()
		if err != nil {
			return err
		}
		if k := v.Kind(); k != '"' {
			return &Error{key, "value of " + strconv.Quote(clip(name)) + " must be a string, got " + kindName(k)}
		}
		str, err := s.stringAt(v)
		if err != nil {
			return err
		}
		s.addAttr(e, name, str)
	}
	s.endAttrs(e, start)
	_, err := d.ReadToken()
	return s.syntaxErrorOrNil(err)
}

// beginMap consumes the start of an object-valued field. It reports false
// (with a nil error for null) when there are no entries to read.
func (s *decodeState) beginMap(key string) (bool, error) {
	d := &s.dec
	switch k := d.PeekKind(); k {
	case '{':
		if _, err := d.ReadToken(); err != nil {
			return false, s.syntaxError(err)
		}
		return true, nil
	case 'n':
		_, err := d.ReadValue()
		return false, s.syntaxErrorOrNil(err)
	case 0:
		_, err := d.ReadValue()
		return false, s.syntaxError(err)
	default:
		return false, typeError(key, "an object", k)
	}
}

// mapEntry reads one name and value of a features or attrs object. The name
// must be converted before the value is read: stringAt uses the decoder offset.
func (s *decodeState) mapEntry() (string, jsontext.Value, error) {
	d := &s.dec
	nv, err := d.ReadValue()
	if err != nil {
		return "", nil, s.syntaxError(err)
	}
	name, err := s.stringAt(nv)
	if err != nil {
		return "", nil, err
	}
	v, err := d.ReadValue()
	if err != nil {
		return "", nil, s.syntaxError(err)
	}
	return name, v, nil
}

func (s *decodeState) syntaxErrorOrNil(err error) error {
	if err == nil {
		return nil
	}
	return s.syntaxError(err)
}

// intValue decodes an integer field; null is 0. Integral numbers written with
// a fraction or exponent (200.0, 2e2) are accepted up to 2^53.
func intValue(key string, v jsontext.Value, k jsontext.Kind) (int64, error) {
	switch k {
	case 'n':
		return 0, nil
	case '0':
		if n, ok := parseInt(v); ok {
			return n, nil
		}
		if isIntegral(v) {
			return 0, &Error{key, "integer out of range, got " + clip(string(v))}
		}
		return 0, &Error{key, "must be an integer, got " + clip(string(v))}
	default:
		return 0, typeError(key, "an integer", k)
	}
}

// parseInt parses a JSON number that must be an integer.
func parseInt(v []byte) (int64, bool) {
	if n, ok := decimal.Int(v); ok {
		return n, true
	}
	if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > maxExactFloat {
		return 0, false
	}
	return int64(f), true
}

// isIntegral reports whether a JSON number has no fractional part, however
// large (1e400 included).
func isIntegral(v []byte) bool {
	f, err := strconv.ParseFloat(string(v), 64)
	return math.IsInf(f, 0) || (err == nil && f == math.Trunc(f))
}

func typeError(key, want string, k jsontext.Kind) error {
	return &Error{key, "must be " + want + ", got " + kindName(k)}
}

// kindName names what a type error got: the JSON type, or the literal
// itself for true, false and null ("got true" reads better than "got boolean").
func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case '0':
		return "number"
	case 't':
		return "true"
	case 'f':
		return "false"
	case 'n':
		return "null"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "nothing"
}

// clip shortens a value echoed in an error message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && s[i]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		i--
	}
	return s[:i] + "…"
}
