'use strict';

// The benchmark's provider: one sofa-rpc-node RpcServer (one Node process,
// one thread) on 127.0.0.1, serving com.cairn.bench.EchoService#echo(text)
// -> text (hessian2). Writes its port to PORT_FILE when listening; stops on
// SIGTERM/SIGINT.
//
//   node bench/bolt/provider.js PORT_FILE
//
// sofa-rpc-node comes from tests/node/node_modules (scripts/setup-node).

const fs = require('fs');
const net = require('net');
const path = require('path');
const { createRequire } = require('module');

const nodeRequire = createRequire(path.join(__dirname, '..', '..', 'tests', 'node', 'package.json'));
const { RpcServer } = nodeRequire('sofa-rpc-node').server;

const INTERFACE = 'com.cairn.bench.EchoService';
const quiet = () => {};
const logger = { debug: quiet, info: quiet, warn: quiet, error: console.error };

// RpcServer listens on every interface: bind 127.0.0.1 only.
class LoopbackRpcServer extends RpcServer {
  _startServer(port) {
    const server = net.createServer(socket => this._handleSocket(socket));
    server.once('error', err => this.emit('error', err));
    server.listen({ port, host: '127.0.0.1' }, () => {
      if (port === 0) this.publishPort = server.address().port;
    });
    return server;
  }
}

async function main() {
  const portFile = process.argv[2];
  if (!portFile) throw new Error('usage: provider.js PORT_FILE');
  const server = new LoopbackRpcServer({ logger, port: 0, publishAddress: '127.0.0.1' });
  server.addService({ interfaceName: INTERFACE }, {
    async echo(text) {
      return text;
    },
  });
  await server.start();
  fs.writeFileSync(portFile + '.tmp', `${server.publishPort}\n`);
  fs.renameSync(portFile + '.tmp', portFile);
  const stop = () => {
    server.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch(err => {
  console.error(err && err.stack || err);
  process.exit(1);
});
