package event_test

import (
	"fmt"
	"time"

	"github.com/clickstream-go/clickstream/event"
)

func ExampleDecode() {
	records := [][]byte{
		[]byte(`{"type":"click","ts":1763805600123,"user_id":"u-42","features":{"cat:sports":1},"x_app_build":"9.1"}`),
		[]byte(`{"type":"click","ts":"2025-11-22T10:00:00Z"}`),
		[]byte(`{"type":"access","ts":true}`),
		[]byte(`{"type":"access","ts":1,`),
	}
	for _, rec := range records {
		e, err := event.Decode(rec)
		if err != nil {
			fmt.Println("bad record:", err) // to the dead-letter location, with the reason
			continue
		}
		fmt.Println(e.Type, e.PartitionKey(), e.TS.Format(time.RFC3339Nano), e.Features, string(e.Extra["x_app_build"]))
	}
	// Output:
	// click u-42 2025-11-22T10:00:00.123Z map[cat:sports:1] "9.1"
	// bad record: user_id: required for type click
	// bad record: ts: must be an RFC 3339 string or epoch milliseconds, got true
	// bad record: invalid JSON: unexpected end of input at offset 24
}

func ExampleEvent_AppendJSON() {
	pos := 3
	e := event.Event{
		ID: "01JD3", Type: event.TypeImpression, UserID: "u-42",
		TS:        time.Date(2025, 11, 22, 11, 0, 0, 123456789, time.FixedZone("CET", 3600)),
		Placement: "home_feed", Position: &pos,
	}
	if err := e.Validate(); err != nil {
		panic(err)
	}
	fmt.Println(string(e.AppendJSON(nil)))
	// Output:
	// {"v":1,"id":"01JD3","type":"impression","ts":"2025-11-22T10:00:00.123Z","user_id":"u-42","placement":"home_feed","position":3}
}

func ExampleClassifyCache() {
	for _, s := range []string{"HIT", "miss", "EXPIRED", "STALE", "-"} {
		fmt.Printf("%q ", event.ClassifyCache(s))
	}
	// Output:
	// "HIT" "MISS" "EXPIRED" "OTHER" ""
}
