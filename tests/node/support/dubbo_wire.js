'use strict';

// Dubbo 2 frames, written from the wire format (Apache Dubbo's
// ExchangeCodec / DubboCodec), with hessian2 bodies by the npm hessian.js
// package (its 2.0 API: EncoderV2 / DecoderV2, one stream per body).
//
// Header, 16 bytes, big-endian:
//   0-1   magic 0xdabb
//   2     flags: 0x80 request, 0x40 two-way, 0x20 event (heartbeat),
//         low 5 bits the serialization id (2 = hessian2)
//   3     status (responses): 20 OK, 30 CLIENT_TIMEOUT, 31 SERVER_TIMEOUT,
//         40 BAD_REQUEST, 50 BAD_RESPONSE, 60 SERVICE_NOT_FOUND,
//         70 SERVICE_ERROR, 80 SERVER_ERROR, 90 CLIENT_ERROR,
//         100 SERVER_THREADPOOL_EXHAUSTED_ERROR
//   4-11  request id (int64)
//   12-15 body length (int32)
// Request body (hessian2 values in a row): dubbo version, service path,
// service version, method name, parameter descriptor (JVM style, e.g.
// "Ljava/lang/String;I"), one value per parameter, attachments (a map).
// Response body when status is OK: an int flag, then
//   0 RESPONSE_WITH_EXCEPTION                  exception
//   1 RESPONSE_VALUE                           value
//   2 RESPONSE_NULL_VALUE                      -
//   3 RESPONSE_WITH_EXCEPTION_WITH_ATTACHMENTS exception, attachments
//   4 RESPONSE_VALUE_WITH_ATTACHMENTS          value, attachments
//   5 RESPONSE_NULL_VALUE_WITH_ATTACHMENTS     attachments
// and otherwise a hessian2 string (the error message). Heartbeats are events
// whose body is hessian2 null; the answer to a two-way one is an event
// response with the same id.

const net = require('net');
const hessian = require('hessian.js');

const HEADER_LENGTH = 16;
const MAGIC = 0xdabb;
const FLAG_REQUEST = 0x80;
const FLAG_TWOWAY = 0x40;
const FLAG_EVENT = 0x20;
const SERIALIZATION_MASK = 0x1f;
const HESSIAN2 = 2;
const MAX_BODY = 8 * 1024 * 1024; // Dubbo's default payload limit

const STATUS = {
  OK: 20, CLIENT_TIMEOUT: 30, SERVER_TIMEOUT: 31, BAD_REQUEST: 40, BAD_RESPONSE: 50,
  SERVICE_NOT_FOUND: 60, SERVICE_ERROR: 70, SERVER_ERROR: 80, CLIENT_ERROR: 90,
  SERVER_THREADPOOL_EXHAUSTED_ERROR: 100,
};

const RESPONSE_FLAG = {
  WITH_EXCEPTION: 0, VALUE: 1, NULL_VALUE: 2,
  WITH_EXCEPTION_WITH_ATTACHMENTS: 3, VALUE_WITH_ATTACHMENTS: 4, NULL_VALUE_WITH_ATTACHMENTS: 5,
};

// Dubbo answers with attachments (flags 3/4/5) when the request's dubbo
// version is 2.0.2 up to 2.99.99 (Version.isSupportResponseAttachment).
function supportsResponseAttachments(dubboVersion) {
  const parts = String(dubboVersion || '').split('.').map(Number);
  if (parts.length < 3 || parts.some(n => !Number.isInteger(n))) return false;
  const v = parts[0] * 1000000 + parts[1] * 10000 + parts[2] * 100;
  return v >= 2000200 && v <= 2999999;
}

function header(flags, status, id, bodyLength) {
  const h = Buffer.alloc(HEADER_LENGTH);
  h.writeUInt16BE(MAGIC, 0);
  h[2] = flags;
  h[3] = status;
  h.writeBigInt64BE(BigInt(id), 4);
  h.writeInt32BE(bodyLength, 12);
  return h;
}

function frame(flags, status, id, body) {
  return Buffer.concat([ header(flags, status, id, body.length), body ]);
}

// The number of parameters a JVM descriptor names ("" for none).
function parameterCount(desc) {
  let n = 0;
  for (let i = 0; i < desc.length; i++) {
    const c = desc[i];
    if (c === '[') continue; // an array of what follows
    if (c === 'L') {
      const end = desc.indexOf(';', i);
      if (end < 0) throw new Error(`bad parameter descriptor ${JSON.stringify(desc)}`);
      i = end;
    } else if (!'ZBCDFIJSV'.includes(c)) {
      throw new Error(`bad parameter descriptor ${JSON.stringify(desc)}`);
    }
    n++;
  }
  return n;
}

// A request body. args: hessian.js values (plain JS values or
// { $class, $ } for an explicit Java type); paramDesc: the JVM descriptor.
function encodeRequestBody({ dubboVersion = '2.0.2', service, version = '0.0.0', method, paramDesc = '', args = [], attachments = {} }) {
  const e = new hessian.EncoderV2();
  e.write(dubboVersion);
  e.write(service);
  e.write(version);
  e.write(method);
  e.write(paramDesc);
  for (const arg of args) e.write(arg);
  e.write({ $class: 'java.util.HashMap', $: Object.assign({ path: service, interface: service, version }, attachments) });
  return e.get();
}

function encodeRequest(id, call, { twoWay = true } = {}) {
  return frame(FLAG_REQUEST | (twoWay ? FLAG_TWOWAY : 0) | HESSIAN2, 0, id, encodeRequestBody(call));
}

function decodeRequestBody(body) {
  const d = new hessian.DecoderV2(body);
  const dubboVersion = d.read();
  const service = d.read();
  const version = d.read();
  const method = d.read();
  const paramDesc = d.read() || '';
  const args = [];
  for (let n = parameterCount(paramDesc); n > 0; n--) args.push(d.read());
  const attachments = d.byteBuffer.position() < body.length ? d.read() || {} : {};
  return { dubboVersion, service, version, method, paramDesc, args, attachments };
}

// A response with status OK carrying a value (or, with `exception`, a Java
// exception), flagged with attachments or not.
function encodeValueResponse(id, value, { withAttachments = false, attachments = { dubbo: '2.0.2' }, exception = null } = {}) {
  const e = new hessian.EncoderV2();
  if (exception) {
    e.writeInt(withAttachments ? RESPONSE_FLAG.WITH_EXCEPTION_WITH_ATTACHMENTS : RESPONSE_FLAG.WITH_EXCEPTION);
    e.write(exception);
  } else if (value === null || value === undefined) {
    e.writeInt(withAttachments ? RESPONSE_FLAG.NULL_VALUE_WITH_ATTACHMENTS : RESPONSE_FLAG.NULL_VALUE);
  } else {
    e.writeInt(withAttachments ? RESPONSE_FLAG.VALUE_WITH_ATTACHMENTS : RESPONSE_FLAG.VALUE);
    e.write(value);
  }
  if (withAttachments) e.write({ $class: 'java.util.HashMap', $: attachments });
  return frame(HESSIAN2, STATUS.OK, id, e.get());
}

// An error response: any status but OK, the body a hessian2 string.
function encodeErrorResponse(id, status, message) {
  const e = new hessian.EncoderV2();
  e.write(String(message));
  return frame(HESSIAN2, status, id, e.get());
}

const NULL_BODY = Buffer.from([ 0x4e ]); // hessian2 null

function encodeHeartbeat(id, { twoWay = true } = {}) {
  return frame(FLAG_REQUEST | (twoWay ? FLAG_TWOWAY : 0) | FLAG_EVENT | HESSIAN2, 0, id, NULL_BODY);
}

function encodeHeartbeatResponse(id) {
  return frame(FLAG_EVENT | HESSIAN2, STATUS.OK, id, NULL_BODY);
}

// The parts of a response body: { flag, value, exception, attachments } for
// status OK, { message } otherwise.
function decodeResponse(f) {
  if (f.event) return {};
  const d = new hessian.DecoderV2(f.body);
  if (f.status !== STATUS.OK) {
    let message;
    try {
      message = d.read();
    } catch (err) {
      message = f.body.toString('latin1');
    }
    return { message };
  }
  const flag = d.readInt();
  const out = { flag };
  if (flag === RESPONSE_FLAG.VALUE || flag === RESPONSE_FLAG.VALUE_WITH_ATTACHMENTS) out.value = d.read();
  if (flag === RESPONSE_FLAG.NULL_VALUE || flag === RESPONSE_FLAG.NULL_VALUE_WITH_ATTACHMENTS) out.value = null;
  if (flag === RESPONSE_FLAG.WITH_EXCEPTION || flag === RESPONSE_FLAG.WITH_EXCEPTION_WITH_ATTACHMENTS) out.exception = d.read();
  if (flag >= 3) out.attachments = d.read();
  return out;
}

// Splits a byte stream into frames: { flags, request, twoWay, event,
// serialization, status, id (BigInt), body, raw }. Throws on a bad magic or
// an oversized body (the caller closes the connection).
class FrameReader {
  constructor() {
    this.buffer = Buffer.alloc(0);
  }

  push(chunk) {
    this.buffer = this.buffer.length ? Buffer.concat([ this.buffer, chunk ]) : chunk;
    const frames = [];
    while (this.buffer.length >= HEADER_LENGTH) {
      const b = this.buffer;
      if (b.readUInt16BE(0) !== MAGIC) throw new Error(`bad magic 0x${b.readUInt16BE(0).toString(16)}`);
      const length = b.readInt32BE(12);
      if (length < 0 || length > MAX_BODY) throw new Error(`bad body length ${length}`);
      if (b.length < HEADER_LENGTH + length) break;
      const flags = b[2];
      frames.push({
        flags,
        request: (flags & FLAG_REQUEST) !== 0,
        twoWay: (flags & FLAG_TWOWAY) !== 0,
        event: (flags & FLAG_EVENT) !== 0,
        serialization: flags & SERIALIZATION_MASK,
        status: b[3],
        id: b.readBigInt64BE(4),
        body: b.subarray(HEADER_LENGTH, HEADER_LENGTH + length),
        raw: b.subarray(0, HEADER_LENGTH + length),
      });
      this.buffer = b.subarray(HEADER_LENGTH + length);
    }
    return frames;
  }
}

// A client on a plain socket, for what dubbo2.js does not let a test do
// (heartbeats, chosen request ids, reading the status byte): request(id,
// frameBuffer) resolves with the response frame of that id (plus `at`, the
// time it arrived, and `decoded`, decodeResponse's result).
class RawDubboConnection {
  constructor(address) {
    const colon = address.lastIndexOf(':');
    this.host = address.slice(0, colon);
    this.port = Number(address.slice(colon + 1));
    this.reader = new FrameReader();
    this.waiting = new Map(); // String(id) -> { resolve, reject, timer }
    this.unsolicited = [];    // frames nobody waited for (e.g. the sidecar's own heartbeats)
    this.closed = false;
  }

  connect(timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: this.host, port: this.port });
      socket.setNoDelay(true);
      const timer = setTimeout(() => { socket.destroy(); reject(new Error('connect timeout')); }, timeoutMs);
      socket.once('connect', () => { clearTimeout(timer); resolve(this); });
      socket.once('error', err => { clearTimeout(timer); reject(err); });
      socket.on('data', chunk => this.onData(chunk));
      socket.on('close', () => {
        this.closed = true;
        for (const waiter of this.waiting.values()) {
          clearTimeout(waiter.timer);
          waiter.reject(new Error('the connection closed'));
        }
        this.waiting.clear();
      });
      socket.on('error', () => {});
      this.socket = socket;
    });
  }

  onData(chunk) {
    let frames;
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      this.socket.destroy(err);
      return;
    }
    for (const f of frames) {
      const key = String(f.id);
      const waiter = !f.request ? this.waiting.get(key) : undefined;
      if (!waiter) {
        // The peer's own heartbeat: answer it, like any Dubbo endpoint.
        if (f.request && f.event && f.twoWay) this.socket.write(encodeHeartbeatResponse(f.id));
        this.unsolicited.push(f);
        continue;
      }
      this.waiting.delete(key);
      clearTimeout(waiter.timer);
      f.at = Date.now();
      f.decoded = decodeResponse(f);
      waiter.resolve(f);
    }
  }

  // Writes `bytes` and waits for the response with this id.
  request(id, bytes, timeoutMs = 15000) {
    const key = String(id);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(key);
        reject(new Error(`no response to request ${key} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(key, { resolve, reject, timer });
      this.socket.write(bytes);
    });
  }

  call(id, call, timeoutMs) {
    return this.request(id, encodeRequest(id, call), timeoutMs);
  }

  heartbeat(id, timeoutMs) {
    return this.request(id, encodeHeartbeat(id), timeoutMs);
  }

  close() {
    if (this.socket) this.socket.destroy();
  }
}

module.exports = {
  HEADER_LENGTH, MAGIC, FLAG_REQUEST, FLAG_TWOWAY, FLAG_EVENT, HESSIAN2, STATUS, RESPONSE_FLAG,
  supportsResponseAttachments, parameterCount, header, frame,
  encodeRequestBody, encodeRequest, decodeRequestBody,
  encodeValueResponse, encodeErrorResponse, encodeHeartbeat, encodeHeartbeatResponse, decodeResponse,
  FrameReader, RawDubboConnection,
};
