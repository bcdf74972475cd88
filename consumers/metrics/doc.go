// Package metrics is the minute-metrics consumer: it aggregates events per
// tumbling one-minute window of event time (cache hit rate per route, CTR
// per placement, latency percentiles, unique users — or any metric declared
// in a definitions file) into per-shard partial rows in DynamoDB, merges
// them at read time for the read API, the dashboard and `clickstream
// metrics query`, and evaluates alert rules on them. Each partial row is
// overwritten, never incremented, and records the position it is complete
// up to, so replays converge to exact counts (docs/DESIGN.md §4.3).
package metrics
