'use strict';

// A real `cairn sidecar` process on 127.0.0.1 for the tests: the config is
// given as a plain object (written as JSON, which YAML reads), every
// address in it should use port 0, and the bound addresses come from the
// ready file (admin=, listener.NAME=). Every process started here is stopped
// by stop(), and killed when the test process exits.

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const { CAIRN_BIN, sleep } = require('./registry_process');

// Sanitizer builds start slowly: generous, but bounded.
const START_TIMEOUT_MS = 60000;
const STOP_TIMEOUT_MS = 20000;

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch (err) { /* already gone */ }
  }
});

function readKeyValues(file) {
  const out = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

// Parses Prometheus text: [{ name, labels: {..}, value }].
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[2])) !== null) labels[l[1]] = l[2];
    }
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

class SidecarProcess {
  // name: for messages and file names; config: the sidecar config object.
  constructor(name, config) {
    this.name = name;
    this.config = config;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `cairn-node-sidecar-${name}-`));
    this.child = null;
    this.adminAddress = '';
    this.listeners = {};
  }

  async start() {
    if (!fs.existsSync(CAIRN_BIN)) throw new Error(`no cairn binary at ${CAIRN_BIN} (set CAIRN_BIN)`);
    const configFile = path.join(this.dir, 'sidecar.yaml');
    fs.writeFileSync(configFile, JSON.stringify(this.config, null, 2) + '\n');
    const ready = path.join(this.dir, 'ready');
    fs.rmSync(ready, { force: true });
    this.logFile = path.join(this.dir, 'log');
    const out = fs.openSync(this.logFile, 'a');
    const child = spawn(CAIRN_BIN, [ 'sidecar', '--config', configFile, '--ready-file', ready ],
      { stdio: [ 'ignore', out, out ] });
    fs.closeSync(out);
    this.child = child;
    live.add(child);
    child.exited = new Promise(resolve => {
      child.once('exit', (code, signal) => {
        live.delete(child);
        resolve(code !== null ? code : 128 + (os.constants.signals[signal] || 0));
      });
    });
    let exited = false;
    child.exited.then(() => { exited = true; });
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!fs.existsSync(ready) && !exited && Date.now() < deadline) await sleep(20);
    if (!fs.existsSync(ready)) {
      await this.stop('SIGKILL');
      throw new Error(`cairn sidecar ${this.name} did not become ready:\n${this.log()}`);
    }
    const values = readKeyValues(ready); // renamed into place whole
    this.adminAddress = values.admin;
    for (const [ key, value ] of Object.entries(values)) {
      if (key.startsWith('listener.')) this.listeners[key.slice('listener.'.length)] = value;
    }
    return this;
  }

  get pid() {
    return this.child ? this.child.pid : 0;
  }

  get running() {
    return this.child !== null && live.has(this.child);
  }

  listener(name) {
    const address = this.listeners[name];
    if (!address) throw new Error(`sidecar ${this.name} has no listener ${name}: ${JSON.stringify(this.listeners)}`);
    return address;
  }

  // Signals the process and waits for it (SIGKILL after STOP_TIMEOUT_MS).
  // Returns the exit code (128 + signal when killed), or null if not running.
  async stop(signal = 'SIGTERM') {
    const child = this.child;
    if (!child) return null;
    this.child = null;
    if (!live.has(child)) return child.exited;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    const code = await child.exited;
    clearTimeout(timer);
    return code;
  }

  log() {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch (err) {
      return '';
    }
  }

  async cleanup() {
    await this.stop('SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  async get(pathAndQuery) {
    const response = await fetch(`http://${this.adminAddress}${pathAndQuery}`,
      { signal: AbortSignal.timeout(10000) });
    return { status: response.status, body: await response.text() };
  }

  async health() {
    return (await this.get('/health')).status;
  }

  async clusters() {
    const { status, body } = await this.get('/clusters');
    if (status !== 200) throw new Error(`GET /clusters: HTTP ${status}: ${body}`);
    return JSON.parse(body);
  }

  async metrics() {
    const { status, body } = await this.get('/metrics');
    if (status !== 200) throw new Error(`GET /metrics: HTTP ${status}`);
    return parseMetrics(body);
  }

  // The sum of a metric's samples whose labels include `labels`.
  async metric(name, labels = {}) {
    let sum = 0;
    for (const sample of await this.metrics()) {
      if (sample.name !== name) continue;
      if (Object.entries(labels).every(([ k, v ]) => sample.labels[k] === v)) sum += sample.value;
    }
    return sum;
  }
}

module.exports = { SidecarProcess, parseMetrics };
