package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
)

// Partition is one Hive partition of the archive: an event type and an hour
// of event time (UTC).
type Partition struct {
	Type string
	// Hour is the start of the event-time hour, in UTC.
	Hour time.Time
}

// PartitionOf returns the partition of an event of type typ at event time ts.
func PartitionOf(typ string, ts time.Time) Partition {
	return Partition{Type: typ, Hour: ts.UTC().Truncate(time.Hour)}
}

// Date renders the partition's dt value, YYYY-MM-DD.
func (p Partition) Date() string {
	y, m, d := p.Hour.Date()
	return fmt.Sprintf("%04d-%02d-%02d", y, int(m), d)
}

// HourString renders the partition's hour value, HH.
func (p Partition) HourString() string { return fmt.Sprintf("%02d", p.Hour.Hour()) }

// Dir returns the partition's key prefix under prefix:
// PREFIX/events/type=T/dt=YYYY-MM-DD/hour=HH/ (docs/DESIGN.md §4.1).
func (p Partition) Dir(prefix string) string {
	return normPrefix(prefix) + "events/type=" + EscapePartitionValue(p.Type) +
		"/dt=" + p.Date() + "/hour=" + p.HourString() + "/"
}

// ObjectKey names the object of partition p that holds shard's records
// from first to last (inclusive): PARTITION_DIR/SHARD_FIRSTSEQ-SUB_LASTSEQ-SUB.parquet.
// The name depends only on the records the object holds, so re-archiving the
// same records (a replay after a crash) overwrites the same object.
func ObjectKey(prefix string, p Partition, shardID string, first, last consumers.Position) string {
	var b strings.Builder
	b.Grow(len(prefix) + 80 + len(shardID) + len(first.SequenceNumber) + len(last.SequenceNumber))
	b.WriteString(p.Dir(prefix))
	b.WriteString(EscapePartitionValue(shardID))
	b.WriteByte('_')
	writePos(&b, first)
	b.WriteByte('_')
	writePos(&b, last)
	b.WriteString(objectExt)
	return b.String()
}

const objectExt = ".parquet"

func writePos(b *strings.Builder, p consumers.Position) {
	b.WriteString(p.SequenceNumber)
	b.WriteByte('-')
	b.WriteString(strconv.FormatInt(p.SubSequence, 10))
}

// normPrefix turns a user prefix ("", "a", "/a/b/") into "" or "a/b/".
func normPrefix(prefix string) string {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return ""
	}
	return prefix + "/"
}

// maxEscapedValue bounds an escaped partition value. Event types are free
// text (unknown types are archived as-is) and S3 keys are at most 1024 bytes;
// a longer value is cut and suffixed with a hash of the full value, so
// distinct types stay distinct. The type column inside the files always
// holds the exact value.
const maxEscapedValue = 128

// EscapePartitionValue makes s safe as a Hive partition value and S3 key
// segment: bytes outside [A-Za-z0-9._-] become %XX (upper-case hex), which is
// what Hive, Spark and Athena unescape; an empty value becomes
// __HIVE_DEFAULT_PARTITION__ as in Hive.
func EscapePartitionValue(s string) string {
	if s == "" {
		return "__HIVE_DEFAULT_PARTITION__"
	}
	safe := true
	for i := 0; i < len(s); i++ {
		if !isSafe(s[i]) {
			safe = false
			break
		}
	}
	out := s
	if !safe {
		const hexdigits = "0123456789ABCDEF"
		var b strings.Builder
		b.Grow(len(s) + 8)
		for i := 0; i < len(s); i++ {
			c := s[i]
			if isSafe(c) {
				b.WriteByte(c)
				continue
			}
			b.WriteByte('%')
			b.WriteByte(hexdigits[c>>4])
			b.WriteByte(hexdigits[c&15])
		}
		out = b.String()
	}
	if len(out) > maxEscapedValue {
		sum := sha256.Sum256([]byte(s))
		cut := maxEscapedValue - 17
		// Do not cut an escape sequence in half.
		if i := strings.LastIndexByte(out[:cut], '%'); i >= cut-2 {
			cut = i
		}
		out = out[:cut] + "~" + hex.EncodeToString(sum[:8])
	}
	return out
}

func isSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// UnescapePartitionValue reverses EscapePartitionValue (except for cut long
// values, which stay cut).
func UnescapePartitionValue(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ObjectInfo is what an archive object key says about the object.
type ObjectInfo struct {
	Key string
	// Type is the (unescaped) type partition value, Date YYYY-MM-DD, Hour HH.
	Type, Date, Hour string
	ShardID          string
	First, Last      consumers.Position
}

// PartitionPath is the partition's path below PREFIX/events/:
// type=T/dt=D/hour=H.
func (o ObjectInfo) PartitionPath() string {
	return "type=" + EscapePartitionValue(o.Type) + "/dt=" + o.Date + "/hour=" + o.Hour
}

var errNotArchiveKey = errors.New("not an archive object key")

// ParseObjectKey parses a key written by ObjectKey under prefix.
func ParseObjectKey(prefix, key string) (ObjectInfo, error) {
	info := ObjectInfo{Key: key}
	rest, ok := strings.CutPrefix(key, normPrefix(prefix)+"events/")
	if !ok {
		return info, fmt.Errorf("parse %q: %w", key, errNotArchiveKey)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 {
		return info, fmt.Errorf("parse %q: %w: want type=/dt=/hour=/NAME", key, errNotArchiveKey)
	}
	var typ, dt, hour string
	if typ, ok = strings.CutPrefix(parts[0], "type="); !ok {
		return info, fmt.Errorf("parse %q: %w: no type=", key, errNotArchiveKey)
	}
	if dt, ok = strings.CutPrefix(parts[1], "dt="); !ok {
		return info, fmt.Errorf("parse %q: %w: no dt=", key, errNotArchiveKey)
	}
	if hour, ok = strings.CutPrefix(parts[2], "hour="); !ok {
		return info, fmt.Errorf("parse %q: %w: no hour=", key, errNotArchiveKey)
	}
	info.Type, info.Date, info.Hour = UnescapePartitionValue(typ), dt, hour
	name, ok := strings.CutSuffix(parts[3], objectExt)
	if !ok {
		return info, fmt.Errorf("parse %q: %w: not .parquet", key, errNotArchiveKey)
	}
	f := strings.Split(name, "_")
	if len(f) != 3 {
		return info, fmt.Errorf("parse %q: %w: name is not SHARD_FIRST_LAST", key, errNotArchiveKey)
	}
	var err error
	if info.First, err = parsePos(f[1]); err != nil {
		return info, fmt.Errorf("parse %q: %w", key, err)
	}
	if info.Last, err = parsePos(f[2]); err != nil {
		return info, fmt.Errorf("parse %q: %w", key, err)
	}
	info.ShardID = UnescapePartitionValue(f[0])
	return info, nil
}

func parsePos(s string) (consumers.Position, error) {
	seq, sub, ok := strings.Cut(s, "-")
	if !ok || seq == "" || strings.Trim(seq, "0123456789") != "" {
		return consumers.Position{}, fmt.Errorf("%w: bad position %q", errNotArchiveKey, s)
	}
	n, err := strconv.ParseInt(sub, 10, 64)
	if err != nil || n < 0 {
		return consumers.Position{}, fmt.Errorf("%w: bad sub-sequence in %q", errNotArchiveKey, s)
	}
	return consumers.Position{SequenceNumber: seq, SubSequence: n}, nil
}
