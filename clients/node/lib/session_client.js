'use strict';

// CairnSessionClient: one bidirectional `Session` stream to a Cairn session
// server (proto/cairn/registry/v1/registry.proto) and the registrations made
// over it. CairnRegistry (cairn_registry.js) is the sofa-rpc-node facade;
// this is the part that speaks the protocol.
//
// Connection: the client keeps one stream, starting with servers[0]. It
// sends Hello; the Hello's Result makes the stream "connected" (ready()
// resolves on the first one) and every live registration is then sent again
// with its registration id, so after a reconnect the server takes the
// publishers over without a gap. When the stream ends, or nothing arrives for
// max(3 * keepaliveInterval, 3 s) (a ping goes out every keepaliveInterval,
// and the server answers each with a pong), the client moves to the next
// server after a backoff: reconnectBackoffInitial, doubling per failed
// attempt up to reconnectBackoffMax, back to initial once a server answers.
//
// Registrations: publishers are keyed by (dataInfoId, url) and never change
// (version 1, data = [url]); a second register of the same pair is a no-op.
// Subscribers are keyed by dataInfoId: one server-side subscriber serves
// every listener of that dataInfoId, and goes away with the last listener.
//
// Pushes: a push whose datum version is not above the last one delivered to
// that subscriber is dropped (the first push is always delivered); every
// push is acked after the listeners ran.
//
// Errors: a request the server refuses rejects with a CairnRegistryError
// carrying the google.rpc code (`code`, `codeName`) and the server's message.
// A request waits at most requestTimeout (including waiting for a
// connection); then it rejects with DEADLINE_EXCEEDED (connected) or the
// last stream status / UNAVAILABLE (not connected).
//
// Everything runs on the Node event loop: no locks, listeners are called
// synchronously from the stream's data handler (a listener may call
// subscribe/unSubscribe/register/unRegister).

const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const Base = require('sdk-base');
const { dataInfoKey, dataInfoIdString } = require('./data_info');

const DEFAULT_PROTO_PATH = path.resolve(__dirname, '../../../proto/cairn/registry/v1/registry.proto');

const SCOPES = {
  zone: 'SCOPE_ZONE',
  datacenter: 'SCOPE_DATACENTER',
  global: 'SCOPE_GLOBAL',
};

const DEFAULTS = {
  keepaliveInterval: 5000,
  keepaliveTimeout: 0, // asked of the server in Hello; 0 = the server's default
  reconnectBackoffInitial: 100,
  reconnectBackoffMax: 5000,
  requestTimeout: 10000,
  closeTimeout: 2000, // how long close() waits for the server to end the stream
  scope: 'datacenter',
  appName: '',
  zone: '',
};

class CairnRegistryError extends Error {
  // `refused`: the server answered with this code (rather than the client
  // giving up waiting, or being closed).
  constructor(code, message, refused = false) {
    super(message);
    this.name = 'CairnRegistryError';
    this.code = code;
    this.codeName = grpc.status[code] || `CODE_${code}`;
    this.refused = refused;
  }
}

// One loaded Registry service constructor per proto file.
const serviceCache = new Map();

function loadService(protoPath) {
  let service = serviceCache.get(protoPath);
  if (!service) {
    const definition = protoLoader.loadSync(protoPath, {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    service = grpc.loadPackageDefinition(definition).cairn.registry.v1.Registry;
    serviceCache.set(protoPath, service);
  }
  return service;
}

function parseServers(servers) {
  const list = typeof servers === 'string' ? servers.split(',') : servers;
  if (!Array.isArray(list)) throw new TypeError('[CairnRegistry] options.servers must be an array of "host:port"');
  const out = list.map(s => String(s).trim()).filter(s => s !== '');
  if (out.length === 0) throw new TypeError('[CairnRegistry] options.servers needs at least one "host:port"');
  return out;
}

// options.tls: { ca, cert, key }, each a PEM file path or a Buffer. `ca` is
// required (the server's certificate must chain to it and name the address
// dialled); `cert` and `key` come together (mTLS: the registry requires
// them when it has a CA). Files are read when a channel is made, so a
// rotated client certificate is used for the next new channel. Throws a
// TypeError naming what is wrong.
function parseTls(tls) {
  if (tls === undefined || tls === null) return null;
  if (typeof tls !== 'object') throw new TypeError('[CairnRegistry] options.tls must be { ca, cert, key }');
  for (const name of Object.keys(tls)) {
    if (![ 'ca', 'cert', 'key' ].includes(name)) {
      throw new TypeError(`[CairnRegistry] options.tls: unknown key '${name}' (ca, cert, key)`);
    }
  }
  const source = name => {
    const value = tls[name];
    if (value === undefined || value === null || value === '') return null;
    if (Buffer.isBuffer(value)) return value;
    if (typeof value !== 'string') {
      throw new TypeError(`[CairnRegistry] options.tls.${name} must be a file path or a Buffer`);
    }
    return value;
  };
  const out = { ca: source('ca'), cert: source('cert'), key: source('key') };
  if (!out.ca) throw new TypeError('[CairnRegistry] options.tls.ca is required (the CA of the registry certificate)');
  if (!out.cert !== !out.key) throw new TypeError('[CairnRegistry] options.tls.cert and options.tls.key come together');
  readTls(out); // fail at construction on an unreadable file, not on each reconnect
  return out;
}

function readTls(tls) {
  const read = (name) => {
    const value = tls[name];
    if (!value || Buffer.isBuffer(value)) return value;
    try {
      return fs.readFileSync(value);
    } catch (err) {
      throw new TypeError(`[CairnRegistry] options.tls.${name}: cannot read '${value}': ${err.code || err.message}`);
    }
  };
  return { ca: read('ca'), cert: read('cert'), key: read('key') };
}

function positiveMs(options, name) {
  const value = options[name];
  if (!Number.isFinite(value) || value < 0) {
    throw new TypeError(`[CairnRegistry] options.${name} must be a number of milliseconds >= 0`);
  }
  return value;
}

// Every data string of a push, across zones and publishers, without
// duplicates, sorted (so that listeners see a stable order).
function addressesOf(push) {
  const seen = new Set();
  for (const zone of push.zones || []) {
    for (const publisher of zone.publishers || []) {
      for (const data of publisher.data || []) {
        if (typeof data === 'string' && data !== '') seen.add(data);
      }
    }
  }
  return Array.from(seen).sort();
}

// A promise that callers may await, and that never counts as an unhandled
// rejection when they don't (sofa-rpc-node ignores what subscribe returns).
function handled(promise) {
  promise.catch(() => {});
  return promise;
}

class CairnSessionClient extends Base {
  constructor(options = {}) {
    super(options);
    const opts = Object.assign({}, DEFAULTS, options);
    this._servers = parseServers(opts.servers);
    for (const name of [ 'keepaliveInterval', 'keepaliveTimeout', 'reconnectBackoffInitial',
      'reconnectBackoffMax', 'requestTimeout', 'closeTimeout' ]) {
      positiveMs(opts, name);
    }
    if (!SCOPES[opts.scope]) {
      throw new TypeError('[CairnRegistry] options.scope must be one of ' + Object.keys(SCOPES).join(', '));
    }
    this._opts = opts;
    this._tls = parseTls(opts.tls);
    this._logger = opts.logger || console;
    this._clientId = opts.clientId ||
      `sofa-node-${os.hostname()}-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
    if (Buffer.byteLength(this._clientId) > 128) {
      throw new TypeError('[CairnRegistry] options.clientId is longer than 128 bytes');
    }
    this._Service = loadService(opts.protoPath || DEFAULT_PROTO_PATH);
    this._channels = new Array(this._servers.length).fill(null);
    this._serverIndex = 0;
    this._backoff = opts.reconnectBackoffInitial;

    // The current stream. _gen numbers streams; events of an older stream
    // are ignored. _activeGen is 0 while there is no stream.
    this._gen = 0;
    this._activeGen = 0;
    this._call = null;
    this._connected = false;
    this._lastReceived = 0;
    this._lastPing = 0;
    this._endReason = null; // why we cancelled the stream ourselves
    this._lastStreamError = null; // { code, details, server } of the last failed stream

    this._nextRequestId = 1;
    this._requests = new Map(); // String(request_id) -> { kind, gen, reg?, resolve?, reject?, timer? }
    this._regSeq = 0;
    this._publishers = new Map(); // registration id -> publisher reg
    this._publisherIds = new Map(); // dataInfoId + '\n' + url -> registration id
    this._subscribers = new Map(); // registration id -> subscriber reg
    this._subscriberIds = new Map(); // dataInfoId -> registration id

    this._closed = false;
    this._reconnectTimer = null;
    this._keepaliveTimer = null;
    this._stats = {
      connections: 0, reconnects: 0, connectFailures: 0, pushesReceived: 0,
      pushesDelivered: 0, pushesDropped: 0, replaysRefused: 0,
    };

    this._connect();
  }

  // ------------------------------------------------------------ public API

  get clientId() { return this._clientId; }
  get connected() { return this._connected; }
  get connectedServer() { return this._connected ? this._servers[this._serverIndex] : null; }
  get stats() { return Object.assign({}, this._stats); }

  // Publishes config.url under the config's dataInfoId. Resolves once the
  // server accepted it; rejects with the server's error (no registration is
  // kept then).
  async register(config) {
    this._checkOpen();
    if (!config || typeof config.url !== 'string' || config.url === '') {
      throw new TypeError('[CairnRegistry] register(config): config.url is required');
    }
    const key = dataInfoKey(config);
    const keyStr = dataInfoIdString(key);
    const mapKey = keyStr + '\n' + config.url;
    const existing = this._publishers.get(this._publisherIds.get(mapKey));
    if (existing) {
      if (existing.confirmed) return;
      return this._waitFor(existing);
    }
    const reg = {
      kind: 'publisher', id: this._newRegistrationId('p'), key, keyStr, mapKey,
      url: config.url, version: 1, confirmed: false, waiters: [],
    };
    this._publishers.set(reg.id, reg);
    this._publisherIds.set(mapKey, reg.id);
    const done = this._waitFor(reg);
    if (this._connected) this._sendRegistration(reg);
    return done;
  }

  // Removes the publisher of config.url. Resolves when the server confirmed
  // (or at once when there is no stream: the server drops a stream's
  // registrations with it). Unknown registrations resolve too.
  async unRegister(config) {
    this._checkOpen();
    if (!config || typeof config.url !== 'string') {
      throw new TypeError('[CairnRegistry] unRegister(config): config.url is required');
    }
    const keyStr = dataInfoIdString(dataInfoKey(config));
    const reg = this._publishers.get(this._publisherIds.get(keyStr + '\n' + config.url));
    if (!reg) return;
    this._dropRegistration(reg, new CairnRegistryError(grpc.status.CANCELLED,
      `unRegister(${config.url}) was called before the server confirmed the registration`));
    return this._unregisterRemote(reg.id);
  }

  // Adds a listener of the config's dataInfoId. The listener gets the
  // provider URLs (an array of strings, possibly empty) on every newer push;
  // a listener added to a dataInfoId that already has a list gets that list
  // on the next turn of the event loop. Returns a promise of the server's
  // answer to the subscription (which may be ignored); a refusal is also
  // emitted as 'error'.
  subscribe(config, listener) {
    if (typeof listener !== 'function') {
      throw new TypeError('[CairnRegistry] subscribe(config, listener): listener must be a function');
    }
    if (this._closed) return handled(Promise.reject(this._closedError()));
    const key = dataInfoKey(config);
    const keyStr = dataInfoIdString(key);
    let reg = this._subscribers.get(this._subscriberIds.get(keyStr));
    if (reg) {
      reg.listeners.add(listener);
      if (reg.addressList && !reg.catchingUp.has(listener)) {
        // The current list, unless a push reaches the listener first.
        reg.catchingUp.add(listener);
        setImmediate(() => {
          if (!reg.catchingUp.delete(listener)) return;
          if (this._isLive(reg) && reg.listeners.has(listener)) {
            this._callListener(reg, listener, reg.addressList);
          }
        });
      }
      return handled(reg.confirmed ? Promise.resolve() : this._waitFor(reg));
    }
    reg = {
      kind: 'subscriber', id: this._newRegistrationId('s'), key, keyStr,
      listeners: new Set([ listener ]), confirmed: false, waiters: [],
      delivered: false, deliveredVersion: 0n, addressList: null,
      catchingUp: new Set(), // listeners added after a push, waiting for the current list
    };
    this._subscribers.set(reg.id, reg);
    this._subscriberIds.set(keyStr, reg.id);
    const done = this._waitFor(reg);
    if (this._connected) this._sendRegistration(reg);
    done.catch(err => {
      // Refusals only: a timeout keeps the subscription (it is sent again on
      // every connection), and CANCELLED means unSubscribe or close.
      if (!this._closed && err.refused) this.emit('error', err);
    });
    return handled(done);
  }

  // Removes `listener` (every listener of the dataInfoId when omitted). The
  // server-side subscriber goes away with the last listener; the returned
  // promise settles with the server's answer to that.
  unSubscribe(config, listener) {
    if (this._closed) return handled(Promise.resolve());
    const keyStr = dataInfoIdString(dataInfoKey(config));
    const reg = this._subscribers.get(this._subscriberIds.get(keyStr));
    if (!reg) return handled(Promise.resolve());
    if (listener) {
      reg.listeners.delete(listener);
    } else {
      reg.listeners.clear();
    }
    if (reg.listeners.size > 0) return handled(Promise.resolve());
    this._dropRegistration(reg, new CairnRegistryError(grpc.status.CANCELLED,
      'unSubscribe was called before the server confirmed the subscription'));
    return handled(this._unregisterRemote(reg.id));
  }

  // sdk-base calls this once from close(): ends the stream, rejects every
  // pending call with CANCELLED and closes the channels.
  async _close() {
    this._closed = true;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    this._stopKeepalive();
    const err = this._closedError();
    for (const reg of [ ...this._publishers.values(), ...this._subscribers.values() ]) {
      this._dropRegistration(reg, err);
    }
    for (const [ id, request ] of this._requests) {
      this._requests.delete(id);
      clearTimeout(request.timer);
      if (request.reject) request.reject(err);
    }
    const call = this._call;
    this._call = null;
    this._activeGen = 0;
    this._connected = false;
    if (call) await this._endCall(call);
    for (const channel of this._channels) {
      if (channel) channel.close();
    }
    this._channels.fill(null);
    if (!this.isReady && this._readyCallbacks.length > 0) this.ready(err);
  }

  // ------------------------------------------------------------ registrations

  _checkOpen() {
    if (this._closed) throw this._closedError();
  }

  _closedError() {
    return new CairnRegistryError(grpc.status.CANCELLED, 'the Cairn registry client is closed');
  }

  _newRegistrationId(kind) {
    this._regSeq += 1;
    return `${this._clientId}-${kind}${this._regSeq}`;
  }

  // A promise settled when `reg` is confirmed or refused, or after
  // requestTimeout.
  _waitFor(reg) {
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, timer: null };
      waiter.timer = setTimeout(() => this._onWaiterTimeout(reg, waiter), this._opts.requestTimeout);
      reg.waiters.push(waiter);
    });
  }

  _onWaiterTimeout(reg, waiter) {
    const index = reg.waiters.indexOf(waiter);
    if (index < 0) return;
    reg.waiters.splice(index, 1);
    waiter.reject(this._timeoutError());
    // Nobody waits for an unconfirmed publisher any more: forget it, and
    // tell the server in case our request reached it. (A subscriber stays:
    // its listeners want addresses whenever a server answers.)
    if (reg.kind === 'publisher' && !reg.confirmed && reg.waiters.length === 0 && this._isLive(reg)) {
      this._dropRegistration(reg, null);
      if (this._connected) this._send({ request_id: 0, unregister: { registration_id: reg.id } });
    }
  }

  _timeoutError() {
    const ms = this._opts.requestTimeout;
    if (this._connected) {
      return new CairnRegistryError(grpc.status.DEADLINE_EXCEEDED,
        `no answer from the Cairn registry at ${this._servers[this._serverIndex]} within ${ms} ms`);
    }
    const last = this._lastStreamError;
    const detail = last ? `; last error from ${last.server}: ${last.details}` : '';
    return new CairnRegistryError(last ? last.code : grpc.status.UNAVAILABLE,
      `no Cairn registry server (${this._servers.join(', ')}) answered within ${ms} ms${detail}`);
  }

  _isLive(reg) {
    const map = reg.kind === 'publisher' ? this._publishers : this._subscribers;
    return map.get(reg.id) === reg;
  }

  // Forgets a registration locally and rejects whoever waits for it (when
  // `err` is given).
  _dropRegistration(reg, err) {
    if (reg.kind === 'publisher') {
      if (this._publishers.get(reg.id) === reg) this._publishers.delete(reg.id);
      if (this._publisherIds.get(reg.mapKey) === reg.id) this._publisherIds.delete(reg.mapKey);
    } else {
      if (this._subscribers.get(reg.id) === reg) this._subscribers.delete(reg.id);
      if (this._subscriberIds.get(reg.keyStr) === reg.id) this._subscriberIds.delete(reg.keyStr);
      reg.listeners.clear();
      reg.catchingUp.clear();
    }
    const waiters = reg.waiters.splice(0);
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      if (err) waiter.reject(err);
    }
  }

  _settle(reg, err) {
    const waiters = reg.waiters.splice(0);
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      if (err) {
        waiter.reject(err);
      } else {
        waiter.resolve();
      }
    }
  }

  // Sends the Publish or Subscribe of `reg` on the current stream.
  _sendRegistration(reg) {
    const message = { request_id: this._newRequestId() };
    if (reg.kind === 'publisher') {
      message.publish = {
        registration_id: reg.id, key: reg.key, data: [ reg.url ], version: reg.version,
      };
    } else {
      message.subscribe = {
        registration_id: reg.id, key: reg.key, scope: SCOPES[this._opts.scope], zone: '',
      };
    }
    this._requests.set(String(message.request_id), { kind: 'register', gen: this._activeGen, reg });
    this._send(message);
  }

  // Sends Unregister and waits for the answer. OK when there is no stream
  // (the server drops the registration with the stream) or the server no
  // longer knows the id.
  _unregisterRemote(registrationId) {
    if (!this._connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const requestId = this._newRequestId();
      const request = { kind: 'unregister', gen: this._activeGen, resolve, reject, timer: null };
      request.timer = setTimeout(() => {
        this._requests.delete(String(requestId));
        reject(this._timeoutError());
      }, this._opts.requestTimeout);
      this._requests.set(String(requestId), request);
      this._send({ request_id: requestId, unregister: { registration_id: registrationId } });
    });
  }

  _newRequestId() {
    const id = this._nextRequestId;
    this._nextRequestId += 1;
    return id;
  }

  // ------------------------------------------------------------ the stream

  _channel(index) {
    if (!this._channels[index]) {
      const opts = this._opts;
      let credentials = grpc.credentials.createInsecure();
      if (this._tls) {
        // Throws if a file became unreadable (mid-rotation?): _connect counts
        // that as a failed stream, and the next attempt reads them again.
        const files = readTls(this._tls);
        credentials = grpc.credentials.createSsl(files.ca, files.key || null, files.cert || null);
      }
      this._channels[index] = new this._Service(this._servers[index], credentials,
        Object.assign({
          'grpc.max_receive_message_length': 64 * 1024 * 1024,
          // The channel's own reconnect backoff must not outlast ours, or a
          // restarted server is found late.
          'grpc.initial_reconnect_backoff_ms': Math.max(opts.reconnectBackoffInitial, 100),
          'grpc.max_reconnect_backoff_ms': Math.max(opts.reconnectBackoffMax, 100),
        }, opts.channelOptions || {}));
    }
    return this._channels[index];
  }

  _connect() {
    if (this._closed) return;
    this._reconnectTimer = null;
    const gen = ++this._gen;
    const server = this._servers[this._serverIndex];
    let call;
    try {
      call = this._channel(this._serverIndex).Session();
    } catch (err) {
      // A malformed target and the like: count it as a failed stream.
      this._activeGen = gen;
      this._onStreamEnd(gen, { code: grpc.status.INVALID_ARGUMENT, details: err.message });
      return;
    }
    this._call = call;
    this._activeGen = gen;
    this._connected = false;
    this._endReason = null;
    this._lastReceived = Date.now();
    this._lastPing = Date.now();
    call.on('data', message => this._onMessage(gen, message));
    call.on('error', err => this._onStreamEnd(gen, err));
    call.on('status', status => this._onStreamEnd(gen, status));
    this._startKeepalive(gen);
    const hello = {
      client_id: this._clientId,
      app_name: this._opts.appName || '',
      zone: this._opts.zone || '',
      keepalive_timeout_ms: this._opts.keepaliveTimeout,
      // What _onConnected replays right after the Hello's answer: a
      // restarted registry withholds pushes until its previous clients have
      // replayed (registry.proto, Hello.replay_registrations). A registration
      // added or removed before that answer makes the count one off, which
      // only ends the server's wait a little early or at its timeout.
      replay_registrations: this._publishers.size + this._subscribers.size,
    };
    const requestId = this._newRequestId();
    this._requests.set(String(requestId), { kind: 'hello', gen, server });
    this._send({ request_id: requestId, hello });
  }

  _send(message) {
    if (!this._call || this._activeGen === 0) return;
    try {
      this._call.write(message);
    } catch (err) {
      // The stream is failing; its 'error'/'status' event follows.
      this._logger.warn('[CairnRegistry] write failed: %s', err.message);
    }
  }

  _onMessage(gen, message) {
    if (gen !== this._activeGen) return;
    this._lastReceived = Date.now();
    switch (message.body) {
      case 'result':
        this._onResult(gen, message.result);
        break;
      case 'push':
        this._onPush(gen, message.push);
        break;
      default:
        break; // pong: _lastReceived is all it is for
    }
  }

  _onResult(gen, result) {
    const id = String(result.request_id);
    const request = this._requests.get(id);
    if (!request || request.gen !== gen) return;
    this._requests.delete(id);
    const code = result.code;
    const err = code === grpc.status.OK ? null : new CairnRegistryError(code, result.message, true);
    switch (request.kind) {
      case 'hello':
        if (err) {
          // Our Hello is refused: nothing will work on this stream. Say so,
          // and retry (with backoff) in case another server thinks otherwise.
          this.emit('error', err);
          this._cancelStream(`Hello refused: ${result.message}`, code);
        } else {
          this._onConnected(request.server);
        }
        break;
      case 'register': {
        const reg = request.reg;
        if (!this._isLive(reg)) break; // unregistered meanwhile
        if (!err) {
          reg.confirmed = true;
          this._settle(reg, null);
        } else if (!reg.confirmed) {
          this._dropRegistration(reg, err);
        } else {
          // A replay was refused: the registration stays ours, and is sent
          // again on the next connection.
          this._stats.replaysRefused += 1;
          this.emit('error', new CairnRegistryError(code,
            `the server refused to take back ${reg.id} (${reg.keyStr}): ${result.message}`));
        }
        break;
      }
      case 'unregister':
        clearTimeout(request.timer);
        if (!err || code === grpc.status.NOT_FOUND) {
          request.resolve();
        } else {
          request.reject(err);
        }
        break;
      default:
        break;
    }
  }

  _onConnected(server) {
    this._connected = true;
    this._backoff = this._opts.reconnectBackoffInitial;
    this._lastStreamError = null;
    this._stats.connections += 1;
    if (this._stats.connections > 1) this._stats.reconnects += 1;
    this._logger.info('[CairnRegistry] connected to %s as %s; replaying %d publishers and %d subscribers',
      server, this._clientId, this._publishers.size, this._subscribers.size);
    for (const reg of this._publishers.values()) this._sendRegistration(reg);
    for (const reg of this._subscribers.values()) this._sendRegistration(reg);
    if (!this.isReady) this.ready(true);
    this.emit('connected', server);
  }

  _onPush(gen, push) {
    this._stats.pushesReceived += 1;
    const reg = this._subscribers.get(push.registration_id);
    if (reg) {
      const version = BigInt(push.version || 0);
      if (!reg.delivered || version > reg.deliveredVersion) {
        const list = push.empty ? [] : addressesOf(push);
        reg.delivered = true;
        reg.deliveredVersion = version;
        reg.addressList = list;
        this._stats.pushesDelivered += 1;
        reg.catchingUp.clear();
        for (const listener of Array.from(reg.listeners)) {
          if (reg.listeners.has(listener)) this._callListener(reg, listener, list);
        }
      } else {
        this._stats.pushesDropped += 1;
      }
    } else {
      this._stats.pushesDropped += 1;
    }
    if (gen === this._activeGen) {
      this._send({ request_id: 0, push_ack: { registration_id: push.registration_id, push_id: push.push_id } });
    }
  }

  _callListener(reg, listener, list) {
    try {
      listener(list.slice());
    } catch (thrown) {
      const err = new Error(`[CairnRegistry] a listener of ${reg.keyStr} threw: ${
        thrown instanceof Error ? thrown.message : String(thrown)}`);
      err.cause = thrown;
      this.emit('error', err);
    }
  }

  // Called for 'error' and 'status' of a stream (both may come): the first
  // one ends the stream and schedules the reconnect.
  _onStreamEnd(gen, status) {
    if (gen !== this._activeGen) return;
    const server = this._servers[this._serverIndex];
    const wasConnected = this._connected;
    this._activeGen = 0;
    this._call = null;
    this._connected = false;
    this._stopKeepalive();
    for (const [ id, request ] of this._requests) {
      if (request.gen !== gen) continue;
      this._requests.delete(id);
      // The server drops this stream's registrations, so a pending
      // unregister has happened; registrations wait for the replay.
      if (request.kind === 'unregister') {
        clearTimeout(request.timer);
        request.resolve();
      }
    }
    if (this._closed) return;
    const reason = this._endReason;
    const code = reason ? reason.code : (status && status.code !== undefined ? status.code : grpc.status.UNKNOWN);
    const details = reason ? reason.details : (status && (status.details || status.message)) || 'stream ended';
    this._lastStreamError = { code, details, server };
    if (!wasConnected) this._stats.connectFailures += 1;
    this._logger.warn('[CairnRegistry] stream to %s ended (%s: %s); reconnecting to %s in %d ms',
      server, grpc.status[code] || code, details,
      this._servers[(this._serverIndex + 1) % this._servers.length], this._backoff);
    if (wasConnected) this.emit('disconnected', server);
    this._serverIndex = (this._serverIndex + 1) % this._servers.length;
    const delay = this._backoff;
    this._backoff = Math.min(this._backoff * 2, this._opts.reconnectBackoffMax);
    this._reconnectTimer = setTimeout(() => this._connect(), delay);
  }

  _cancelStream(details, code) {
    if (!this._call) return;
    this._endReason = { code, details };
    this._call.cancel();
  }

  _startKeepalive(gen) {
    this._stopKeepalive();
    const interval = Math.max(this._opts.keepaliveInterval, 10);
    const deadAfter = Math.max(3 * interval, 3000);
    const tick = Math.max(Math.min(interval, 1000), 10);
    let nonce = 0;
    this._keepaliveTimer = setInterval(() => {
      if (gen !== this._activeGen) return;
      const now = Date.now();
      if (now - this._lastReceived > deadAfter) {
        this._cancelStream(`nothing received for ${now - this._lastReceived} ms`,
          grpc.status.DEADLINE_EXCEEDED);
        return;
      }
      if (this._connected && now - this._lastPing >= interval) {
        this._lastPing = now;
        nonce += 1;
        this._send({ request_id: 0, ping: { nonce } });
      }
    }, tick);
  }

  _stopKeepalive() {
    clearInterval(this._keepaliveTimer);
    this._keepaliveTimer = null;
  }

  // Half-closes the stream and waits (bounded) for the server to end it, so
  // that the server has dropped our registrations when close() resolves.
  _endCall(call) {
    return new Promise(resolve => {
      let timer = null;
      const finish = () => {
        clearTimeout(timer);
        call.cancel(); // no-op once the call has its status
        resolve();
      };
      call.removeAllListeners('data');
      call.on('data', () => {});
      call.on('error', () => {});
      call.once('status', finish);
      timer = setTimeout(finish, this._opts.closeTimeout);
      try {
        call.end();
      } catch (err) {
        finish();
      }
    });
  }
}

module.exports = { CairnSessionClient, CairnRegistryError, DEFAULT_PROTO_PATH };
