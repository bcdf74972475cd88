// Package metrics is the minute-metrics consumer: it aggregates events per
// tumbling one-minute window of event time (cache hit rate per route, CTR
// per placement, latency percentiles, unique users — or any metric declared
// in a definitions file) into per-shard partial rows in DynamoDB, merges
// them at read time for the read API, the dashboard and `clickstream
// metrics query`, and evaluates alert rules on them.
//
// Exactly once: each partial row (metric, group, window, shard) is
// overwritten, never incremented, and records the shard position it is
// complete up to; the shard's progress row keeps the watermark state as of
// the position it was saved at. A replay after a crash — cut into different
// batches, in the runtime or in Lambda — skips what each row already holds
// and makes the same lateness decisions, so counts converge to the exact
// values. Windows are published when the shard's watermark (largest event
// time minus OutOfOrderness, advanced by processing time when the shard is
// idle at its tip) passes their end; later events within AllowedLateness
// rewrite them; later still are dropped and counted per metric.
package metrics
