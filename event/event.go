package event

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// Version is the only contract version this package reads and writes.
const Version = 1

// The event types the pipeline understands. Other types are valid, archived
// as-is and ignored by the vectors and metrics consumers.
const (
	TypeClick      = "click"
	TypeImpression = "impression"
	TypeAccess     = "access"
)

// MaxUserIDBytes is the longest user_id (and id, since access events without a
// user are partitioned by id) accepted: the Kinesis partition-key limit.
const MaxUserIDBytes = 256

// Event is one v1 event. Optional numeric fields are pointers so absent differs from zero.
//
// Strings produced by Unmarshal share one copy of the record's bytes, so
// keeping any of them alive keeps the whole record (a few hundred bytes)
// alive; strings.Clone what you keep for long. DecodeShared's point into
// the record itself.
type Event struct {
	V             int                        // "v"; 0 when absent; only 1 is valid
	ID            string                     // "id"
	Type          string                     // "type" (required; unknown types are valid and kept)
	TS            time.Time                  // "ts": RFC 3339 string or epoch milliseconds number; stored UTC, ms precision
	UserID        string                     // "user_id" (required for click/impression; partition key; ≤256 bytes)
	SessionID     string                     // "session_id"
	ItemID        string                     // "item_id"
	App           string                     // "app"
	Placement     string                     // "placement"
	Position      *int                       // "position" (≥0)
	Features      map[string]float64         // "features" (finite numbers)
	Attrs         map[string]string          // "attrs"
	Host          string                     // "host"
	Method        string                     // "method"
	URI           string                     // "uri"
	Route         string                     // "route"
	Status        int                        // "status" (0 when absent, else 100..599)
	Cache         string                     // "cache" nginx $upstream_cache_status, as sent
	RequestTimeMS *float64                   // "request_time_ms" (≥0)
	Bytes         *int64                     // "bytes" (≥0)
	UserAgent     string                     // "user_agent"
	ReceivedAt    time.Time                  // "received_at": server receive time set by the collector (same ts formats); zero when absent
	Extra         map[string]json.RawMessage // unknown top-level fields, verbatim; re-encoded on Encode

	// FeatureList and AttrList are "features" and "attrs" as lists in
	// strictly increasing name order, which DecodeLists fills instead of
	// the maps: for readers that take every entry in order and look none
	// up (the archive), filling a map, walking it and sorting its names
	// took ~8% of handling an event. An event has the maps or the lists;
	// Validate rejects one with both, or with a list out of order.
	FeatureList []Feature
	AttrList    []Attr
}

// Feature is one entry of "features".
type Feature struct {
	Name  string
	Value float64
}

// Attr is one entry of "attrs".
type Attr struct {
	Name, Value string
}

// Error is why a record is bad. Field is the JSON field ("" for a syntax error of the whole record).
// Error() renders "user_id: required for type click", "ts: must be an RFC 3339 string or epoch milliseconds, got true",
// "invalid JSON: unexpected end of input at offset 17", etc.
type Error struct {
	Field  string
	Reason string
}

// Error renders "field: reason", or just the reason when Field is empty.
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// PartitionKey is the Kinesis partition key: user_id if set, else id (access
// logs without a user spread evenly). It is "" when both are empty; the
// collector assigns an id to every event so that does not happen there.
func (e *Event) PartitionKey() string {
	if e.UserID != "" {
		return e.UserID
	}
	return e.ID
}

// NewID returns a new ULID (26 characters, Crockford base32): unique and
// sortable by creation time, as the collector assigns to events without an id.
func NewID() string {
	return ulid.Make().String()
}

// ClassifyCache maps nginx $upstream_cache_status to "HIT","MISS","EXPIRED","OTHER" (STALE, UPDATING, REVALIDATED, BYPASS, unknown)
// or "" for no cache ("-", empty). Case-insensitive; surrounding spaces are ignored.
func ClassifyCache(s string) string {
	s = strings.TrimSpace(s)
	switch {
	case s == "" || s == "-":
		return ""
	case strings.EqualFold(s, "HIT"):
		return "HIT"
	case strings.EqualFold(s, "MISS"):
		return "MISS"
	case strings.EqualFold(s, "EXPIRED"):
		return "EXPIRED"
	}
	return "OTHER"
}
