'use strict';

// The dubbo workload's provider: one Node process (one thread) on 127.0.0.1
// serving com.cairn.bench.EchoService#echo(String) -> the same string over
// Dubbo 2 (hessian2). It is tests/node/support/dubbo_provider.js's server
// (createDubboServer: written from the wire format, bodies by hessian.js;
// each request body decoded whole, each answer encoded as a Java provider
// does: RESPONSE_VALUE_WITH_ATTACHMENTS for dubbo version 2.0.2), without the
// tag. Writes its port to PORT_FILE when listening; stops on SIGTERM/SIGINT.
//
//   node bench/bolt/dubbo_provider.js PORT_FILE
//
// hessian.js comes from tests/node/node_modules (scripts/setup-node).

const fs = require('fs');
const path = require('path');
const { createDubboServer } = require(path.join(__dirname, '..', '..', 'tests', 'node', 'support', 'dubbo_provider.js'));

const INTERFACE = 'com.cairn.bench.EchoService';

function main() {
  const portFile = process.argv[2];
  if (!portFile) throw new Error('usage: dubbo_provider.js PORT_FILE');
  const server = createDubboServer({ tag: '', interfaces: [ INTERFACE ] });
  server.on('error', err => {
    console.error(err && err.stack || err);
    process.exit(1);
  });
  server.listen({ host: '127.0.0.1', port: 0 }, () => {
    fs.writeFileSync(portFile + '.tmp', `${server.address().port}\n`);
    fs.renameSync(portFile + '.tmp', portFile);
  });
  const stop = () => {
    server.closeAll().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
