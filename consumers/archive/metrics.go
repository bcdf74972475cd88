package archive

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the archive's Prometheus metrics. With a nil Registerer they
// are still counted (tests read them) but not exported.
type metrics struct {
	rows          prometheus.Counter
	objects       prometheus.Counter
	bytes         prometheus.Counter
	flushes       *prometheus.CounterVec
	flushSeconds  prometheus.Histogram
	badRecords    prometheus.Counter
	replayed      prometheus.Counter
	uploadRetries prometheus.Counter
	bufferedBytes prometheus.Gauge
	bufferedRows  prometheus.Gauge
	openShards    prometheus.Gauge
}

// Flush reasons (the reason label of clickstream_archive_flushes_total).
const (
	reasonAge        = "age"
	reasonSize       = "size"
	reasonPartitions = "partitions"
	reasonMemory     = "memory"
	reasonFlush      = "flush" // Flush: shard end, shutdown, end of a Lambda invocation
	reasonRedo       = "redo"  // an interrupted flush, redone after a restart
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "clickstream", "archive"
	m := &metrics{
		rows: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rows_total",
			Help: "Events written to Parquet objects (a redone flush counts again)."}),
		objects: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "objects_total",
			Help: "Parquet objects uploaded."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bytes_total",
			Help: "Bytes of Parquet objects uploaded."}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "flushes_total",
			Help: "Shard flushes by reason: age, size, partitions, memory, flush (shutdown/shard end/Lambda), redo."}, []string{"reason"}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "flush_seconds",
			Help: "Time to encode and upload one shard flush.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}),
		badRecords: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bad_records_total",
			Help: "Bad records seen (the runtime stores them under errors/)."}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "replayed_records_total",
			Help: "Replayed records skipped because they were already archived."}),
		uploadRetries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "upload_retries_total",
			Help: "Object uploads retried after a failed attempt."}),
		bufferedBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "buffered_bytes",
			Help: "Estimated memory of buffered rows (compare with the memory budget)."}),
		bufferedRows: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "buffered_rows",
			Help: "Rows buffered, not yet uploaded."}),
		openShards: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "open_shards",
			Help: "Shards this process is archiving."}),
	}
	for _, r := range []string{reasonAge, reasonSize, reasonPartitions, reasonMemory, reasonFlush, reasonRedo} {
		m.flushes.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.rows, m.objects, m.bytes, m.flushes, m.flushSeconds, m.badRecords,
		m.replayed, m.uploadRetries, m.bufferedBytes, m.bufferedRows, m.openShards} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
