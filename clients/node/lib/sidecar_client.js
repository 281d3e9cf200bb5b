'use strict';

// SidecarRegistrationClient: the data client of a CairnRegistry in mesh mode
// (option `sidecar`). The app does not talk to the registry at all: its
// providers' register/unRegister go to the local Cairn sidecar's
// registration API (POST /registry/publish and /registry/unpublish on the
// sidecar's admin listener, 127.0.0.1), and the sidecar publishes the app in
// the way its `app.discovery` switch says (interface-level records,
// app-level ones, or both), with ITS inbound listener as the endpoint.
// Callers reach the app through that listener; the sidecar forwards to the
// app (a static cluster in its config).
//
// What is sent for a register(config): data_id and group as the direct mode
// uses them (data_info.js), protocol = the URL's scheme, and the URL's query
// as params (serialization, weight, timeout, appName...), except the values
// that change with every start of the process (startTime, pid): the sidecar
// turns params into the app's revision, which should change only when what
// the app serves changes.
//
// Subscriptions: a meshed consumer calls the sidecar's outbound listener, so
// subscribe(config, listener) gives `bolt://<outbound>` when the option
// `outbound` is set. It also gives the URLs this client registered under the
// same key: sofa-rpc-node's RpcServer#publish waits until its own URL shows
// up in a subscription before it resolves. Without `outbound`, a consumer of
// a service not provided by this process gets an empty list.

const Base = require('sdk-base');
const { dataInfoKey, dataInfoIdString } = require('./data_info');

// Query parameters left out of what is sent to the sidecar (see above).
const VOLATILE_PARAMS = new Set([ 'startTime', 'pid' ]);

class SidecarRegistrationError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'SidecarRegistrationError';
    this.status = status; // the HTTP status (0: the sidecar did not answer)
  }
}

class SidecarRegistrationClient extends Base {
  // options: sidecar ('http://127.0.0.1:PORT', required), outbound
  // ('127.0.0.1:PORT', optional), requestTimeout (ms, default 10000),
  // logger.
  constructor(options) {
    super(Object.assign({}, options, { initMethod: '_init' }));
    const base = String(options.sidecar || '');
    if (!/^https?:\/\//.test(base)) {
      throw new TypeError('[CairnRegistry] options.sidecar must be an http:// URL of the sidecar admin listener');
    }
    this._base = base.replace(/\/+$/, '');
    this._outbound = options.outbound ? String(options.outbound) : '';
    this._timeout = options.requestTimeout || 10000;
    this._logger = options.logger || console;
    this._registered = new Map(); // dataInfoId string -> Set of URLs
    this._listeners = new Map(); // dataInfoId string -> Set of listeners
    this._closed = false;
  }

  // Ready once the sidecar answers /health (retried until requestTimeout).
  async _init() {
    const deadline = Date.now() + this._timeout;
    let last;
    while (Date.now() < deadline && !this._closed) {
      try {
        const response = await fetch(`${this._base}/health`, { signal: AbortSignal.timeout(2000) });
        if (response.ok) return;
        last = new Error(`HTTP ${response.status}`);
      } catch (err) {
        last = err;
      }
      await new Promise(resolve => setTimeout(resolve, 100));
    }
    throw new SidecarRegistrationError(0, `[CairnRegistry] the sidecar at ${this._base} did not answer: ${last && last.message}`);
  }

  get connectedServer() { return this._closed ? null : this._base; }
  get clientId() { return `sidecar:${this._base}`; }
  get stats() { return { registered: [ ...this._registered.values() ].reduce((n, s) => n + s.size, 0) }; }

  async register(config) {
    const { keyStr, body } = this._request(config, 'register');
    await this._post('/registry/publish', body);
    let urls = this._registered.get(keyStr);
    if (!urls) this._registered.set(keyStr, urls = new Set());
    urls.add(config.url);
    this._notify(keyStr);
  }

  async unRegister(config) {
    const { keyStr, body } = this._request(config, 'unRegister');
    const urls = this._registered.get(keyStr);
    if (!urls || !urls.has(config.url)) return;
    urls.delete(config.url);
    if (urls.size === 0) {
      this._registered.delete(keyStr);
      // The sidecar knows the interface, not the URL: withdraw it with the last one.
      await this._post('/registry/unpublish', { data_id: body.data_id, group: body.group });
    }
    this._notify(keyStr);
  }

  subscribe(config, listener) {
    if (typeof listener !== 'function') {
      throw new TypeError('[CairnRegistry] subscribe(config, listener): listener must be a function');
    }
    const keyStr = dataInfoIdString(dataInfoKey(config));
    let set = this._listeners.get(keyStr);
    if (!set) this._listeners.set(keyStr, set = new Set());
    set.add(listener);
    setImmediate(() => {
      if (set.has(listener) && !this._closed) listener(this._addresses(keyStr));
    });
    return Promise.resolve();
  }

  unSubscribe(config, listener) {
    const keyStr = dataInfoIdString(dataInfoKey(config));
    const set = this._listeners.get(keyStr);
    if (set) {
      if (listener) set.delete(listener); else set.clear();
      if (set.size === 0) this._listeners.delete(keyStr);
    }
    return Promise.resolve();
  }

  // sdk-base calls this once from close(). What was registered stays with
  // the sidecar until unRegister (RpcServer#close does that) or until the
  // sidecar stops.
  async _close() {
    this._closed = true;
    this._listeners.clear();
  }

  _addresses(keyStr) {
    const out = [ ...(this._registered.get(keyStr) || []) ];
    if (this._outbound) out.push(`bolt://${this._outbound}`);
    return out;
  }

  _notify(keyStr) {
    const set = this._listeners.get(keyStr);
    if (!set) return;
    const list = this._addresses(keyStr);
    for (const listener of [ ...set ]) {
      try {
        listener(list);
      } catch (err) {
        this.emit('error', err);
      }
    }
  }

  _request(config, what) {
    if (this._closed) throw new SidecarRegistrationError(0, '[CairnRegistry] closed');
    if (!config || typeof config.url !== 'string' || config.url === '') {
      throw new TypeError(`[CairnRegistry] ${what}(config): config.url is required`);
    }
    const key = dataInfoKey(config);
    const url = new URL(config.url);
    const params = {};
    for (const [ name, value ] of url.searchParams) {
      if (!VOLATILE_PARAMS.has(name)) params[name] = value;
    }
    params.protocol = url.protocol.replace(/:$/, '');
    if (config.version !== undefined && config.version !== null) params.version = String(config.version);
    const body = { data_id: key.data_id, group: key.group, params };
    return { keyStr: dataInfoIdString(key), body };
  }

  async _post(path, body) {
    let response;
    try {
      response = await fetch(`${this._base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this._timeout),
      });
    } catch (err) {
      throw new SidecarRegistrationError(0, `[CairnRegistry] ${path} at ${this._base}: ${err.message}`);
    }
    const text = await response.text();
    // 202: accepted, the sidecar publishes when the registry answers.
    if (response.status === 200 || response.status === 202) return text;
    let message = text;
    try { message = JSON.parse(text).error || text; } catch (err) { /* not JSON */ }
    throw new SidecarRegistrationError(response.status, `[CairnRegistry] ${path}: HTTP ${response.status}: ${message}`);
  }
}

module.exports = { SidecarRegistrationClient, SidecarRegistrationError };
