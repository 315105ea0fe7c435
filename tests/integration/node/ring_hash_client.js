// Proxyless gRPC client (@grpc/grpc-js-xds) for meshd's ring-hash test.
// usage: node ring_hash_client.js TARGET CALLS_PER_KEY KEY...
// Sends CALLS_PER_KEY calls with header x-user: KEY for each KEY and prints
// {"KEY": {"backend": count, ...}, ...} as JSON.
const grpc = require('@grpc/grpc-js');
require('@grpc/grpc-js-xds').register();

const [target, perKeyText, ...keys] = process.argv.slice(2);
const perKey = parseInt(perKeyText, 10);
const client = new grpc.Client(target, grpc.credentials.createInsecure());
const id = (x) => x;

function call(key) {
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set('x-user', key);
    const deadline = new Date(Date.now() + 10000);
    client.makeUnaryRequest('/test.Echo/Hello', id, id, Buffer.from('hi'), md, { deadline }, (err, resp) => {
      resolve(err ? 'ERR:' + grpc.status[err.code] : resp.toString());
    });
  });
}

(async () => {
  const out = {};
  for (const key of keys) {
    out[key] = {};
    for (let i = 0; i < perKey; i++) {
      const r = await call(key);
      out[key][r] = (out[key][r] || 0) + 1;
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  client.close();
  process.exit(0);
})();
