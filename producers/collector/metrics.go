package collector

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests  *prometheus.CounterVec // by code
	events    *prometheus.CounterVec // by result: accepted, rejected
	bodyBytes prometheus.Histogram
	latency   prometheus.Histogram
	inFlight  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clickstream", Subsystem: "collector", Name: "requests_total",
			Help: "POST /v1/events requests by HTTP status code.",
		}, []string{"code"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clickstream", Subsystem: "collector", Name: "events_total",
			Help: "Events received, by result: accepted (handed to the producer) or rejected (invalid, reported to the client).",
		}, []string{"result"}),
		bodyBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "clickstream", Subsystem: "collector", Name: "request_body_bytes",
			Help:    "Size of POST /v1/events bodies after decompression.",
			Buckets: prometheus.ExponentialBuckets(256, 4, 8), // 256 B … 4 MiB
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "clickstream", Subsystem: "collector", Name: "request_duration_seconds",
			Help:    "Time to handle a POST /v1/events request, from headers read to response written.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms … 4 s
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "clickstream", Subsystem: "collector", Name: "in_flight_requests",
			Help: "POST /v1/events requests being handled.",
		}),
	}
	m.events.WithLabelValues("accepted")
	m.events.WithLabelValues("rejected")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.events, m.bodyBytes, m.latency, m.inFlight} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
