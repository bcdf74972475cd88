package archive

import (
	"encoding/json"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

// Row is one archived event: a row of the Parquet files. The struct tags are
// the file schema. Every timestamp is INT64 TIMESTAMP(MILLIS, isAdjustedToUTC)
// — what Athena, Spark, BigQuery and DuckDB read as a timestamp (nanosecond
// timestamps break several of them). Optional fields hold their zero value
// for null. Partition values (type, dt, hour) are also in the key; type is
// kept in the file too because an escaped or cut partition value may differ
// from the exact type.
//
// Encodings (not part of the schema) are chosen by measurement: user_id and
// session_id are dictionary-encoded (a user's events repeat both within a
// file: 1.5 bytes each per row instead of ~1.9 after zstd, for a tenth of
// the compression time); ids, URIs and sequence numbers are too unique for
// a dictionary.
type Row struct {
	V             int32              `parquet:"v,delta"`
	ID            string             `parquet:"id,optional"`
	Type          string             `parquet:"type,dict"`
	TS            int64              `parquet:"ts,timestamp(millisecond:utc),delta"`
	UserID        string             `parquet:"user_id,optional,dict"`
	SessionID     string             `parquet:"session_id,optional,dict"`
	ItemID        string             `parquet:"item_id,optional,dict"`
	App           string             `parquet:"app,optional,dict"`
	Placement     string             `parquet:"placement,optional,dict"`
	Position      *int64             `parquet:"position,optional"`
	Features      map[string]float64 `parquet:"features,optional" parquet-key:",dict"`
	Attrs         map[string]string  `parquet:"attrs,optional" parquet-key:",dict" parquet-value:",dict"`
	Host          string             `parquet:"host,optional,dict"`
	Method        string             `parquet:"method,optional,dict"`
	URI           string             `parquet:"uri,optional"`
	Route         string             `parquet:"route,optional,dict"`
	Status        int32              `parquet:"status,optional"`
	Cache         string             `parquet:"cache,optional,dict"`
	RequestTimeMS *float64           `parquet:"request_time_ms,optional"`
	Bytes         *int64             `parquet:"bytes,optional"`
	UserAgent     string             `parquet:"user_agent,optional,dict"`
	ReceivedAt    int64              `parquet:"received_at,optional,timestamp(millisecond:utc),delta"`
	// Extra holds the unknown top-level fields as one JSON object (keys
	// sorted, values verbatim); null when there are none.
	Extra string `parquet:"extra,optional"`

	ShardID           string `parquet:"shard_id,dict"`
	SequenceNumber    string `parquet:"sequence_number,delta"`
	SubSequenceNumber int64  `parquet:"sub_sequence_number,delta"`
	// ArrivalTS is when Kinesis accepted the record (ApproximateArrivalTimestamp).
	ArrivalTS int64 `parquet:"arrival_ts,optional,timestamp(millisecond:utc),delta"`

	// featureList and attrList are the features and attrs of an event
	// decoded as lists (event.DecodeLists), in name order, instead of
	// Features and Attrs: not columns of their own, the same ones.
	featureList []event.Feature
	attrList    []event.Attr
}

// RowOf converts a good record into its archive row. The row shares maps,
// lists and strings with the record's event; none is modified.
func RowOf(r *consumers.Record) Row {
	var pos *int64
	if r.Event.Position != nil {
		pos = new(int64)
	}
	return rowOf(r, pos)
}

// rowOf is RowOf with the storage behind Row.Position given: the archive
// writes (or packs) each row at once, so one reused int64 spares an
// allocation per event.
func rowOf(r *consumers.Record, pos *int64) Row {
	e := &r.Event
	row := Row{
		V:                 1,
		ID:                e.ID,
		Type:              e.Type,
		TS:                e.TS.UnixMilli(),
		UserID:            e.UserID,
		SessionID:         e.SessionID,
		ItemID:            e.ItemID,
		App:               e.App,
		Placement:         e.Placement,
		Features:          e.Features,
		Attrs:             e.Attrs,
		featureList:       e.FeatureList,
		attrList:          e.AttrList,
		Host:              e.Host,
		Method:            e.Method,
		URI:               e.URI,
		Route:             e.Route,
		Status:            int32(e.Status),
		Cache:             e.Cache,
		RequestTimeMS:     e.RequestTimeMS,
		Bytes:             e.Bytes,
		UserAgent:         e.UserAgent,
		ReceivedAt:        millisOrZero(e.ReceivedAt),
		ShardID:           r.ShardID,
		SequenceNumber:    r.SequenceNumber,
		SubSequenceNumber: r.SubSequence,
		ArrivalTS:         millisOrZero(r.ArrivalTime),
	}
	if e.Position != nil {
		*pos = int64(*e.Position)
		row.Position = pos
	}
	if len(e.Extra) > 0 {
		// encoding/json sorts map keys and compacts each RawMessage, so the
		// column is deterministic; Extra values were validated as JSON by
		// the decoder, so Marshal cannot fail on them.
		if b, err := json.Marshal(e.Extra); err == nil {
			row.Extra = string(b)
		}
	}
	return row
}

// millisOrZero keeps the zero time as null (0) instead of year-1 millis.
func millisOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
