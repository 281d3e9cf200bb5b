'use strict';

// Bolt v1 frames on a plain socket, for what sofa-rpc-node's consumer does
// not let a test do: a request whose frame timeout the sidecar must enforce
// itself (the consumer's own timer would answer first). Frames are encoded
// by sofa-bolt-node (the real encoder); responses are read by their 20-byte
// fixed header (magic, type, cmdcode, ver2, requestId, codec, status,
// class/header/content lengths); the body is not decoded.

const net = require('net');
const boltProtocol = require('sofa-bolt-node/lib/protocol');

const STATUS = {
  SUCCESS: 0, ERROR: 1, SERVER_EXCEPTION: 2, UNKNOWN: 3, SERVER_THREADPOOL_BUSY: 4,
  ERROR_COMM: 5, NO_PROCESSOR: 6, TIMEOUT: 7, CLIENT_SEND_ERROR: 8, CODEC_EXCEPTION: 9,
};

// A hessian2 SofaRequest frame (type 1: a request that wants an answer).
function encodeRequest(id, { service, method, args, timeout }) {
  return boltProtocol.requestEncode(id, {
    serverSignature: service,
    methodName: method,
    args,
    requestProps: { service },
    timeout,
  }, { protocolType: 'bolt', codecType: 'hessian2', boltVersion: 1, classCache: new Map() });
}

class RawBoltConnection {
  constructor(address) {
    const colon = address.lastIndexOf(':');
    this.host = address.slice(0, colon);
    this.port = Number(address.slice(colon + 1));
    this.buffer = Buffer.alloc(0);
    this.waiting = new Map(); // id -> { resolve, reject }
    this.closed = false;
  }

  connect(timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: this.host, port: this.port });
      const timer = setTimeout(() => { socket.destroy(); reject(new Error('connect timeout')); }, timeoutMs);
      socket.once('connect', () => { clearTimeout(timer); resolve(this); });
      socket.once('error', err => { clearTimeout(timer); reject(err); });
      socket.on('data', chunk => this.onData(chunk));
      socket.on('close', () => {
        this.closed = true;
        for (const waiter of this.waiting.values()) waiter.reject(new Error('the connection closed'));
        this.waiting.clear();
      });
      socket.on('error', () => {});
      this.socket = socket;
    });
  }

  onData(chunk) {
    this.buffer = Buffer.concat([ this.buffer, chunk ]);
    for (;;) {
      if (this.buffer.length < 20) return;
      if (this.buffer[0] !== 1) {
        this.fail(new Error(`not a Bolt v1 frame: ${this.buffer.subarray(0, 20).toString('hex')}`));
        return;
      }
      const classLen = this.buffer.readUInt16BE(12);
      const headerLen = this.buffer.readUInt16BE(14);
      const contentLen = this.buffer.readUInt32BE(16);
      const total = 20 + classLen + headerLen + contentLen;
      if (this.buffer.length < total) return;
      const frame = this.buffer.subarray(0, total);
      this.buffer = this.buffer.subarray(total);
      const response = {
        type: frame[1],
        cmdCode: frame.readUInt16BE(2),
        id: frame.readUInt32BE(5),
        status: frame.readUInt16BE(10),
        content: frame.subarray(20 + classLen + headerLen),
        at: Date.now(),
      };
      const waiter = this.waiting.get(response.id);
      if (waiter) {
        this.waiting.delete(response.id);
        waiter.resolve(response);
      }
    }
  }

  // Ends the connection and rejects every request waiting for an answer.
  fail(err) {
    this.socket.destroy();
    for (const waiter of this.waiting.values()) waiter.reject(err);
    this.waiting.clear();
  }

  // Writes a request frame and resolves with its response (or rejects after
  // waitMs: the test's own bound, not the frame's timeout).
  request(id, request, waitMs = 30000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`no response to request ${id} within ${waitMs} ms`));
      }, waitMs);
      this.waiting.set(id, {
        resolve: response => { clearTimeout(timer); resolve(response); },
        reject: err => { clearTimeout(timer); reject(err); },
      });
      this.socket.write(encodeRequest(id, request));
    });
  }

  close() {
    if (this.socket) this.socket.destroy();
  }
}

module.exports = { RawBoltConnection, encodeRequest, STATUS };
