'use strict';

// A sofa-rpc-node provider in a process of its own, so that a test can
// SIGKILL it (a provider crash) and a benchmark can give it its own CPU.
//
// As a module: ProviderProcess starts this file as a child (IPC channel),
// waits for its port and can ask it for its counters. As a program (the
// child), it serves the services below on 127.0.0.1 (LoopbackRpcServer) and,
// when given registry servers, registers them with CairnRegistry
// (data_id interface:version, group SOFA).
//
// Services (version 1.0, group SOFA):
//   com.cairn.mesh.EchoService  hessian2
//     echo(text)           -> '<tag>:<text>'
//     sleep(ms, text)      -> '<tag>:<text>' after ms milliseconds
//     note(text)           -> true; counts the call (oneway target)
//   cairn.test.ProtoEcho        protobuf (tests/node/fixtures/echo.proto)
//     echo({ name })       -> { message: 'hello <name>', provider: '<tag>' }
// Extra interface names (options.extraEchoInterfaces) get the echo/sleep/
// note methods too, so that one provider can serve several routes.

const path = require('path');
const { fork } = require('child_process');

const ECHO_INTERFACE = 'com.cairn.mesh.EchoService';
const PROTO_INTERFACE = 'cairn.test.ProtoEcho';
const PROTO_FILE = path.join(__dirname, '..', 'fixtures', 'echo.proto');

const START_TIMEOUT_MS = 60000;
const STOP_TIMEOUT_MS = 15000;

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch (err) { /* already gone */ }
  }
});

class ProviderProcess {
  // options: { tag, registryServers: [ 'host:port' ] (none: not registered),
  //            sidecar: 'http://host:port' (mesh mode: registers through that
  //            sidecar's local API instead), extraEchoInterfaces: [ name ],
  //            port (default 0) }
  constructor(options) {
    this.options = Object.assign({ registryServers: [], extraEchoInterfaces: [], port: 0 }, options);
    this.tag = this.options.tag;
    this.child = null;
    this.port = 0;
    this.nextRequest = 1;
    this.waiting = new Map();
    this.output = '';
  }

  get address() {
    return `127.0.0.1:${this.port}`;
  }

  async start() {
    const child = fork(__filename, [ JSON.stringify(this.options) ], {
      stdio: [ 'ignore', 'pipe', 'pipe', 'ipc' ],
      env: Object.assign({}, process.env, { CAIRN_PROVIDER_CHILD: '1' }),
    });
    this.child = child;
    live.add(child);
    const keep = chunk => {
      this.output = (this.output + chunk).slice(-20000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.exited = new Promise(resolve => {
      child.once('exit', (code, signal) => {
        live.delete(child);
        for (const { reject } of this.waiting.values()) reject(new Error(`provider ${this.tag} exited`));
        this.waiting.clear();
        resolve(code !== null ? code : signal);
      });
    });
    child.on('message', message => {
      if (message && message.reply !== undefined) {
        const waiter = this.waiting.get(message.reply);
        if (waiter) {
          this.waiting.delete(message.reply);
          waiter.resolve(message.value);
        }
      }
    });
    const ready = new Promise((resolve, reject) => {
      const onMessage = message => {
        if (message && message.ready) {
          child.off('message', onMessage);
          resolve(message);
        }
      };
      child.on('message', onMessage);
      child.exited.then(code => reject(new Error(`provider ${this.tag} exited (${code}) before it was ready:\n${this.output}`)));
    });
    let timer;
    const timeout = new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`provider ${this.tag} not ready within ${START_TIMEOUT_MS} ms:\n${this.output}`)),
        START_TIMEOUT_MS);
    });
    try {
      const message = await Promise.race([ ready, timeout ]);
      this.port = message.port;
    } catch (err) {
      await this.stop('SIGKILL');
      throw err;
    } finally {
      clearTimeout(timer);
    }
    return this;
  }

  get pid() {
    return this.child ? this.child.pid : 0;
  }

  // Asks the child: 'stats' -> { echo, sleep, note, proto } call counts;
  // 'unpublish' -> unRegister every service (resolves when the registry answered).
  ask(command, timeoutMs = 20000) {
    if (!this.child || !live.has(this.child)) return Promise.reject(new Error(`provider ${this.tag} is not running`));
    const id = this.nextRequest++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`provider ${this.tag}: no answer to ${command} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: value => { clearTimeout(timer); resolve(value); },
        reject: err => { clearTimeout(timer); reject(err); },
      });
      this.child.send({ id, command });
    });
  }

  stats() {
    return this.ask('stats');
  }

  // SIGTERM lets the child close its server and registry (unRegister);
  // SIGKILL is a crash. Waits for the exit (SIGKILL after STOP_TIMEOUT_MS).
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
}

// ------------------------------------------------------------ the child

async function runChild(options) {
  const protobuf = require('protobufjs');
  const boltProtocol = require('sofa-bolt-node');
  const { LoopbackRpcServer, createRegistry, logger } = require('./sofa');

  const proto = protobuf.loadSync(PROTO_FILE);
  boltProtocol.setOptions({ proto });
  const counts = { echo: 0, sleep: 0, note: 0, proto: 0 };
  const tag = options.tag;
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

  const echoDelegate = {
    async echo(text) {
      counts.echo++;
      return `${tag}:${text}`;
    },
    async sleep(ms, text) {
      counts.sleep++;
      await sleep(ms);
      return `${tag}:${text}`;
    },
    async note(text) {
      counts.note++;
      return true;
    },
  };

  // options.sidecar: mesh mode, registering through the sidecar's local API.
  let registry = null;
  if (options.sidecar) {
    registry = createRegistry([], { sidecar: options.sidecar });
  } else if (options.registryServers.length) {
    registry = createRegistry(options.registryServers);
  }
  const server = new LoopbackRpcServer({ logger, registry, proto, port: options.port });
  for (const interfaceName of [ ECHO_INTERFACE, ...options.extraEchoInterfaces ]) {
    server.addService({ interfaceName }, echoDelegate);
  }
  server.addService({ interfaceName: PROTO_INTERFACE }, {
    async echo(request) {
      counts.proto++;
      return { message: `hello ${request.name}`, provider: tag };
    },
  });
  await server.start();
  if (registry) await server.publish();

  let closing = null;
  const close = () => {
    if (!closing) {
      closing = (async () => {
        try {
          await server.close();
          if (registry) await registry.close();
        } finally {
          process.exit(0);
        }
      })();
    }
    return closing;
  };
  process.on('SIGTERM', close);
  process.on('disconnect', close); // the parent is gone
  process.on('message', async message => {
    let value = null;
    if (message.command === 'stats') {
      value = Object.assign({}, counts);
    } else if (message.command === 'unpublish') {
      if (registry) await server.unPublish();
      value = true;
    }
    process.send({ reply: message.id, value });
  });
  process.send({ ready: true, port: server.publishPort });
}

if (require.main === module && process.env.CAIRN_PROVIDER_CHILD === '1') {
  const options = JSON.parse(process.argv[2]);
  runChild(options).catch(err => {
    console.error(err && err.stack || err);
    process.exit(1);
  });
}

module.exports = { ProviderProcess, ECHO_INTERFACE, PROTO_INTERFACE, PROTO_FILE };
