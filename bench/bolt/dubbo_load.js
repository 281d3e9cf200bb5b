'use strict';

// The Dubbo 2 client of bench/bolt/load.js (--protocol dubbo): raw Dubbo
// frames over a fixed number of connections per load process, not dubbo2.js
// (its per-call debug logging, Context objects and encode-every-call would
// make the load generator, not the mesh, the bottleneck). The request body
// (hessian2, by hessian.js via tests/node/support/dubbo_wire.js) is encoded
// once: dubbo version 2.0.2, com.cairn.bench.EchoService version 1.0,
// echo(String <payload>), attachments {path, interface, version, timeout};
// each call copies it behind a fresh header with the next request id of its
// connection. The calls in flight are bounded by the load's callers (each
// waits for its answer), as with sofa-rpc-node.
//
// An answer counts as a success only when it has status 20 (OK), a
// RESPONSE_VALUE (1) or RESPONSE_VALUE_WITH_ATTACHMENTS (4) flag and the
// payload back (compared as hessian2 bytes, not decoded). Everything else
// fails the call: another status (with the sidecar's message), a closed
// connection (its calls in flight fail; the next call reconnects), or no
// answer within the call timeout. Heartbeats from the peer are answered.
//
//   const { connect } = require('./dubbo_load');
//   const client = await connect({ target: 'host:port', payload, connections: 1, timeoutMs: 5000 });
//   await client.call();  client.close();

const net = require('net');
const path = require('path');
const { createRequire } = require('module');

const testsRequire = createRequire(path.join(__dirname, '..', '..', 'tests', 'node', 'package.json'));
const hessian = testsRequire('hessian.js');
const wire = require(path.join(__dirname, '..', '..', 'tests', 'node', 'support', 'dubbo_wire.js'));

const INTERFACE = 'com.cairn.bench.EchoService';
const HEADER = wire.HEADER_LENGTH;
const FLAG_VALUE = 0x91;                  // hessian2 compact int 1
const FLAG_VALUE_WITH_ATTACHMENTS = 0x94; // hessian2 compact int 4

class DubboLoadConnection {
  constructor(host, port, template, expected, timeoutMs) {
    this.host = host;
    this.port = port;
    this.template = template;
    this.expected = expected;
    this.timeoutMs = timeoutMs;
    this.nextId = 1;
    this.pending = new Map(); // id -> { resolve, reject, timer }
    this.socket = null;
    this.connecting = null;
    this.buffer = null;
  }

  open() {
    if (this.socket) return Promise.resolve();
    if (this.connecting) return this.connecting;
    this.connecting = new Promise((resolve, reject) => {
      const socket = net.connect({ host: this.host, port: this.port });
      socket.setNoDelay(true);
      const timer = setTimeout(() => socket.destroy(new Error(`connect to ${this.host}:${this.port} timed out`)), this.timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        this.socket = socket;
        this.connecting = null;
        resolve();
      });
      socket.on('data', chunk => this.onData(chunk));
      socket.on('error', err => { socket.lastError = err; });
      socket.once('close', () => {
        clearTimeout(timer);
        if (this.connecting && this.socket !== socket) {
          this.connecting = null;
          reject(socket.lastError || new Error('connection closed while connecting'));
          return;
        }
        this.socket = null;
        this.buffer = null;
        const err = new Error(`the connection to ${this.host}:${this.port} closed${socket.lastError ? `: ${socket.lastError.message}` : ''}`);
        for (const waiter of this.pending.values()) {
          clearTimeout(waiter.timer);
          waiter.reject(err);
        }
        this.pending.clear();
      });
    });
    return this.connecting;
  }

  async call() {
    if (!this.socket) await this.open();
    const id = this.nextId;
    this.nextId = id >= 0x7fffffff ? 1 : id + 1;
    const frame = Buffer.allocUnsafe(this.template.length);
    this.template.copy(frame);
    frame.writeUInt32BE(id, 8); // bytes 4-7 stay 0: ids below 2^31
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending.delete(id)) reject(new Error(`no answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.write(frame);
    });
  }

  onData(chunk) {
    let b = this.buffer ? Buffer.concat([ this.buffer, chunk ]) : chunk;
    let at = 0;
    while (b.length - at >= HEADER) {
      if (b[at] !== 0xda || b[at + 1] !== 0xbb) {
        this.socket.destroy(new Error('bad magic in an answer'));
        return;
      }
      const length = b.readInt32BE(at + 12);
      if (b.length - at < HEADER + length) break;
      const flags = b[at + 2];
      const status = b[at + 3];
      const idHigh = b.readUInt32BE(at + 4);
      const id = b.readUInt32BE(at + 8);
      const body = b.subarray(at + HEADER, at + HEADER + length);
      at += HEADER + length;
      if (flags & wire.FLAG_REQUEST) {
        // The peer's heartbeat: answer it.
        if ((flags & wire.FLAG_EVENT) && (flags & wire.FLAG_TWOWAY)) {
          this.socket.write(wire.encodeHeartbeatResponse((BigInt(idHigh) << 32n) | BigInt(id)));
        }
        continue;
      }
      if (flags & wire.FLAG_EVENT) continue; // a heartbeat answer: we send none
      const waiter = idHigh === 0 ? this.pending.get(id) : undefined;
      if (!waiter) continue; // timed out already
      this.pending.delete(id);
      clearTimeout(waiter.timer);
      if (status !== wire.STATUS.OK) {
        let message;
        try {
          message = hessian.decode(body, '2.0');
        } catch (err) {
          message = body.toString('latin1');
        }
        waiter.reject(new Error(`status ${status}: ${message}`));
      } else if ((body[0] === FLAG_VALUE || body[0] === FLAG_VALUE_WITH_ATTACHMENTS) &&
          body.length >= 1 + this.expected.length && body.compare(this.expected, 0, this.expected.length, 1, 1 + this.expected.length) === 0) {
        waiter.resolve(true);
      } else {
        waiter.reject(new Error(`unexpected answer body ${body.subarray(0, 32).toString('hex')}`));
      }
    }
    this.buffer = at < b.length ? Buffer.from(b.subarray(at)) : null;
  }

  close() {
    if (this.socket) this.socket.destroy();
  }
}

async function connect({ target, payload, connections = 1, timeoutMs = 5000 }) {
  const colon = target.lastIndexOf(':');
  const host = target.slice(0, colon);
  const port = Number(target.slice(colon + 1));
  const body = wire.encodeRequestBody({
    dubboVersion: '2.0.2',
    service: INTERFACE,
    version: '1.0',
    method: 'echo',
    paramDesc: 'Ljava/lang/String;',
    args: [ payload ],
    attachments: { timeout: String(timeoutMs) },
  });
  const template = wire.frame(wire.FLAG_REQUEST | wire.FLAG_TWOWAY | wire.HESSIAN2, 0, 0, body);
  const expected = Buffer.from(new hessian.EncoderV2().write(payload).get());
  const pool = Array.from({ length: Math.max(1, connections) },
    () => new DubboLoadConnection(host, port, template, expected, timeoutMs));
  await Promise.all(pool.map(c => c.open()));
  let next = 0;
  return {
    call() {
      const c = pool[next];
      next = next + 1 === pool.length ? 0 : next + 1;
      return c.call();
    },
    close() {
      for (const c of pool) c.close();
    },
  };
}

module.exports = { connect, INTERFACE };
