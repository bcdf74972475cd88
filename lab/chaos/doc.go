// Package chaos runs the whole pipeline under faults and then verifies its
// outputs against the stream itself — `clickstream-lab chaos` and `make chaos`
// (docs/CHAOS.md). While synthetic load is produced it SIGKILLs and restarts
// each consumer process at random times (sometimes running two processes of
// one application side by side so leases change hands), splits and merges
// shards, and, when a fault proxy is configured, injects throttling, dropped
// connections and 500s and restarts the proxy. Afterwards it reads every
// shard from TRIM_HORIZON (closed parents included) — the accepted events,
// the ground truth — and checks that every valid record is in the archive
// exactly once, every bad record is a dead letter, every user vector equals a
// direct computation and every minute metric's exact counts equal a direct
// count.
package chaos
