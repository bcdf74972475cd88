package archive

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"unsafe"

	"github.com/clickstream-go/clickstream/event"
)

// The buffered form of a row, for files parquet-go writes (a Bloom filter
// configured; the archive's own writer takes each row as it arrives, see
// partBuf): every field of a Row but the shard id, packed as varints and
// length-prefixed strings. It is written once, when the record is buffered,
// from the event the runtime already decoded, and read back at upload into
// a reused Row chunk: no JSON is parsed twice. A partition buffers its rows
// as one stream of these (uvarint length + row), in blocks compressed with
// S2 (see partBuf). It lives only in memory, so its layout may change with
// the code.
//
// Layout, in order:
//
//	flags                 uvarint: hasPosition, hasRequestTime, hasBytes
//	ts, received_at       zigzag varint (Unix ms; received_at 0 = null)
//	status                uvarint
//	position, bytes       zigzag varint, when present
//	request_time_ms       8 bytes little-endian float64 bits, when present
//	id … user_agent       13 strings: uvarint length + bytes
//	extra                 string (the Row's Extra column, already JSON)
//	features              uvarint count+1 (0 = nil map), then key string + 8-byte float
//	attrs                 uvarint count+1 (0 = nil map), then key string + value string
//	sequence_number       string
//	sub_sequence_number   zigzag varint
//	arrival_ts            zigzag varint (Unix ms, 0 = null)
//
// Map entries are in key order: files must not depend on the order Go
// happens to iterate a map in (a replay writes the same objects).
const (
	flagPosition = 1 << iota
	flagRequestTime
	flagBytes
)

// appendRow appends row's buffered form to dst: all but ShardID (the
// shard's own) and V (always 1).
func appendRow(dst []byte, row *Row) []byte {
	var flags uint64
	if row.Position != nil {
		flags |= flagPosition
	}
	if row.RequestTimeMS != nil {
		flags |= flagRequestTime
	}
	if row.Bytes != nil {
		flags |= flagBytes
	}
	dst = binary.AppendUvarint(dst, flags)
	dst = binary.AppendVarint(dst, row.TS)
	dst = binary.AppendVarint(dst, row.ReceivedAt)
	dst = binary.AppendUvarint(dst, uint64(uint32(row.Status)))
	if row.Position != nil {
		dst = binary.AppendVarint(dst, *row.Position)
	}
	if row.Bytes != nil {
		dst = binary.AppendVarint(dst, *row.Bytes)
	}
	if row.RequestTimeMS != nil {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(*row.RequestTimeMS))
	}
	for _, s := range [...]string{row.ID, row.Type, row.UserID, row.SessionID, row.ItemID, row.App,
		row.Placement, row.Host, row.Method, row.URI, row.Route, row.Cache, row.UserAgent, row.Extra} {
		dst = appendString(dst, s)
	}
	var fbuf [16]event.Feature
	feats := row.featureList
	if len(feats) == 0 && len(row.Features) > 0 {
		feats = sortedFeatures(fbuf[:0], row.Features)
	}
	if row.Features == nil && len(feats) == 0 {
		dst = append(dst, 0)
	} else {
		dst = binary.AppendUvarint(dst, uint64(len(feats))+1)
		for _, f := range feats {
			dst = appendString(dst, f.Name)
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f.Value))
		}
	}
	var abuf [16]event.Attr
	attrs := row.attrList
	if len(attrs) == 0 && len(row.Attrs) > 0 {
		attrs = sortedAttrs(abuf[:0], row.Attrs)
	}
	if row.Attrs == nil && len(attrs) == 0 {
		dst = append(dst, 0)
	} else {
		dst = binary.AppendUvarint(dst, uint64(len(attrs))+1)
		for _, a := range attrs {
			dst = appendString(dst, a.Name)
			dst = appendString(dst, a.Value)
		}
	}
	dst = appendString(dst, row.SequenceNumber)
	dst = binary.AppendVarint(dst, row.SubSequenceNumber)
	return binary.AppendVarint(dst, row.ArrivalTS)
}

// sortedFeatures and sortedAttrs append m's entries to dst in name order,
// as the lists of an event decoded with them (event.DecodeLists) hold them.
// Entries, not names: looking each value up again by its name cost a hash
// per entry.
func sortedFeatures(dst []event.Feature, m map[string]float64) []event.Feature {
	for k, v := range m {
		dst = append(dst, event.Feature{Name: k, Value: v})
	}
	slices.SortFunc(dst, func(a, b event.Feature) int { return strings.Compare(a.Name, b.Name) })
	return dst
}

func sortedAttrs(dst []event.Attr, m map[string]string) []event.Attr {
	for k, v := range m {
		dst = append(dst, event.Attr{Name: k, Value: v})
	}
	slices.SortFunc(dst, func(a, b event.Attr) int { return strings.Compare(a.Name, b.Name) })
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

var errCorruptRow = errors.New("corrupt buffered row")

// rowReader reads buffered rows back. Strings of the rows it fills point
// into the buffered bytes (no copies): the slabs holding them are only ever
// appended to, so those bytes never change while a row can see them.
type rowReader struct {
	b   []byte
	err bool
}

func (r *rowReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rowReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rowReader) float() float64 {
	if len(r.b) < 8 {
		r.err, r.b = true, nil
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *rowReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err, r.b = true, nil
		return ""
	}
	if n == 0 {
		return ""
	}
	s := unsafe.String(&r.b[0], int(n))
	r.b = r.b[n:]
	return s
}

// rowScratch is what a reused Row points to: its optional numbers and its
// maps, kept from chunk to chunk so reading a row allocates nothing once
// the maps have grown.
type rowScratch struct {
	position, bytes int64
	requestTime     float64
	features        map[string]float64
	attrs           map[string]string
}

// readRow fills row (all but ShardID; V = 1) from one buffered row. Its
// strings point into b.
func readRow(b []byte, row *Row, sc *rowScratch) error {
	r := rowReader{b: b}
	flags := r.uvarint()
	row.V = 1
	row.TS = r.varint()
	row.ReceivedAt = r.varint()
	row.Status = int32(uint32(r.uvarint()))
	row.Position, row.Bytes, row.RequestTimeMS = nil, nil, nil
	if flags&flagPosition != 0 {
		sc.position = r.varint()
		row.Position = &sc.position
	}
	if flags&flagBytes != 0 {
		sc.bytes = r.varint()
		row.Bytes = &sc.bytes
	}
	if flags&flagRequestTime != 0 {
		sc.requestTime = r.float()
		row.RequestTimeMS = &sc.requestTime
	}
	row.ID, row.Type, row.UserID, row.SessionID = r.str(), r.str(), r.str(), r.str()
	row.ItemID, row.App, row.Placement, row.Host = r.str(), r.str(), r.str(), r.str()
	row.Method, row.URI, row.Route, row.Cache = r.str(), r.str(), r.str(), r.str()
	row.UserAgent, row.Extra = r.str(), r.str()
	row.Features = nil
	if n := r.uvarint(); n > 0 {
		if n-1 > uint64(len(r.b)) {
			return errCorruptRow
		}
		if sc.features == nil {
			sc.features = make(map[string]float64, n-1)
		} else {
			clear(sc.features)
		}
		for range n - 1 {
			k := r.str()
			sc.features[k] = r.float()
		}
		row.Features = sc.features
	}
	row.Attrs = nil
	if n := r.uvarint(); n > 0 {
		if n-1 > uint64(len(r.b)) {
			return errCorruptRow
		}
		if sc.attrs == nil {
			sc.attrs = make(map[string]string, n-1)
		} else {
			clear(sc.attrs)
		}
		for range n - 1 {
			k := r.str()
			sc.attrs[k] = r.str()
		}
		row.Attrs = sc.attrs
	}
	row.SequenceNumber = r.str()
	row.SubSequenceNumber = r.varint()
	row.ArrivalTS = r.varint()
	if r.err || len(r.b) != 0 {
		return errCorruptRow
	}
	return nil
}
