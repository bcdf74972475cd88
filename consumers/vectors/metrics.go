package vectors

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	clicks, impressions prometheus.Counter
	replayed            prometheus.Counter
	writes              *prometheus.CounterVec
	calls               prometheus.Counter
	conflicts           prometheus.Counter
	retries             *prometheus.CounterVec
	writeErrors         prometheus.Counter
	batchErrors         prometheus.Counter
	skipped             *prometheus.CounterVec
	pruned, faded       prometheus.Counter
	saturated           prometheus.Counter
	writeSeconds        prometheus.Histogram
	batchSeconds        prometheus.Histogram
}

// newMetrics creates the processor's metrics and registers them with reg
// (nil: unregistered, i.e. no metrics exported).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "clickstream", "vectors"
	events := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "events_total",
		Help: "Click and impression events applied to user vectors."}, []string{"type"})
	m := &metrics{
		clicks:      events.WithLabelValues("click"),
		impressions: events.WithLabelValues("impression"),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "replayed_events_total",
			Help: "Events skipped because the item's per-shard guard showed them applied (replays)."}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "user_writes_total",
			Help: "Per-user writes by how they were applied: add (one UpdateItem of ADDs), create, rewrite (rebase/prune), noop (replay)."}, []string{"kind"}),
		calls: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "dynamodb_calls_total",
			Help: "DynamoDB calls (UpdateItem and GetItem) including retries and failed conditions."}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "condition_failures_total",
			Help: "Conditional writes that failed (new user, replay overlap, landmark change, cap reached, concurrent writer)."}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "retries_total",
			Help: "DynamoDB calls retried after throttling or transient errors."}, []string{"reason"}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "write_errors_total",
			Help: "Per-user writes that failed (the batch is retried)."}),
		batchErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "batch_errors_total",
			Help: "Batches returned with an error."}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "features_skipped_total",
			Help: "Features left out of vectors: empty_name, name_too_long, weight_out_of_range."}, []string{"reason"}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "features_pruned_total",
			Help: "Features removed because a user reached MaxFeatures (weakest first)."}),
		faded: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "features_faded_total",
			Help: "Features removed because they decayed below the 1e-20 resolution."}),
		saturated: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "values_saturated_total",
			Help: "Values clamped at the 1e18 fixed-point limit."}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "user_write_seconds",
			Help: "Time to apply one user's events of a batch, retries included.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "batch_seconds",
			Help: "Time to process one batch (all users' writes).", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{events, m.replayed, m.writes, m.calls, m.conflicts, m.retries, m.writeErrors,
		m.batchErrors, m.skipped, m.pruned, m.faded, m.saturated, m.writeSeconds, m.batchSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
