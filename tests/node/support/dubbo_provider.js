'use strict';

// A Dubbo 2 provider written from the wire format (support/dubbo_wire.js:
// 16-byte header, hessian2 bodies by hessian.js), in a process of its own so
// that a test can SIGKILL it. It answers the way Apache Dubbo's
// HeaderExchangeHandler / DubboCodec do:
//   two-way heartbeat (event)        -> an event response, same id, body null
//   a call of an exported method     -> status 20, RESPONSE_VALUE (1) + value, or
//                                       RESPONSE_VALUE_WITH_ATTACHMENTS (4) + value +
//                                       { dubbo: '2.0.2' } when the request's dubbo
//                                       version is >= 2.0.2 (as Java's does)
//   an unknown method                -> status 20, an exception (flag 0 or 3):
//                                       java.lang.NoSuchMethodException
//   an unknown service               -> status 70 SERVICE_ERROR, hessian2 string
//   a body that does not decode, or
//   a serialization other than hessian2 -> status 40 BAD_REQUEST, hessian2 string
//   oneway calls                     -> served, not answered
//   a bad magic                      -> the connection is closed
//
// Services (any version; options.interfaces adds names with the same methods):
//   com.cairn.mesh.DubboEcho
//     echo(String text)          -> '<tag>:<text>'  (text alone when tag is '')
//     sleep(int ms, String text) -> the same, after ms milliseconds
//
// As a module: DubboProviderProcess starts this file as a child (IPC), waits
// for its port, asks it for its counters. createDubboServer() is the server
// itself, for an in-process use (bench/bolt/dubbo_provider.js).

const net = require('net');
const { fork } = require('child_process');
const wire = require('./dubbo_wire');

const DUBBO_ECHO_INTERFACE = 'com.cairn.mesh.DubboEcho';

const START_TIMEOUT_MS = 30000;
const STOP_TIMEOUT_MS = 15000;

// ------------------------------------------------------------ the server

// options: { tag, interfaces: [ name ] (besides DUBBO_ECHO_INTERFACE) }
// Returns a net.Server (not listening yet) with .counts.
function createDubboServer({ tag = '', interfaces = [] } = {}) {
  const counts = { echo: 0, sleep: 0, heartbeats: 0, unknownService: 0, unknownMethod: 0, badRequest: 0, oneway: 0, connections: 0 };
  const exported = new Set([ DUBBO_ECHO_INTERFACE, ...interfaces ]);
  const answer = text => (tag ? `${tag}:${text}` : text);
  const methods = {
    echo(text) {
      counts.echo++;
      return answer(text);
    },
    sleep(ms, text) {
      counts.sleep++;
      return new Promise(resolve => setTimeout(() => resolve(answer(text)), Number(ms)));
    },
  };

  const sockets = new Set();
  const server = net.createServer(socket => {
    counts.connections++;
    sockets.add(socket);
    socket.setNoDelay(true);
    const reader = new wire.FrameReader();
    const send = bytes => {
      if (!socket.destroyed) socket.write(bytes);
    };
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.on('data', chunk => {
      let frames;
      try {
        frames = reader.push(chunk);
      } catch (err) {
        socket.destroy();
        return;
      }
      for (const f of frames) {
        if (!f.request) continue; // a response (to nothing we sent): ignore
        if (f.event) {
          counts.heartbeats++;
          if (f.twoWay) send(wire.encodeHeartbeatResponse(f.id));
          continue;
        }
        const reply = (make) => {
          if (f.twoWay) send(make());
        };
        if (f.serialization !== wire.HESSIAN2) {
          counts.badRequest++;
          reply(() => wire.encodeErrorResponse(f.id, wire.STATUS.BAD_REQUEST,
            `Fail to decode request due to: unsupported serialization id ${f.serialization}`));
          continue;
        }
        let call;
        try {
          call = wire.decodeRequestBody(f.body);
        } catch (err) {
          counts.badRequest++;
          reply(() => wire.encodeErrorResponse(f.id, wire.STATUS.BAD_REQUEST, `Fail to decode request due to: ${err.message}`));
          continue;
        }
        if (!f.twoWay) counts.oneway++;
        const withAttachments = wire.supportsResponseAttachments(call.dubboVersion);
        if (!exported.has(call.service)) {
          counts.unknownService++;
          reply(() => wire.encodeErrorResponse(f.id, wire.STATUS.SERVICE_ERROR,
            `Not found exported service: ${call.service}:20880 in ${JSON.stringify([ ...exported ])}`));
          continue;
        }
        const method = Object.prototype.hasOwnProperty.call(methods, call.method) ? methods[call.method] : null;
        if (!method) {
          counts.unknownMethod++;
          reply(() => wire.encodeValueResponse(f.id, null, { withAttachments, exception: {
            $class: 'java.lang.NoSuchMethodException',
            $: { detailMessage: `No such method ${call.method} in service ${call.service}` },
          } }));
          continue;
        }
        Promise.resolve()
          .then(() => method(...call.args))
          .then(value => reply(() => wire.encodeValueResponse(f.id, value, { withAttachments })),
            err => reply(() => wire.encodeValueResponse(f.id, null, { withAttachments, exception: {
              $class: 'java.lang.RuntimeException', $: { detailMessage: String(err && err.message || err) },
            } })));
      }
    });
  });
  server.counts = counts;
  server.closeAll = () => new Promise(resolve => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
  return server;
}

// ------------------------------------------------------------ the parent side

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch (err) { /* already gone */ }
  }
});

class DubboProviderProcess {
  // options: { tag, interfaces: [ name ], port (default 0) }
  constructor(options) {
    this.options = Object.assign({ interfaces: [], port: 0 }, options);
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
      env: Object.assign({}, process.env, { CAIRN_DUBBO_PROVIDER_CHILD: '1' }),
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
        for (const { reject } of this.waiting.values()) reject(new Error(`dubbo provider ${this.tag} exited`));
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
      child.exited.then(code => reject(new Error(`dubbo provider ${this.tag} exited (${code}) before it was ready:\n${this.output}`)));
    });
    let timer;
    const timeout = new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`dubbo provider ${this.tag} not ready within ${START_TIMEOUT_MS} ms:\n${this.output}`)),
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

  get running() {
    return this.child !== null && live.has(this.child);
  }

  // The child's counters: { echo, sleep, heartbeats, unknownService, unknownMethod, badRequest, oneway, connections }.
  stats(timeoutMs = 10000) {
    if (!this.running) return Promise.reject(new Error(`dubbo provider ${this.tag} is not running`));
    const id = this.nextRequest++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`dubbo provider ${this.tag}: no stats within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: value => { clearTimeout(timer); resolve(value); },
        reject: err => { clearTimeout(timer); reject(err); },
      });
      this.child.send({ id, command: 'stats' });
    });
  }

  // SIGTERM closes the server; SIGKILL is a crash. Waits for the exit
  // (SIGKILL after STOP_TIMEOUT_MS).
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

function runChild(options) {
  const server = createDubboServer(options);
  server.listen({ host: '127.0.0.1', port: options.port }, () => {
    process.send({ ready: true, port: server.address().port });
  });
  server.on('error', err => {
    console.error(err && err.stack || err);
    process.exit(1);
  });
  const close = () => {
    server.closeAll().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGTERM', close);
  process.on('disconnect', close); // the parent is gone
  process.on('message', message => {
    if (message && message.command === 'stats') process.send({ reply: message.id, value: Object.assign({}, server.counts) });
  });
}

if (require.main === module && process.env.CAIRN_DUBBO_PROVIDER_CHILD === '1') {
  runChild(JSON.parse(process.argv[2]));
}

module.exports = { DubboProviderProcess, createDubboServer, DUBBO_ECHO_INTERFACE };
