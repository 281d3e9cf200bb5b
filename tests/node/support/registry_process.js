'use strict';

// A real `cairn registry` process on 127.0.0.1 for the tests: port 0 unless
// told otherwise, a private data directory, the ready file for the bound
// addresses. Every process started here is stopped by stop(), and killed
// when the test process exits, so a failing test leaves nothing running.

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

const CAIRN_BIN = process.env.CAIRN_BIN || path.resolve(__dirname, '../../../build/bin/cairn');
// Sanitizer builds start slowly: generous, but bounded.
const START_TIMEOUT_MS = 60000;
const STOP_TIMEOUT_MS = 15000;

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch (err) { /* already gone */ }
  }
});

function sleep(ms) {
  return new Promise(resolve => setTimeout(resolve, ms));
}

function readKeyValues(file) {
  const out = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

class RegistryProcess {
  constructor(extraArgs = []) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-node-test-'));
    this.extraArgs = extraArgs;
    this.child = null;
    this.grpcAddress = '';
    this.adminAddress = '';
    this.starts = 0;
  }

  get grpcPort() {
    return Number(this.grpcAddress.slice(this.grpcAddress.lastIndexOf(':') + 1));
  }

  // Starts the registry and waits for its ready file. grpcPort 0 picks a
  // free port; restart() passes the first start's port again.
  async start(grpcPort = 0) {
    if (!fs.existsSync(CAIRN_BIN)) throw new Error(`no cairn binary at ${CAIRN_BIN} (set CAIRN_BIN)`);
    const ready = path.join(this.dir, 'ready');
    fs.rmSync(ready, { force: true });
    this.logFile = path.join(this.dir, `log-${this.starts++}`);
    const out = fs.openSync(this.logFile, 'a');
    const child = spawn(CAIRN_BIN, [
      'registry',
      '--listen', `127.0.0.1:${grpcPort}`,
      '--admin', '127.0.0.1:0',
      '--data-dir', path.join(this.dir, 'data'),
      '--ready-file', ready,
      ...this.extraArgs,
    ], { stdio: [ 'ignore', out, out ] });
    fs.closeSync(out);
    this.child = child;
    live.add(child);
    child.exited = new Promise(resolve => {
      child.once('exit', (code, signal) => {
        live.delete(child);
        resolve(code !== null ? code : 128 + (os.constants.signals[signal] || 0));
      });
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    let exited = false;
    child.exited.then(() => { exited = true; });
    while (!fs.existsSync(ready) && !exited && Date.now() < deadline) await sleep(20);
    await sleep(10); // the ready file is written whole, but let the writer finish
    if (!fs.existsSync(ready)) {
      await this.stop('SIGKILL');
      throw new Error(`cairn registry did not become ready:\n${this.log()}`);
    }
    const values = readKeyValues(ready);
    this.grpcAddress = values.grpc;
    this.adminAddress = values.admin;
    if (!this.grpcAddress || !this.adminAddress) throw new Error(`bad ready file: ${JSON.stringify(values)}`);
    return this;
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

  // Sends a signal without waiting (SIGSTOP / SIGCONT: a registry that
  // hangs without closing its connections).
  signal(signal) {
    if (this.child) this.child.kill(signal);
  }

  // Stops (SIGKILL: a crash) and starts again on the same gRPC port with
  // the same data directory.
  async restart() {
    const port = this.grpcPort;
    await this.stop('SIGKILL');
    return this.start(port);
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

  // The admin HTTP JSON API (/api/v1/...).
  async admin(pathAndQuery) {
    const response = await fetch(`http://${this.adminAddress}${pathAndQuery}`,
      { signal: AbortSignal.timeout(10000) });
    if (!response.ok) throw new Error(`GET ${pathAndQuery}: HTTP ${response.status}`);
    return response.json();
  }

  async dataInfos() {
    return (await this.admin('/api/v1/datainfos')).data_infos || [];
  }

  async describe(dataId, group) {
    const query = `data_id=${encodeURIComponent(dataId)}&group=${encodeURIComponent(group)}`;
    return this.admin(`/api/v1/datainfo?${query}`);
  }
}

module.exports = { RegistryProcess, CAIRN_BIN, sleep };
