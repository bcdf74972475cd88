package collector

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
)

// requestError is a whole-request failure: nothing of the request was
// accepted. status is the HTTP status it maps to.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func reqErr(status int, format string, args ...any) *requestError {
	return &requestError{status: status, msg: fmt.Sprintf(format, args...)}
}

// bodyFormat is how a request body frames its events.
type bodyFormat int

const (
	formatJSON   bodyFormat = iota // a JSON array of events, or one event object
	formatNDJSON                   // one event object per line
	formatText                     // text/plain (beacons): a JSON array, else NDJSON
)

// parseContentType maps the Content-Type header to a body format. A missing
// header is read as JSON; anything that is neither JSON nor NDJSON is 415.
func parseContentType(h string) (bodyFormat, error) {
	if strings.TrimSpace(h) == "" {
		return formatJSON, nil
	}
	mt, _, err := mime.ParseMediaType(h)
	if err != nil {
		return 0, reqErr(http.StatusUnsupportedMediaType, "unsupported Content-Type %q: use application/json or application/x-ndjson", h)
	}
	switch mt {
	case "application/json":
		return formatJSON, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines":
		return formatNDJSON, nil
	case "text/plain":
		// What a beacon sends without a CORS preflight: NDJSON, or a JSON
		// array (one event per line splits either).
		return formatText, nil
	}
	return 0, reqErr(http.StatusUnsupportedMediaType, "unsupported Content-Type %q: use application/json, application/x-ndjson (or text/plain from a beacon)", mt)
}

// parseContentEncoding reports whether the body is gzip-compressed; other
// codings are 415 (RFC 7694).
func parseContentEncoding(h string) (gzipped bool, err error) {
	switch strings.ToLower(strings.TrimSpace(h)) {
	case "", "identity":
		return false, nil
	case "gzip", "x-gzip":
		return true, nil
	}
	return false, reqErr(http.StatusUnsupportedMediaType, "unsupported Content-Encoding %q: use gzip or none", h)
}

// bufPool recycles request body buffers. Buffers that grew beyond
// maxPooledBuf are dropped so the pool never pins much memory.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBuf = 4 << 20

func getBuf() *bytes.Buffer { b := bufPool.Get().(*bytes.Buffer); b.Reset(); return b }

func putBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuf {
		bufPool.Put(b)
	}
}

// readBody reads the whole body into buf, decompressing it when gzipped.
// r must already be limited to limit wire bytes (http.MaxBytesReader); the
// decompressed size is limited here, so a zip bomb costs at most limit+1
// inflated bytes before it is refused with 413.
func readBody(buf *bytes.Buffer, r io.Reader, gzipped bool, limit int64) error {
	if gzipped {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return wireErr(err, limit, "invalid gzip body: %v")
		}
		defer zr.Close()
		r = zr
	}
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return wireErr(err, limit, "read body: %v")
	}
	if n > limit {
		return reqErr(http.StatusRequestEntityTooLarge, "body larger than %d bytes (after decompression)", limit)
	}
	return nil
}

// wireErr maps a read error to 413 when the wire limit was hit, else 400.
func wireErr(err error, limit int64, format string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return reqErr(http.StatusRequestEntityTooLarge, "body larger than %d bytes", limit)
	}
	return reqErr(http.StatusBadRequest, format, err)
}

var utf8BOM = []byte("\xef\xbb\xbf")

// splitEvents cuts a body into one raw JSON text per event without decoding
// the events: each is decoded and validated on its own later, so one bad
// event never costs the others. JSON bodies must be syntactically valid (an
// array of values, or one object) — otherwise nothing can be framed and the
// request is 400. NDJSON frames by line, so a malformed line is just one bad
// event; blank lines (and a trailing newline) are skipped and do not count
// as events. More than maxEvents events is 413.
func splitEvents(body []byte, format bodyFormat, maxEvents int) ([][]byte, error) {
	body = bytes.TrimPrefix(body, utf8BOM)
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, reqErr(http.StatusBadRequest, "empty body: send a JSON array of events, one event object, or NDJSON")
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if format == formatNDJSON || format == formatText && trimmed[0] != '[' {
		return splitLines(body, maxEvents)
	}
	switch trimmed[0] {
	case '[':
		return splitArray(body, maxEvents)
	case '{':
		dec := json.NewDecoder(bytes.NewReader(body))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, reqErr(http.StatusBadRequest, "invalid JSON body: %v", err)
		}
		if err := expectEOF(dec); err != nil {
			return nil, err
		}
		return [][]byte{raw}, nil
	}
	return nil, reqErr(http.StatusBadRequest, "body must be a JSON array of events or one event object (for NDJSON send Content-Type: application/x-ndjson)")
}

func splitArray(body []byte, maxEvents int) ([][]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // '[' checked by the caller
		return nil, reqErr(http.StatusBadRequest, "invalid JSON body: %v", err)
	}
	var out [][]byte
	for dec.More() {
		if len(out) == maxEvents {
			return nil, reqErr(http.StatusRequestEntityTooLarge, "more than %d events in one request", maxEvents)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, reqErr(http.StatusBadRequest, "invalid JSON body in element %d: %v", len(out), err)
		}
		out = append(out, raw)
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, reqErr(http.StatusBadRequest, "invalid JSON body after element %d: %v", len(out), err)
	}
	if err := expectEOF(dec); err != nil {
		return nil, err
	}
	return out, nil
}

func expectEOF(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		return reqErr(http.StatusBadRequest, "unexpected data after the JSON value (several objects? send them as an array or as application/x-ndjson)")
	}
	return nil
}

func splitLines(body []byte, maxEvents int) ([][]byte, error) {
	var out [][]byte
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if len(out) == maxEvents {
			return nil, reqErr(http.StatusRequestEntityTooLarge, "more than %d events in one request", maxEvents)
		}
		out = append(out, line)
	}
	return out, nil
}
