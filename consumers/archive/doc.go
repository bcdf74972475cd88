// Package archive is the archive consumer: it writes every valid event of
// the stream to S3 as Parquet, Hive-partitioned by event type and event-time
// hour, for Athena, Spark, BigQuery external tables and DuckDB — the data
// lake analysts start from. It runs as a consumers.Processor (`clickstream
// consume archive`, or in Lambda through lambdas/kinesisadapter) and keeps
// exactly one copy of each event across crashes and replays.
//
// # Layout (DESIGN.md §4)
//
//	s3://BUCKET/PREFIX/events/type=T/dt=YYYY-MM-DD/hour=HH/SHARD_FIRSTSEQ-SUB_LASTSEQ-SUB.parquet
//	s3://BUCKET/PREFIX/errors/dt=YYYY-MM-DD/SHARD/SEQ-SUB.json   (bad records; written by the runtime)
//
// dt and hour are the event time (ts) in UTC. Type values outside
// [A-Za-z0-9._-] are %XX-escaped as Hive does (type=page%20view); values
// longer than 128 bytes are cut and suffixed with a hash. An object holds one
// shard's records of one partition, in shard order, and is named after the
// first and last of them, so writing the same records again overwrites the
// same object.
//
// # Columns
//
// The v1 contract fields with Parquet types: ts, received_at and arrival_ts
// as INT64 TIMESTAMP(MILLIS, isAdjustedToUTC=true) (converted type
// TIMESTAMP_MILLIS for older readers); strings as STRING, dictionary-encoded
// where values repeat; features MAP<STRING,DOUBLE>; attrs
// MAP<STRING,STRING>; position, status, bytes as integers; request_time_ms
// DOUBLE; unknown top-level fields as one JSON object in the STRING column
// extra; plus shard_id, sequence_number (STRING: Kinesis sequence numbers
// exceed 64 bits), sub_sequence_number and arrival_ts. Absent fields are
// NULL. The type column repeats the partition value (exactly, where the
// path is escaped). Files are zstd-compressed by default (snappy, gzip or
// none selectable), data page v1, one row group per file up to RowGroupRows.
// An Athena table over the default layout:
//
//	CREATE EXTERNAL TABLE clickstream_events (
//	  v int, id string, ts timestamp, user_id string, session_id string,
//	  item_id string, app string, placement string, position bigint,
//	  features map<string,double>, attrs map<string,string>, host string,
//	  method string, uri string, route string, status int, cache string,
//	  request_time_ms double, bytes bigint, user_agent string,
//	  received_at timestamp, extra string, shard_id string,
//	  sequence_number string, sub_sequence_number bigint, arrival_ts timestamp)
//	PARTITIONED BY (type string, dt string, hour string)
//	STORED AS PARQUET LOCATION 's3://clickstream-archive/events/'
//	TBLPROPERTIES ('projection.enabled'='true',
//	  'projection.type.type'='enum', 'projection.type.values'='click,impression,access',
//	  'projection.dt.type'='date', 'projection.dt.format'='yyyy-MM-dd', 'projection.dt.range'='2026-01-01,NOW',
//	  'projection.hour.type'='integer', 'projection.hour.range'='0,23', 'projection.hour.digits'='2');
//
// DuckDB: SELECT * FROM read_parquet('DIR/events/**/*.parquet', hive_partitioning = true).
//
// # Buffering
//
// Each shard buffers its rows per partition and flushes ALL of them at once
// (one object per partition) when the oldest buffered row is MaxAge old
// (default 60s), when a partition reaches FlushBytes of raw events (64 MiB)
// or FlushRows rows (500,000), before the shard would open more than
// MaxPartitions partitions (256), when the process's buffers exceed
// MemoryBudget (128 MiB; the shard holding at least its fair share
// flushes), and on Flush (shard end, shutdown, end of a Lambda
// invocation). Rows are buffered in compact form — the record's raw bytes
// and its position, ~150 bytes over the event's size — and decoded into
// Parquet rows at upload: decoded rows held about five times the raw size.
// Objects upload in parallel (UploadConcurrency); objects
// larger than PartSize go up as multipart uploads; each upload is retried
// (UploadAttempts) and is visible only when complete.
//
// # Exactly once (DESIGN.md §4 "Exactly once, concretely")
//
// Because a flush writes every buffered row, it cuts the shard at one
// position: every good record up to it is in S3 and none after it. The shard
// state kept in the runtime's StateStore (next to the checkpoint, with the
// same lease fencing) is that position ("written") plus, while a flush is
// under way, the flush itself ("pending": its end position and object keys).
// A flush (1) saves pending before uploading anything, (2) uploads, (3)
// saves written = its end with no pending, and only then reports the
// position durable, which the runtime checkpoints. After a crash, the next
// owner resumes at the checkpoint; records up to written are skipped (the
// checkpoint may lag), and when a pending flush exists the records up to
// its end are buffered and flushed exactly there, producing the same
// objects under the same keys (overwriting whatever the crashed attempt
// left; unfinished multipart uploads of those keys are aborted). So however
// the replay is cut into batches, each event lands in exactly one object.
// Without a state store (Lambda without WithStateStore) a failed flush
// deletes what it uploaded, but a process killed mid-flush may leave
// duplicates.
//
// Bad records are dead-lettered by the runtime before Process sees them,
// one object per record keyed by shard, sequence and sub-sequence (so
// replays overwrite it); the archive only counts them.
//
// # Inspecting
//
// List (files and bytes per partition, from listings) and Stats (plus rows
// from each object's Parquet footer, and the dead letters) back
// `clickstream archive ls` and `clickstream archive stats`.
package archive
