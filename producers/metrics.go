package producers

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the producer's Prometheus collectors. They always exist, so
// the code never checks for nil; they are registered only when the caller
// passes a Registerer.
type metrics struct {
	recordsSent        prometheus.Counter
	bytesSent          prometheus.Counter
	kinesisRecordsSent prometheus.Counter
	requests           *prometheus.CounterVec // by outcome
	retries            *prometheus.CounterVec // user records, by reason
	failures           *prometheus.CounterVec // user records, by reason
	shardMapRefreshes  prometheus.Counter
	requestEntries     prometheus.Histogram
	aggregateRecords   prometheus.Histogram
	requestDuration    prometheus.Histogram
}

func newMetrics(stream string) *metrics {
	labels := prometheus.Labels{"stream": stream}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "clickstream", Subsystem: "producer", Name: name, Help: help, ConstLabels: labels}
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts(opts(name, help)))
	}
	return &metrics{
		recordsSent:        counter("records_sent_total", "User records acknowledged by Kinesis."),
		bytesSent:          counter("bytes_sent_total", "Data bytes of the user records acknowledged by Kinesis."),
		kinesisRecordsSent: counter("kinesis_records_sent_total", "Kinesis records (aggregates or single user records) acknowledged by Kinesis."),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts(opts("requests_total",
			"PutRecords calls by outcome: ok, partial (some records failed), error (the whole call failed).")), []string{"outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts(opts("retries_total",
			"User records sent again after a failed attempt, by reason: throttled or error.")), []string{"reason"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts(opts("failures_total",
			"User records that finally failed, by reason: expired, rejected (permanent error) or closed.")), []string{"reason"}),
		shardMapRefreshes: counter("shard_map_refreshes_total", "Shard maps read with ListShards."),
		requestEntries: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "clickstream", Subsystem: "producer",
			Name: "request_records", Help: "Kinesis records per PutRecords call.", ConstLabels: labels,
			Buckets: []float64{1, 2, 5, 10, 25, 50, 100, 250, 500}}),
		aggregateRecords: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "clickstream", Subsystem: "producer",
			Name: "aggregate_records", Help: "User records per aggregated Kinesis record.", ConstLabels: labels,
			Buckets: prometheus.ExponentialBuckets(2, 2, 13)}),
		requestDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "clickstream", Subsystem: "producer",
			Name: "request_duration_seconds", Help: "PutRecords call latency, SDK retries included.", ConstLabels: labels,
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
	}
}

// register registers the collectors and the buffer gauges, which read p,
// and returns a func that unregisters them all.
func (m *metrics) register(r prometheus.Registerer, stream string, p *Producer) (func(), error) {
	labels := prometheus.Labels{"stream": stream}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "clickstream", Subsystem: "producer",
			Name: name, Help: help, ConstLabels: labels}, f)
	}
	cs := []prometheus.Collector{
		m.recordsSent, m.bytesSent, m.kinesisRecordsSent, m.requests, m.retries, m.failures,
		m.shardMapRefreshes, m.requestEntries, m.aggregateRecords, m.requestDuration,
		gauge("buffered_records", "User records accepted by Put and not yet acknowledged or failed.",
			func() float64 { return float64(p.Stats().BufferedRecords) }),
		gauge("buffered_bytes", "Bytes of the buffered user records.",
			func() float64 { return float64(p.Stats().BufferedBytes) }),
		gauge("buffer_fill_ratio", "Buffer fill: the larger of buffered records and bytes over their limits.",
			func() float64 {
				s := p.Stats()
				return max(float64(s.BufferedRecords)/float64(p.cfg.maxBufferedRecords), float64(s.BufferedBytes)/float64(p.cfg.maxBufferedBytes))
			}),
	}
	var registered []prometheus.Collector
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			for _, done := range registered {
				r.Unregister(done)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register metrics: a producer for stream %s is already registered: %w", stream, err)
			}
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		registered = append(registered, c)
	}
	return func() {
		for _, c := range registered {
			r.Unregister(c)
		}
	}, nil
}
