package event

import (
	"math"
	"slices"
	"strconv"
	"time"
)

// Validate checks the contract rules that types alone do not: v absent or 1;
// type non-empty; ts set (and within years 0000-9999, as is received_at);
// user_id set for click and impression; user_id and id at most
// MaxUserIDBytes; position >= 0; status 0 or 100..599; request_time_ms and
// bytes >= 0; request_time_ms and feature values finite. Unknown types and
// unknown fields are valid. The error is an *Error naming the first offending
// field in that order.
func (e *Event) Validate() error {
	return e.validate(false)
}

// validate skips, when decoded is true, the checks Unmarshal already
// guarantees (finite numbers, times within years 0000-9999): Decode saves a
// map walk per event.
func (e *Event) validate(decoded bool) error {
	if e.V != 0 && e.V != Version {
		return &Error{"v", "unsupported version " + strconv.Itoa(e.V) + ", want 1"}
	}
	if e.Type == "" {
		return &Error{"type", "required"}
	}
	if e.TS.IsZero() {
		return &Error{"ts", "required"}
	}
	if !decoded {
		if err := checkTime("ts", e.TS); err != nil {
			return err
		}
	}
	if e.UserID == "" && (e.Type == TypeClick || e.Type == TypeImpression) {
		return &Error{"user_id", "required for type " + e.Type}
	}
	if len(e.UserID) > MaxUserIDBytes {
		return &Error{"user_id", "must be at most 256 bytes (the Kinesis partition-key limit), got " + strconv.Itoa(len(e.UserID))}
	}
	if len(e.ID) > MaxUserIDBytes {
		return &Error{"id", "must be at most 256 bytes (it can be the Kinesis partition key), got " + strconv.Itoa(len(e.ID))}
	}
	if e.Position != nil && *e.Position < 0 {
		return &Error{"position", "must be >= 0, got " + strconv.Itoa(*e.Position)}
	}
	if e.Status != 0 && (e.Status < 100 || e.Status > 599) {
		return &Error{"status", "must be 100..599 (or absent), got " + strconv.Itoa(e.Status)}
	}
	if e.RequestTimeMS != nil { // NaN and +Inf are possible only in events made in Go
		if f := *e.RequestTimeMS; !(f >= 0) || math.IsInf(f, 1) {
			return &Error{"request_time_ms", "must be a finite number >= 0, got " + strconv.FormatFloat(f, 'g', -1, 64)}
		}
	}
	if e.Bytes != nil && *e.Bytes < 0 {
		return &Error{"bytes", "must be >= 0, got " + strconv.FormatInt(*e.Bytes, 10)}
	}
	if decoded {
		return nil
	}
	if err := checkFeatures(e.Features); err != nil {
		return err
	}
	if err := checkLists(e); err != nil {
		return err
	}
	if !e.ReceivedAt.IsZero() {
		if err := checkTime("received_at", e.ReceivedAt); err != nil {
			return err
		}
	}
	return nil
}

func checkTime(field string, t time.Time) error {
	if t.Before(minTime) || t.After(maxTime) {
		return &Error{field, "out of range (years 0000-9999), got year " + strconv.Itoa(t.UTC().Year())}
	}
	return nil
}

// checkFeatures reports the smallest offending name, so the message does not
// depend on map iteration order.
func checkFeatures(m map[string]float64) error {
	var bad []string
	for k, f := range m {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	k := slices.Min(bad)
	return &Error{"features", "value of " + strconv.Quote(clip(k)) + " must be finite, got " + strconv.FormatFloat(m[k], 'g', -1, 64)}
}

// checkLists checks an event's FeatureList and AttrList: each instead of
// its map, in strictly increasing name order, feature values finite.
func checkLists(e *Event) error {
	if len(e.FeatureList) > 0 && len(e.Features) > 0 {
		return &Error{"features", "set both as a map and as a list"}
	}
	if len(e.AttrList) > 0 && len(e.Attrs) > 0 {
		return &Error{"attrs", "set both as a map and as a list"}
	}
	for i, f := range e.FeatureList {
		if i > 0 && f.Name <= e.FeatureList[i-1].Name {
			return &Error{"features", "list not in strictly increasing name order at " + strconv.Quote(clip(f.Name))}
		}
		if math.IsNaN(f.Value) || math.IsInf(f.Value, 0) {
			return &Error{"features", "value of " + strconv.Quote(clip(f.Name)) + " must be finite, got " + strconv.FormatFloat(f.Value, 'g', -1, 64)}
		}
	}
	for i, a := range e.AttrList {
		if i > 0 && a.Name <= e.AttrList[i-1].Name {
			return &Error{"attrs", "list not in strictly increasing name order at " + strconv.Quote(clip(a.Name))}
		}
	}
	return nil
}

// DefaultMaxFuture is how far an event's ts may be ahead of when it reached
// the pipeline (the collector's receipt, Kinesis's arrival time). Beyond it
// the device clock is wrong, and the event would open archive partitions and
// metric windows years ahead.
const DefaultMaxFuture = 24 * time.Hour

// CheckFuture returns an *Error on ts when the event is more than max after
// ref, the time it reached the pipeline; max <= 0 or a zero ref checks
// nothing. Judged against ref rather than the clock, the same record gets
// the same answer when it is read again.
func (e *Event) CheckFuture(ref time.Time, max time.Duration) error {
	if max <= 0 || ref.IsZero() || !e.TS.After(ref.Add(max)) {
		return nil
	}
	ahead := e.TS.Sub(ref).Round(time.Second)
	return &Error{"ts", e.TS.UTC().Format(time.RFC3339) + " is " + ahead.String() + " after the event reached the pipeline (" +
		ref.UTC().Format(time.RFC3339) + "), more than the " + max.String() + " allowed: the sender's clock is wrong"}
}
