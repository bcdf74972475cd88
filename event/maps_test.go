package event

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// mapPtr is a map's identity.
func mapPtr(m any) uintptr { return reflect.ValueOf(m).Pointer() }

// DecodeWith decodes every record as DecodeShared does while its maps come
// back recycled, emptied, event after event: the realistic corpus and the
// edge cases of maps (empty, null, duplicate keys, escapes that take the
// slow path, a map too large to keep, an invalid record after its map was
// taken).
func TestDecodeWith_IsDecodeSharedWithRecycledMaps(t *testing.T) {
	many := make([]string, 40)
	for i := range many {
		many[i] = fmt.Sprintf(`"f%d":%d`, i, i)
	}
	edge := []string{
		`{"v":1,"id":"a","type":"impression","ts":1,"user_id":"u","features":{"x":1,"y":2},"attrs":{"k":"v"}}`,
		`{"v":1,"id":"b","type":"impression","ts":1,"user_id":"u","features":{},"attrs":{}}`,
		`{"v":1,"id":"c","type":"impression","ts":1,"user_id":"u","features":null,"attrs":null}`,
		`{"v":1,"id":"d","type":"impression","ts":1,"user_id":"u","features":{"x":1,"x":3},"attrs":{"k":"a","k":"b"}}`,
		`{"v":1,"id":"e","type":"impression","ts":1,"user_id":"u","features":{"\u0078":5},"attrs":{"k\n":"v\u00e9"}}`,
		`{"v":1,"id":"f","type":"impression","ts":1,"user_id":"u","features":{` + strings.Join(many, ",") + `}}`,
		`{"v":1,"id":"g","type":"impression","ts":1,"user_id":"u","features":{"x":1,"y":"not a number"}}`,
		`{"v":1,"id":"h","type":"impression","ts":1,"user_id":"u","attrs":{"k":"v"},"features":{"x":1},"bad`,
		`{"v":1,"id":"i","type":"click","ts":1,"features":{"x":1}}`,
		`{"v":1,"id":"j","type":"access","ts":1,"uri":"/"}`,
	}
	records := benchCorpus(2000)
	for _, s := range edge {
		records = append(records, []byte(s))
	}
	records = append(records, benchCorpus(200)...)
	var maps Maps
	var got Event
	reused := 0
	seen := map[uintptr]bool{}
	for i, data := range records {
		var want Event
		wantErr := DecodeShared(data, &want)
		gotErr := DecodeWith(data, &got, &maps)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
			t.Fatalf("record %d %s:\n DecodeWith   %+v, %v\n DecodeShared %+v, %v", i, data, got, gotErr, want, wantErr)
		}
		for _, m := range []any{got.Features, got.Attrs} {
			if reflect.ValueOf(m).IsNil() {
				continue
			}
			if seen[mapPtr(m)] {
				reused++
			}
			seen[mapPtr(m)] = true
		}
		big := len(got.Features) > maxKeptEntries
		f := got.Features
		maps.Recycle(&got)
		if got.Features != nil || got.Attrs != nil {
			t.Fatalf("record %d: Recycle left the event its maps", i)
		}
		if f != nil && len(f) != 0 && !big {
			t.Fatalf("record %d: a recycled map keeps %d entries", i, len(f))
		}
		if big {
			for _, kept := range maps.features {
				if mapPtr(kept) == mapPtr(f) {
					t.Fatalf("record %d: a map of %d entries is kept", i, len(f))
				}
			}
		}
	}
	if reused < len(records)/2 {
		t.Errorf("maps reused %d times over %d records", reused, len(records))
	}
}

// An event's maps are never another's: maps lent by one Maps go to one
// event at a time until recycled.
func TestMaps_LendEachMapOnce(t *testing.T) {
	var maps Maps
	a, b := Event{Features: map[string]float64{"x": 1}}, Event{Features: map[string]float64{"y": 1}}
	maps.Recycle(&a)
	maps.Recycle(&b)
	data := []byte(`{"v":1,"id":"a","type":"impression","ts":1,"user_id":"u","features":{"z":1}}`)
	var e1, e2, e3 Event
	for _, e := range []*Event{&e1, &e2, &e3} {
		if err := DecodeWith(data, e, &maps); err != nil {
			t.Fatal(err)
		}
	}
	if p1, p2, p3 := mapPtr(e1.Features), mapPtr(e2.Features), mapPtr(e3.Features); p1 == p2 || p2 == p3 || p1 == p3 {
		t.Fatalf("events share maps: %x %x %x", p1, p2, p3)
	}
	if len(maps.features) != 0 {
		t.Fatalf("%d maps left after lending two and making one", len(maps.features))
	}
}
