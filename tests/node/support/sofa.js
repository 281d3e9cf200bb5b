'use strict';

// Real sofa-rpc-node peers for the tests: providers (RpcServer bound to
// 127.0.0.1) and consumers (RpcClient), each with its own CairnRegistry.

const net = require('net');
const { RpcServer } = require('sofa-rpc-node').server;
const { RpcClient } = require('sofa-rpc-node').client;
const { CairnRegistry } = require('../../../clients/node');

const verbose = process.env.CAIRN_TEST_VERBOSE === '1';

// sofa-rpc-node requires a logger; keep the test output to failures unless
// CAIRN_TEST_VERBOSE=1.
const logger = {
  debug: verbose ? console.debug : () => {},
  info: verbose ? console.info : () => {},
  warn: verbose ? console.warn : () => {},
  error: verbose ? console.error : () => {},
};

// RpcServer listens on every interface; this one binds 127.0.0.1 only and
// publishes that address.
class LoopbackRpcServer extends RpcServer {
  constructor(options) {
    super(Object.assign({ publishAddress: '127.0.0.1', port: 0 }, options));
  }

  _startServer(port) {
    const server = net.createServer(socket => this._handleSocket(socket));
    server.once('error', err => this.emit('error', err));
    server.listen({ port, host: '127.0.0.1' }, () => {
      if (port === 0) this.publishPort = server.address().port;
    });
    return server;
  }
}

// Registries for the tests: short keepalive and backoff so that failover is
// quick, a requestTimeout that survives a slow (sanitizer) registry.
function createRegistry(servers, extra = {}) {
  const registry = new CairnRegistry(Object.assign({
    logger,
    servers,
    keepaliveInterval: 500,
    reconnectBackoffInitial: 50,
    reconnectBackoffMax: 500,
    requestTimeout: 20000,
  }, extra));
  registry.on('error', err => {
    if (verbose) console.error('[test] registry error:', err);
  });
  return registry;
}

// Polls `condition` (sync or async) every 20 ms until it returns a truthy
// value, which is returned; throws after timeoutMs with `what` (a string or
// a function giving one) and the last value seen.
async function waitFor(condition, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await condition();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const description = typeof what === 'function' ? what() : what;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}; last: ${
        last instanceof Error ? last.stack : JSON.stringify(last)}`);
    }
    await new Promise(resolve => setTimeout(resolve, 20));
  }
}

// Collects what a registry listener is given.
class AddressRecorder {
  constructor() {
    this.lists = [];
    this.listener = list => { this.lists.push(list); };
  }

  get last() {
    return this.lists.length ? this.lists[this.lists.length - 1] : undefined;
  }

  hostsOf(list) {
    return (list || []).map(url => new URL(url).host).sort();
  }

  // Waits until the newest list holds exactly these host:port entries.
  async waitForHosts(hosts, timeoutMs = 20000) {
    const want = [ ...hosts ].sort();
    return waitFor(() => {
      const last = this.last;
      return last !== undefined && JSON.stringify(this.hostsOf(last)) === JSON.stringify(want) && last;
    }, timeoutMs, () => `address list ${JSON.stringify(want)} (lists so far: ${JSON.stringify(this.lists)})`);
  }
}

module.exports = { LoopbackRpcServer, RpcClient, CairnRegistry, createRegistry, logger, waitFor, AddressRecorder };
