package jsonbench

import (
	"encoding/json"
	"reflect"
	"syscall"
	"testing"

	"github.com/bytedance/sonic"
	goccy "github.com/goccy/go-json"
	jsoniter "github.com/json-iterator/go"
	segjson "github.com/segmentio/encoding/json"

	"github.com/clickstream-go/clickstream/event"
)

type decoder = func([]byte, *Event) error

func mapDec(u func([]byte, any) error) decoder {
	return func(b []byte, e *Event) error { return DecodeMap(u, b, e) }
}

var chosen event.Event

var candidates = []struct {
	name string
	dec  decoder
}{
	// The implementation in package event (jsontext, tuned), for comparison.
	{"event.Unmarshal", func(b []byte, _ *Event) error { return event.Unmarshal(b, &chosen) }},
	{"std-map", mapDec(json.Unmarshal)},
	{"goccy-map", mapDec(goccy.Unmarshal)},
	{"sonic-map", mapDec(sonic.ConfigStd.Unmarshal)},
	{"segmentio-map", mapDec(segjson.Unmarshal)},
	{"jsoniter-map", mapDec(jsoniter.ConfigCompatibleWithStandardLibrary.Unmarshal)},
	{"jsoniter-iter", DecodeJsoniterIter},
	{"jsontext", DecodeJSONText},
	{"fastjson", DecodeFastJSON},
	{"jsonparser", DecodeJSONParser(false)},
	{"jsonparser+Valid", DecodeJSONParser(true)},
}

var plainCandidates = []struct {
	name string
	u    func([]byte, any) error
}{
	{"std", json.Unmarshal},
	{"goccy", goccy.Unmarshal},
	{"sonic", sonic.ConfigStd.Unmarshal},
	{"sonic-fastest", sonic.ConfigFastest.Unmarshal},
	{"segmentio", segjson.Unmarshal},
	{"jsoniter", jsoniter.ConfigCompatibleWithStandardLibrary.Unmarshal},
}

// TestCandidatesAgree checks every candidate decodes the corpus identically
// (modulo Extra formatting), so the benchmark compares equal work.
func TestCandidatesAgree(t *testing.T) {
	corpus := Corpus(2000)
	for _, c := range candidates[1:] {
		for i, b := range corpus {
			var want, got Event
			if err := DecodeMap(json.Unmarshal, b, &want); err != nil {
				t.Fatal(err)
			}
			if err := c.dec(b, &got); err != nil {
				t.Fatalf("%s: %d: %v", c.name, i, err)
			}
			want.Extra, got.Extra = nil, nil
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("%s: %d:\n%+v\n%+v", c.name, i, want, got)
			}
		}
	}
}

func benchCorpus(b *testing.B, f func([]byte) error) {
	corpus := Corpus(4096)
	n := 0
	for _, c := range corpus {
		n += len(c)
	}
	b.SetBytes(int64(n / len(corpus)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		if err := f(corpus[i%len(corpus)]); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(b.N)/(float64(cpu)/1e9), "events/cpu-s")
}

func BenchmarkFull(b *testing.B) {
	for _, c := range candidates {
		b.Run(c.name, func(b *testing.B) {
			var e Event
			benchCorpus(b, func(d []byte) error { return c.dec(d, &e) })
		})
	}
}

func BenchmarkPlainStruct(b *testing.B) {
	for _, c := range plainCandidates {
		b.Run(c.name, func(b *testing.B) {
			benchCorpus(b, func(d []byte) error { var p Plain; return c.u(d, &p) })
		})
	}
}

// cpuTime is the process's user+system CPU time in ns: on a shared machine it
// measures the work per event even when wall time is inflated by other load.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
