package event

import (
	"bytes"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// asLists is e with its maps turned into lists in name order: what
// DecodeLists gives for the record DecodeShared gave e for.
func asLists(e Event) Event {
	for _, name := range slices.Sorted(maps.Keys(e.Features)) {
		e.FeatureList = append(e.FeatureList, Feature{name, e.Features[name]})
	}
	for _, name := range slices.Sorted(maps.Keys(e.Attrs)) {
		e.AttrList = append(e.AttrList, Attr{name, e.Attrs[name]})
	}
	e.Features, e.Attrs = nil, nil
	return e
}

// decoded is an event DecodeLists gave, and copies of its lists then.
type decoded struct {
	e Event
	f []Feature
	a []Attr
}

// checkListsAgree: DecodeLists gives what DecodeShared gives, its maps as
// lists, and the same verdict; the lists of events decoded before into
// the same Lists stay as they were.
func checkListsAgree(t *testing.T, l *Lists, before []decoded, data []byte) decoded {
	t.Helper()
	var want, got Event
	wantErr := DecodeShared(data, &want)
	gotErr := DecodeLists(data, &got, l)
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("%q: error %v, DecodeShared says %v", data, gotErr, wantErr)
	}
	w := asLists(want)
	if gotErr != nil {
		// What an event holds after an error is what was decoded before
		// it, for the dead-letter entry: a list is made only once its
		// object is read whole.
		got.FeatureList, got.AttrList, w.FeatureList, w.AttrList = nil, nil, nil, nil
	}
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("%q:\n got %+v\nwant %+v", data, got, w)
	}
	for _, b := range before {
		if !slices.Equal(b.e.FeatureList, b.f) || !slices.Equal(b.e.AttrList, b.a) {
			t.Fatalf("%q: an earlier event's lists changed: %+v, were %+v %+v", data, b.e, b.f, b.a)
		}
	}
	return decoded{got, slices.Clone(got.FeatureList), slices.Clone(got.AttrList)}
}

func TestDecodeLists_AgreesWithMaps(t *testing.T) {
	var l Lists
	var before []decoded
	inputs := append(fastSeeds(), fuzzSeeds()...)
	inputs = append(inputs,
		`{"type":"x","ts":1,"features":{"b":2,"a":1,"b":3,"c":0,"a":-1}}`,         // out of order, repeated
		`{"type":"x","ts":1,"attrs":{"z":"1","y":"2","z":"3"},"attrs":{"k":"v"}}`, // a repeated object
		`{"type":"x","ts":1,"features":{"a":1,"b":2},"uri":"/\u00e9"}`,            // the fast path gives up after the features
		`{"type":"x","ts":1,"features":{"a":1},"features":null,"attrs":{}}`)
	for _, b := range benchCorpus(300) {
		inputs = append(inputs, string(b))
	}
	for i, s := range inputs {
		e := checkListsAgree(t, &l, before, []byte(s))
		before = append(before, e)
		if i%100 == 99 {
			l.Reset()
			before = before[:0]
		}
	}
	// The lists the events hold are theirs: each decode's entries follow
	// the last one's in the lists' memory, never over them.
	var ev [3]Event
	for i, s := range []string{`{"type":"x","ts":1,"features":{"a":1,"b":2}}`, `{"type":"x","ts":1,"features":{"c":3}}`, `{"type":"x","ts":1,"features":{"d":4,"e":5}}`} {
		if err := DecodeLists([]byte(s), &ev[i], &l); err != nil {
			t.Fatal(err)
		}
	}
	if got := [3]int{len(ev[0].FeatureList), len(ev[1].FeatureList), len(ev[2].FeatureList)}; got != [3]int{2, 1, 2} ||
		ev[0].FeatureList[1] != (Feature{"b", 2}) || ev[1].FeatureList[0] != (Feature{"c", 3}) || ev[2].FeatureList[0] != (Feature{"d", 4}) {
		t.Fatalf("lists %+v", ev)
	}
}

// FuzzDecodeListsAgrees: on any input DecodeLists and DecodeShared agree.
//
//	go test -run '^$' -fuzz FuzzDecodeListsAgrees -fuzztime 60s ./event/
func FuzzDecodeListsAgrees(f *testing.F) {
	for _, s := range append(fastSeeds(), fuzzSeeds()...) {
		f.Add([]byte(s))
	}
	var l Lists
	f.Fuzz(func(t *testing.T, data []byte) {
		checkListsAgree(t, &l, nil, data)
		l.Reset()
	})
}

// An event with lists encodes as the same event with maps, and Validate
// holds lists to their contract.
func TestLists_EncodeAndValidate(t *testing.T) {
	for _, b := range benchCorpus(200) {
		e, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		l := asLists(e)
		if got, want := l.AppendJSON(nil), e.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("lists encode as\n%s\nmaps as\n%s", got, want)
		}
		if err := l.Validate(); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	base := Event{Type: "x", TS: time.Unix(1e9, 0)}
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{Event{FeatureList: []Feature{{"b", 1}, {"a", 2}}}, `features: list not in strictly increasing name order at "a"`},
		{Event{FeatureList: []Feature{{"a", 1}, {"a", 2}}}, `features: list not in strictly increasing name order at "a"`},
		{Event{FeatureList: []Feature{{"a", math.NaN()}}}, `features: value of "a" must be finite, got NaN`},
		{Event{FeatureList: []Feature{{"a", 1}}, Features: map[string]float64{"a": 1}}, "features: set both as a map and as a list"},
		{Event{AttrList: []Attr{{"b", ""}, {"a", ""}}}, `attrs: list not in strictly increasing name order at "a"`},
		{Event{AttrList: []Attr{{"a", ""}}, Attrs: map[string]string{"a": ""}}, "attrs: set both as a map and as a list"},
	} {
		e := base
		e.FeatureList, e.AttrList, e.Features, e.Attrs = tc.e.FeatureList, tc.e.AttrList, tc.e.Features, tc.e.Attrs
		if err := e.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.e, err, tc.want)
		}
	}
}

// Lists pin no earlier record's data: their entries' names point into the
// records (DecodeShared), so whatever lies beyond the lists' length, where
// a later, smaller batch does not write, must be cleared, or it would keep
// earlier GetRecords answers alive. Entries are dropped by Reset, by the
// fast path giving up midway (truncate) and by repeated names.
func TestLists_ResetPinsNoEarlierData(t *testing.T) {
	var l Lists
	pinned := func(when string) {
		t.Helper()
		for i, f := range l.features[len(l.features):cap(l.features)] {
			if f != (Feature{}) {
				t.Fatalf("%s: feature %d beyond the length %d still set: %+v", when, len(l.features)+i, len(l.features), f)
			}
		}
		for i, a := range l.attrs[len(l.attrs):cap(l.attrs)] {
			if a != (Attr{}) {
				t.Fatalf("%s: attr %d beyond the length %d still set: %+v", when, len(l.attrs)+i, len(l.attrs), a)
			}
		}
	}
	var e Event
	decode := func(s string) {
		t.Helper()
		e = Event{}
		if err := DecodeLists([]byte(s), &e, &l); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	// A large batch, then a smaller one over the same memory.
	for range 50 {
		decode(`{"type":"x","ts":1,"features":{"a":1,"b":2,"c":3},"attrs":{"k":"v","l":"w"}}`)
	}
	l.Reset()
	pinned("after a batch")
	decode(`{"type":"x","ts":1,"features":{"a":1},"attrs":{"k":"v"}}`)
	pinned("after a smaller batch's event")
	// Repeated names: the entries dropped are cleared.
	decode(`{"type":"x","ts":1,"features":{"b":2,"a":1,"b":3},"attrs":{"z":"1","y":"2","z":"3"}}`)
	if len(e.FeatureList) != 2 || len(e.AttrList) != 2 {
		t.Fatalf("lists %+v %+v", e.FeatureList, e.AttrList)
	}
	pinned("after repeated names")
	// The fast path gives up after the features (an escaped string later):
	// what it appended is dropped before the slow path decodes again.
	decode(`{"type":"x","ts":1,"features":{"a":1,"b":2},"attrs":{"k":"v"},"uri":"/\u00e9"}`)
	pinned("after the fast path gave up")
	mark := l.len()
	decode(`{"type":"x","ts":1,"features":{"a":1},"attrs":{"k":"v"}}`)
	l.truncate(mark)
	pinned("after truncate")
	l.Reset()
	pinned("after the last reset")
}
