// Cross-checks kpl against the reference implementation, npm aws-kinesis-agg
// (awslabs/kinesis-aggregation). Used by kpl's TestReference* tests.
//
// usage: node reference.js MODULE_DIR < request.json > response.json
// request:  {"aggregate":   [[{"partitionKey","explicitHashKey","data"(base64)}, ...], ...],
//            "deaggregate": [{"partitionKey","data"(base64)}, ...]}
// response: {"aggregated":   [{"partitionKey","explicitHashKey","data"(base64)} | {"error"}],
//            "deaggregated": [{"records":[{"partitionKey","explicitHashKey","data"}]} | {"error"}]}
'use strict';
const agg = require(process.argv[2]);

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const req = JSON.parse(input);
  const out = { aggregated: [], deaggregated: [] };

  for (const records of req.aggregate || []) {
    try {
      const a = new agg.RecordAggregator();
      for (const r of records) {
        const rec = { partitionKey: r.partitionKey, data: Buffer.from(r.data, 'base64') };
        if (r.explicitHashKey) rec.explicitHashKey = r.explicitHashKey;
        a.addUserRecord(rec);
      }
      const built = a.build();
      out.aggregated.push({
        partitionKey: built.partitionKey,
        explicitHashKey: built.ExplicitHashKey || '',
        data: built.data.toString('base64'),
      });
    } catch (e) {
      out.aggregated.push({ error: String(e) });
    }
  }

  for (const r of req.deaggregate || []) {
    let result = null;
    agg.deaggregateSync({ partitionKey: r.partitionKey, data: r.data }, true, (err, recs) => {
      if (result) return; // deaggregateSync may call back twice on errors; keep the first
      if (err) {
        result = { error: String(err) };
        return;
      }
      result = {
        records: recs.map((u) => ({
          partitionKey: u.partitionKey,
          explicitHashKey: u.explicitPartitionKey || '',
          data: u.data, // already base64
        })),
      };
    });
    out.deaggregated.push(result || { error: 'no callback' });
  }

  process.stdout.write(JSON.stringify(out));
});
