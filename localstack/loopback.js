// Preloaded with `node -r ./loopback.js` so emulators that have no bind-address
// option (kinesis-local, kinesalite) listen on 127.0.0.1 only, never on every
// interface. It rewrites the host argument of net.Server#listen.
'use strict';
const net = require('net');
const host = process.env.CLICKSTREAM_BIND_HOST || '127.0.0.1';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'object' && args[0] !== null && !Array.isArray(args[0])) {
    args[0] = Object.assign({}, args[0], { host });
  } else if (typeof args[0] === 'number' || typeof args[0] === 'string') {
    const rest = args.slice(1);
    if (typeof rest[0] === 'string') rest.shift();
    args = [args[0], host, ...rest];
  }
  return listen.apply(this, args);
};
