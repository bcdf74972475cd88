// Package archive is the archive consumer: it writes every valid event of
// the stream to S3 as Parquet, Hive-partitioned by event type and event-time
// hour (s3://BUCKET/PREFIX/events/type=T/dt=YYYY-MM-DD/hour=HH/), for Athena,
// Spark, BigQuery external tables and DuckDB. It runs as a
// consumers.Processor (`clickstream consume archive`, or in Lambda) and keeps
// exactly one copy of each event across crashes and replays: every flush
// cuts the shard at one position, recorded as pending next to the checkpoint
// before anything is uploaded. The layout, columns, buffering and the
// exactly-once argument are in docs/DESIGN.md §4.1.
package archive
