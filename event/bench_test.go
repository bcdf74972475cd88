package event

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// benchCorpus returns n realistic v1 events, 336 bytes on average: 45%
// impressions, 10% clicks (both with 4 features and 3 attrs), 45% access logs
// (half with a user), 5% with an unknown field. event/jsonbench has a copy.
func benchCorpus(n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixMilli()
	routes := []string{"/api/items/:id", "/api/feed", "/api/users/:id/profile", "/api/search", "/static/*"}
	agents := []string{
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
		"okhttp/4.12.0",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
	}
	caches := []string{"HIT", "HIT", "HIT", "MISS", "EXPIRED", "-", "STALE"}
	out := make([][]byte, n)
	for i := range out {
		ts := base + int64(i)*7
		id := fmt.Sprintf("01JD3%021d", i)
		var m map[string]any
		switch k := r.IntN(100); {
		case k < 55:
			typ := "impression"
			if k < 10 {
				typ = "click"
			}
			m = map[string]any{
				"v": 1, "id": id, "type": typ,
				"ts":         time.UnixMilli(ts).UTC().Format("2006-01-02T15:04:05.000Z07:00"),
				"user_id":    fmt.Sprintf("u-%d", r.IntN(100000)),
				"session_id": fmt.Sprintf("s-%d", r.IntN(1000000)),
				"item_id":    fmt.Sprintf("a-%d", r.IntN(50000)),
				"app":        []string{"ios", "android", "web"}[r.IntN(3)],
				"placement":  []string{"home_feed", "search", "related"}[r.IntN(3)],
				"position":   r.IntN(30),
				"features": map[string]float64{
					"cat:sports": 1, "tag:soccer": 0.5, fmt.Sprintf("brand:%d", r.IntN(200)): 0.25, fmt.Sprintf("price:%d", r.IntN(9)): 0.125,
				},
				"attrs": map[string]string{"ab_bucket": "B", "locale": "en-GB", "os_version": "18.1"},
			}
		default:
			m = map[string]any{
				"v": 1, "type": "access", "ts": ts, "id": id, "host": fmt.Sprintf("api-%d", r.IntN(8)),
				"method": "GET", "uri": fmt.Sprintf("/api/items/%d?x=1", r.IntN(100000)),
				"route": routes[r.IntN(len(routes))], "status": []int{200, 200, 200, 304, 404, 500}[r.IntN(6)],
				"cache": caches[r.IntN(len(caches))], "request_time_ms": float64(r.IntN(20000)) / 100,
				"bytes": r.IntN(100000), "user_agent": agents[r.IntN(len(agents))],
			}
			if r.IntN(2) == 0 {
				m["user_id"] = fmt.Sprintf("u-%d", r.IntN(100000))
			}
		}
		if r.IntN(20) == 0 {
			m["x_debug"] = map[string]any{"trace": "abc", "n": []int{1, 2, 3}}
		}
		b, err := json.Marshal(m)
		if err != nil {
			panic(err)
		}
		out[i] = b
	}
	return out
}

// runCorpus runs f over the corpus, reporting MB/s, allocs/event, events/s
// and CPU ns/event (ns/op is wall ns/event).
func runCorpus(b *testing.B, corpus [][]byte, f func([]byte) error) {
	n := 0
	for _, c := range corpus {
		n += len(c)
	}
	b.SetBytes(int64(n / len(corpus)))
	b.ReportAllocs()
	i := 0
	cpu := processCPU()
	for b.Loop() {
		if err := f(corpus[i%len(corpus)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportRates(b, cpu)
}

// reportRates adds events/s (wall) and cpu-ns/event; with -cpu 1 the latter
// is the cost on one core, GC included, whatever else runs on the machine.
func reportRates(b *testing.B, cpuStart int64) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if cpu := processCPU() - cpuStart; cpu > 0 {
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/event")
	}
}

// BenchmarkDecode is Decode (Unmarshal + Validate) over the realistic mix.
func BenchmarkDecode(b *testing.B) {
	runCorpus(b, benchCorpus(4096), func(d []byte) error {
		_, err := Decode(d)
		return err
	})
}

// BenchmarkUnmarshal reuses one Event, as a consumer loop can.
func BenchmarkUnmarshal(b *testing.B) {
	var e Event
	runCorpus(b, benchCorpus(4096), func(d []byte) error { return Unmarshal(d, &e) })
}

func BenchmarkAppendJSON(b *testing.B) {
	corpus := benchCorpus(4096)
	events := make([]Event, len(corpus))
	n := 0
	for i, c := range corpus {
		if err := Unmarshal(c, &events[i]); err != nil {
			b.Fatal(err)
		}
		n += len(c)
	}
	b.SetBytes(int64(n / len(corpus)))
	b.ReportAllocs()
	buf := make([]byte, 0, 1024)
	i := 0
	cpu := processCPU()
	for b.Loop() {
		buf = events[i%len(events)].AppendJSON(buf[:0])
		i++
	}
	reportRates(b, cpu)
}

// BenchmarkDecodeBaselineEncodingJSON decodes the same corpus with
// encoding/json into a plain struct (no unknown fields, no null or type
// rules): the reference point for BenchmarkDecode on whatever machine runs it.
func BenchmarkDecodeBaselineEncodingJSON(b *testing.B) {
	type plain struct {
		V             int                `json:"v"`
		ID            string             `json:"id"`
		Type          string             `json:"type"`
		TS            json.RawMessage    `json:"ts"`
		UserID        string             `json:"user_id"`
		SessionID     string             `json:"session_id"`
		ItemID        string             `json:"item_id"`
		App           string             `json:"app"`
		Placement     string             `json:"placement"`
		Position      *int               `json:"position"`
		Features      map[string]float64 `json:"features"`
		Attrs         map[string]string  `json:"attrs"`
		Host          string             `json:"host"`
		Method        string             `json:"method"`
		URI           string             `json:"uri"`
		Route         string             `json:"route"`
		Status        int                `json:"status"`
		Cache         string             `json:"cache"`
		RequestTimeMS *float64           `json:"request_time_ms"`
		Bytes         *int64             `json:"bytes"`
		UserAgent     string             `json:"user_agent"`
		ReceivedAt    json.RawMessage    `json:"received_at"`
	}
	runCorpus(b, benchCorpus(4096), func(d []byte) error {
		var p plain
		return json.Unmarshal(d, &p)
	})
}

// BenchmarkDecodeWithMaps is Decode with each event's maps recycled once
// it is done, as the consumers' runtime does a batch at a time.
func BenchmarkDecodeWithMaps(b *testing.B) {
	var maps Maps
	var e Event
	runCorpus(b, benchCorpus(4096), func(d []byte) error {
		err := DecodeWith(d, &e, &maps)
		maps.Recycle(&e)
		return err
	})
}

// BenchmarkDecodeShared is DecodeShared into one reused Event: the
// baseline of BenchmarkDecodeWithMaps.
func BenchmarkDecodeShared(b *testing.B) {
	var e Event
	runCorpus(b, benchCorpus(4096), func(d []byte) error { return DecodeShared(d, &e) })
}

// BenchmarkDecodeLists is DecodeLists with the lists reset every 500
// events, as the consumers' runtime does a batch at a time: against
// BenchmarkDecodeWithMaps, the cost of filling maps.
func BenchmarkDecodeLists(b *testing.B) {
	var lists Lists
	var e Event
	n := 0
	runCorpus(b, benchCorpus(4096), func(d []byte) error {
		if n++; n%500 == 0 {
			lists.Reset()
		}
		return DecodeLists(d, &e, &lists)
	})
}
