package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstream-go/clickstream/producers/spool"
)

type metrics struct {
	requests  *prometheus.CounterVec // by code
	events    *prometheus.CounterVec // by result: accepted, rejected
	bodyBytes prometheus.Histogram
	latency   prometheus.Histogram
	inFlight  prometheus.Gauge
	unacked   *prometheus.CounterVec // by reason: timeout, failed
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
		unacked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clickstream", Subsystem: "collector", Name: "unconfirmed_requests_total",
			Help: "Requests answered 503 after their events were handed over, unconfirmed: timeout (not acknowledged or fsync'd within the ack timeout) or failed. Their events may be on the stream.",
		}, []string{"reason"}),
	}
	m.events.WithLabelValues("accepted")
	m.unacked.WithLabelValues("timeout")
	m.unacked.WithLabelValues("failed")
	m.events.WithLabelValues("rejected")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.events, m.bodyBytes, m.latency, m.inFlight, m.unacked} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// registerSpoolMetrics exposes the spool's counters, read at scrape time.
func registerSpoolMetrics(reg prometheus.Registerer, sp *spool.Spool) error {
	opts := func(name, help string) prometheus.GaugeOpts {
		return prometheus.GaugeOpts{Namespace: "clickstream", Subsystem: "collector_spool", Name: name, Help: help}
	}
	counter := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: "clickstream", Subsystem: "collector_spool", Name: name, Help: help}
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(opts("bytes", "Bytes in the spool's segment files."), func() float64 { return float64(sp.Stats().Bytes) }),
		prometheus.NewGaugeFunc(opts("unshipped_bytes", "Spooled bytes not yet committed as shipped."), func() float64 {
			st := sp.Stats()
			return float64(st.End - st.Committed)
		}),
		prometheus.NewCounterFunc(counter("fsyncs_total", "fsyncs of spooled data; appends_total / fsyncs_total is the group commit factor."), func() float64 { return float64(sp.Stats().Syncs) }),
		prometheus.NewCounterFunc(counter("appends_total", "Requests appended to the spool."), func() float64 { return float64(sp.Stats().Appends) }),
		prometheus.NewCounterFunc(counter("shipped_events_total", "Spooled events acknowledged by the stream."), func() float64 { return float64(sp.Stats().Shipped) }),
		prometheus.NewCounterFunc(counter("retried_events_total", "Spooled events put again after failing on the stream."), func() float64 { return float64(sp.Stats().Retried) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
