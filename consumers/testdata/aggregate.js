// Aggregates user records with the KPL reference implementation, npm
// aws-kinesis-agg (awslabs/kinesis-aggregation), for the consumer runtime's
// and the Lambda adapter's de-aggregation tests.
//
// usage: node aggregate.js MODULE_DIR < request.json > response.json
// request:  [[{"partitionKey","explicitHashKey"?,"data"(base64)}, ...], ...]  (one inner list per aggregate)
// response: [{"partitionKey","explicitHashKey","data"(base64)}, ...]
'use strict';
const agg = require(process.argv[2]);

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const out = [];
  for (const records of JSON.parse(input)) {
    const a = new agg.RecordAggregator();
    for (const r of records) {
      const rec = { partitionKey: r.partitionKey, data: Buffer.from(r.data, 'base64') };
      if (r.explicitHashKey) rec.explicitHashKey = r.explicitHashKey;
      a.addUserRecord(rec);
    }
    const built = a.build();
    out.push({
      partitionKey: built.partitionKey,
      explicitHashKey: built.ExplicitHashKey || '',
      data: built.data.toString('base64'),
    });
  }
  process.stdout.write(JSON.stringify(out));
});
