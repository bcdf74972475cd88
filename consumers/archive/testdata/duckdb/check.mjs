// Reads an archive directory (a local copy of s3://BUCKET/PREFIX/) with
// DuckDB, as an analyst would, and prints what the Go test asserts on:
// the column types DuckDB infers, totals, and every row (as JSON).
// Usage: node check.mjs DIR
import { DuckDBInstance } from '@duckdb/node-api';

const dir = process.argv[2];
const src = `read_parquet('${dir}/events/**/*.parquet', hive_partitioning = true)`;
const db = await DuckDBInstance.create(':memory:');
const c = await db.connect();
const q = async (sql) => (await c.runAndReadAll(sql)).getRowObjectsJson();

const out = {
  version: (await q('SELECT version() AS v'))[0].v,
  columns: await q(`DESCRIBE SELECT * FROM ${src}`),
  totals: (await q(`SELECT count(*) AS rows, count(DISTINCT id) AS ids FROM ${src}`))[0],
  rows: await q(`SELECT id, type, CAST(dt AS VARCHAR) AS dt, hour, epoch_ms(ts) AS ts_ms,
      epoch_ms(arrival_ts) AS arrival_ms, epoch_ms(received_at) AS received_ms,
      user_id, placement, position, status, cache, request_time_ms, bytes,
      CAST(to_json(features) AS VARCHAR) AS features, CAST(to_json(attrs) AS VARCHAR) AS attrs, extra,
      shard_id, sequence_number, sub_sequence_number
    FROM ${src} ORDER BY shard_id, sequence_number, sub_sequence_number`),
};
console.log(JSON.stringify(out));
