package jsonbench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// Corpus returns n realistic v1 events (~350 bytes on average): 45% impressions,
// 10% clicks, 45% access logs; 5% carry an unknown field.
func Corpus(n int) [][]byte {
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
