package consumers

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the runtime's Prometheus collectors, labelled by application
// so several Runners can share one Registerer. A nil *metrics records nothing.
type metrics struct {
	behind      *prometheus.GaugeVec   // app, shard
	records     *prometheus.CounterVec // app, shard
	bad         *prometheus.CounterVec // app, shard
	outOfRange  *prometheus.CounterVec // app, shard
	duplicates  *prometheus.CounterVec // app, shard
	batches     *prometheus.CounterVec // app, shard
	getErrors   *prometheus.CounterVec // app, kind
	held        *prometheus.GaugeVec   // app
	takes       *prometheus.CounterVec // app, reason
	lost        *prometheus.CounterVec // app
	checkpoints *prometheus.CounterVec // app, result
	deadLetters *prometheus.CounterVec // app, result
	procErrors  *prometheus.CounterVec // app
	subscribes  *prometheus.CounterVec // app
	subErrors   *prometheus.CounterVec // app, kind
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	const ns, sub = "clickstream", "consumer"
	m := &metrics{
		behind: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "millis_behind_latest",
			Help: "MillisBehindLatest of the last GetRecords answer or fan-out event per shard."}, []string{"app", "shard"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "records_total",
			Help: "User records handed to the processor (after de-aggregation) per shard."}, []string{"app", "shard"}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bad_records_total",
			Help: "Bad records (undecodable, invalid, corrupt aggregates) per shard."}, []string{"app", "shard"}),
		outOfRange: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "out_of_range_records_total",
			Help: "Aggregated sub-records whose hash key is outside their shard's range (processed anyway)."}, []string{"app", "shard"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "duplicate_events_total",
			Help: "Events dropped as copies of an event id already handed on the shard (a retried PutRecords)."}, []string{"app", "shard"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "get_records_total",
			Help: "Successful GetRecords calls per shard."}, []string{"app", "shard"}),
		getErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "get_records_errors_total",
			Help: "Failed GetRecords/GetShardIterator calls by kind (throttled, expired_iterator, other)."}, []string{"app", "kind"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "leases_held",
			Help: "Shard leases this process holds."}, []string{"app"}),
		takes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "lease_takes_total",
			Help: "Leases taken by reason (free, expired, own, steal)."}, []string{"app", "reason"}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "leases_lost_total",
			Help: "Leases lost to another process or to failed renewals."}, []string{"app"}),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "checkpoint_writes_total",
			Help: "Checkpoint writes by result (ok, error, lease_lost)."}, []string{"app", "result"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "dead_letter_writes_total",
			Help: "Dead-letter Put calls by result (ok, error)."}, []string{"app", "result"}),
		procErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "processor_errors_total",
			Help: "Errors returned by the processor (OpenShard, Process, Flush); the shard replays from its checkpoint."}, []string{"app"}),
		subscribes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "subscriptions_total",
			Help: "Enhanced fan-out subscriptions opened (SubscribeToShard); each lasts up to 5 minutes."}, []string{"app"}),
		subErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "subscribe_errors_total",
			Help: "Failed or broken enhanced fan-out subscriptions by kind (in_use, limit, not_found, throttled, other)."}, []string{"app", "kind"}),
	}
	var err error
	register := func(c prometheus.Collector) prometheus.Collector {
		if rerr := reg.Register(c); rerr != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(rerr, &are) {
				return are.ExistingCollector // another Runner on the same registry
			}
			err = errors.Join(err, rerr)
		}
		return c
	}
	m.behind = register(m.behind).(*prometheus.GaugeVec)
	m.records = register(m.records).(*prometheus.CounterVec)
	m.bad = register(m.bad).(*prometheus.CounterVec)
	m.outOfRange = register(m.outOfRange).(*prometheus.CounterVec)
	m.duplicates = register(m.duplicates).(*prometheus.CounterVec)
	m.batches = register(m.batches).(*prometheus.CounterVec)
	m.getErrors = register(m.getErrors).(*prometheus.CounterVec)
	m.held = register(m.held).(*prometheus.GaugeVec)
	m.takes = register(m.takes).(*prometheus.CounterVec)
	m.lost = register(m.lost).(*prometheus.CounterVec)
	m.checkpoints = register(m.checkpoints).(*prometheus.CounterVec)
	m.deadLetters = register(m.deadLetters).(*prometheus.CounterVec)
	m.procErrors = register(m.procErrors).(*prometheus.CounterVec)
	m.subscribes = register(m.subscribes).(*prometheus.CounterVec)
	m.subErrors = register(m.subErrors).(*prometheus.CounterVec)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// shardMetrics are one shard's children, resolved once per lease.
type shardMetrics struct {
	behind     prometheus.Gauge
	records    prometheus.Counter
	bad        prometheus.Counter
	outOfRange prometheus.Counter
	duplicates prometheus.Counter
	batches    prometheus.Counter
}

func (m *metrics) shard(app, shard string) shardMetrics {
	if m == nil {
		return shardMetrics{}
	}
	return shardMetrics{
		behind:     m.behind.WithLabelValues(app, shard),
		records:    m.records.WithLabelValues(app, shard),
		bad:        m.bad.WithLabelValues(app, shard),
		outOfRange: m.outOfRange.WithLabelValues(app, shard),
		duplicates: m.duplicates.WithLabelValues(app, shard),
		batches:    m.batches.WithLabelValues(app, shard),
	}
}

// dropShard removes a shard's series when this process stops reading it, so
// another process's values are not shadowed by stale ones.
func (m *metrics) dropShard(app, shard string) {
	if m == nil {
		return
	}
	m.behind.DeleteLabelValues(app, shard)
}

// call counts an answer read (a GetRecords call, or a fan-out event),
// however many batches it is handed in.
func (s shardMetrics) call() {
	if s.batches != nil {
		s.batches.Inc()
	}
}

// observe counts a batch handed to the processor.
func (s shardMetrics) observe(n, bad, oor, dups int, behind int64) {
	if s.records == nil {
		return
	}
	s.records.Add(float64(n))
	s.bad.Add(float64(bad))
	s.outOfRange.Add(float64(oor))
	s.duplicates.Add(float64(dups))
	s.behind.Set(float64(behind))
}

func (m *metrics) getError(app, kind string) {
	if m != nil {
		m.getErrors.WithLabelValues(app, kind).Inc()
	}
}

func (m *metrics) setHeld(app string, n int) {
	if m != nil {
		m.held.WithLabelValues(app).Set(float64(n))
	}
}

func (m *metrics) take(app, reason string) {
	if m != nil {
		m.takes.WithLabelValues(app, reason).Inc()
	}
}

func (m *metrics) leaseLost(app string) {
	if m != nil {
		m.lost.WithLabelValues(app).Inc()
	}
}

func (m *metrics) checkpoint(app, result string) {
	if m != nil {
		m.checkpoints.WithLabelValues(app, result).Inc()
	}
}

func (m *metrics) deadLetter(app, result string) {
	if m != nil {
		m.deadLetters.WithLabelValues(app, result).Inc()
	}
}

func (m *metrics) procError(app string) {
	if m != nil {
		m.procErrors.WithLabelValues(app).Inc()
	}
}

func (m *metrics) subscribed(app string) {
	if m != nil {
		m.subscribes.WithLabelValues(app).Inc()
	}
}

func (m *metrics) subscribeError(app, kind string) {
	if m != nil {
		m.subErrors.WithLabelValues(app, kind).Inc()
	}
}
