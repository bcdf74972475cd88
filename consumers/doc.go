// Package consumers is the runtime the three consumers (archive, vectors,
// metrics) run on: it reads every shard of the Kinesis stream in order,
// de-aggregates and decodes records, hands them to a Processor and
// checkpoints what the processor reports durable, with leases in DynamoDB
// spreading shards over any number of processes. The Lambda adapter
// (lambdas/kinesisadapter) drives the same Processor from Kinesis events.
//
// Guarantees: at-least-once delivery in shard order; checkpoints (sequence
// and sub-sequence) only from positions the processor reported durable,
// fenced so a process that lost its lease can never move one; parents read to
// SHARD_END before their children start; bad records dead-lettered before the
// shard moves past them. See Help for the operator's view.
package consumers

// Help explains leases, checkpoints and scaling out; `clickstream consume
// --help` prints it.
const Help = `How consuming works

Each processor (archive, vectors, metrics) is an application with its own
name. Every application reads every shard of the stream, in order, and keeps
its own position per shard.

Leases. The lease table (default clickstream-leases) holds one item per
application and shard: which process holds the shard, a heartbeat, and the
checkpoint. A process renews its leases every lease-duration/3. A lease whose
heartbeat has not moved for a whole lease duration (default 10s), measured on
the observer's own clock, is expired and taken by another process: that is the
fail-over time after a crash. A graceful stop (SIGINT/SIGTERM) flushes,
checkpoints and releases every lease, so others take over at once.

Checkpoints. A processor reports the position up to which its output is
durable (archive: uploaded Parquet files; vectors and metrics: DynamoDB
writes); only that position is written, as sequence number plus sub-sequence
within a KPL aggregate, so a restart resumes exactly after the last durable
user record, even in the middle of an aggregate. Each checkpoint write is
conditional on the writer still holding the lease: a process that lost its
lease can never move a checkpoint. Delivery is at least once; the processors
make replays idempotent.

Scaling out. Start more processes with the same processors: they share the
shards. Each process takes free and expired leases up to its fair share
(shards / processes, rounded up) and, when the table is unbalanced by two or
more, steals one lease per renewal from the most loaded process — never
when balanced, so there are no stealing storms. A new process reaches its
share within about two lease durations on small streams (one steal per
renewal on larger ones). More processes than shards leave the extra ones idle
as hot standbys.

Resharding. After a split or merge, child shards start only when every parent
has been read to its end and checkpointed; data left in closed shards is
always read. Bad records (not JSON, invalid, corrupt KPL aggregates) are
written to s3://BUCKET/PREFIX/errors/dt=YYYY-MM-DD/SHARD/SEQ-SUB.json with the
reason and never stop a shard.`
