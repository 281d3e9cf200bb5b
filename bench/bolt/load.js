'use strict';

// SOFARPC load generator for bench/bolt/run: real sofa-rpc-node consumers
// (RpcClient + createConsumer({ serverHost })) in PROCS Node processes,
// each with its own connection to TARGET, calling
// com.cairn.bench.EchoService#echo(<64-byte string>) (hessian2).
//
//   node bench/bolt/load.js --mode closed --target HOST:PORT --procs 2 \
//        --concurrency 64 --warmup 2 --duration 10 [--watch name=pid,...]
//   node bench/bolt/load.js --mode open   ... --rate 5000 --duration 10
//   node bench/bolt/load.js --mode count  ... --concurrency 64 --count 1000000 [--max-seconds 240]
//   node bench/bolt/load.js --protocol dubbo [--connections 1] ...   (any mode)
//
// closed: CONCURRENCY callers in all (split over the processes), each calls
//         again as soon as its answer arrives; latency = send -> answer.
// open:   RATE calls per second in all, sent on schedule whatever the
//         answers do (1 ms ticks); latency = scheduled send -> answer, so a
//         stall is not hidden (no coordinated omission).
// count:  closed loop until COUNT calls have finished (or MAX_SECONDS have
//         passed, if given: the calls made are reported); every failure counted.
// Only calls that start after the warm-up and end before the window closes
// are measured (closed/open). Prints one JSON object on stdout: completed,
// errors, duration_s, req_per_s, latency percentiles (ms), CPU % of each
// --watch process and of the load processes over the measured window.
//
// --protocol bolt (the default): the sofa-rpc-node consumers above.
// --protocol dubbo: the same modes, callers, windows and figures, but each
// load process calls com.cairn.bench.EchoService#echo(<64-byte string>)
// over Dubbo 2 with bench/bolt/dubbo_load.js (raw frames, body encoded once)
// on --connections connections (default 1, like sofa-rpc-node's one
// connection per process).
//
// sofa-rpc-node comes from tests/node/node_modules (scripts/setup-node).

const path = require('path');
const fs = require('fs');
const { fork, execSync } = require('child_process');
const { createRequire } = require('module');

const INTERFACE = 'com.cairn.bench.EchoService';
const PAYLOAD = 'x'.repeat(64);
const CALL_TIMEOUT_MS = 5000;
const MAX_OPEN_IN_FLIGHT = 20000; // per process: past this the open loop counts drops

function parseArgs(argv) {
  const out = { mode: 'closed', procs: 2, concurrency: 64, warmup: 1, duration: 5, rate: 1000, count: 20000, watch: '', 'max-seconds': 0,
    protocol: 'bolt', connections: 1 };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    const value = argv[++i];
    if (value === undefined) throw new Error(`--${key} needs a value`);
    out[key] = [ 'mode', 'target', 'watch', 'protocol' ].includes(key) ? value : Number(value);
  }
  if (!out.target) throw new Error('--target HOST:PORT is required');
  if (![ 'bolt', 'dubbo' ].includes(out.protocol)) throw new Error('--protocol is bolt or dubbo');
  return out;
}

// ------------------------------------------------------------ worker

// A sofa-rpc-node consumer of TARGET: { call, close }.
async function boltClient(config) {
  const nodeRequire = createRequire(path.join(__dirname, '..', '..', 'tests', 'node', 'package.json'));
  const { RpcClient } = nodeRequire('sofa-rpc-node').client;
  const quiet = () => {};
  const logger = { debug: quiet, info: quiet, warn: quiet, error: quiet };
  const client = new RpcClient({ logger, retryFaultInterval: 1000 });
  const consumer = client.createConsumer({ interfaceName: INTERFACE, serverHost: config.target, responseTimeout: CALL_TIMEOUT_MS });
  await consumer.ready();
  const options = { responseTimeout: CALL_TIMEOUT_MS };
  return { call: () => consumer.invoke('echo', [ PAYLOAD ], options), close: () => client.close() };
}

async function runWorker() {
  const config = await new Promise(resolve => process.once('message', resolve));
  const client = config.protocol === 'dubbo'
    ? await require('./dubbo_load').connect({ target: config.target, payload: PAYLOAD, connections: config.connections, timeoutMs: CALL_TIMEOUT_MS })
    : await boltClient(config);
  const call = client.call;
  // A short warm-up of the connection and the JIT before the clock starts.
  for (let i = 0; i < 200; i++) await call();
  process.send({ ready: true });
  const { startAt } = await new Promise(resolve => process.once('message', resolve));

  const now = () => performance.timeOrigin + performance.now(); // ms, comparable across processes
  const measureFrom = startAt + config.warmup * 1000;
  const measureTo = measureFrom + config.duration * 1000;
  let latencies = new Float64Array(1 << 16);
  let n = 0;
  let errors = 0;
  let completed = 0;
  let dropped = 0;
  const firstErrors = [];
  const record = (scheduled, end) => {
    if (n === latencies.length) {
      const grown = new Float64Array(latencies.length * 2);
      grown.set(latencies);
      latencies = grown;
    }
    latencies[n++] = end - scheduled;
  };
  const noteError = err => {
    errors++;
    if (firstErrors.length < 5) firstErrors.push(`${err.name}: ${err.message}`);
  };
  while (now() < startAt) await new Promise(resolve => setTimeout(resolve, 1));

  if (config.mode === 'closed' || config.mode === 'count') {
    const counting = config.mode === 'count';
    const countUntil = config.maxSeconds > 0 ? startAt + config.maxSeconds * 1000 : Infinity;
    let started = 0;
    const caller = async () => {
      for (;;) {
        if (counting ? started >= config.count || now() >= countUntil : now() >= measureTo) return;
        started++;
        const t0 = now();
        try {
          await call();
          const t1 = now();
          if (counting || (t0 >= measureFrom && t1 <= measureTo)) {
            completed++;
            record(t0, t1);
          }
        } catch (err) {
          const t1 = now();
          if (counting || (t0 >= measureFrom && t1 <= measureTo)) noteError(err);
        }
      }
    };
    const t0 = now();
    await Promise.all(Array.from({ length: config.concurrency }, caller));
    const elapsed = (now() - t0) / 1000;
    finish(counting ? elapsed : config.duration);
  } else {
    // open loop
    const perMs = config.rate / 1000;
    let sent = 0;
    let inFlight = 0;
    await new Promise(resolve => {
      const tick = () => {
        const t = now();
        if (t >= measureTo) {
          const wait = () => (inFlight === 0 || now() > measureTo + CALL_TIMEOUT_MS + 1000 ? resolve() : setTimeout(wait, 5));
          return wait();
        }
        const due = Math.floor((t - startAt) * perMs);
        while (sent < due) {
          const scheduled = startAt + sent / perMs;
          sent++;
          if (inFlight >= MAX_OPEN_IN_FLIGHT) {
            if (scheduled >= measureFrom) dropped++;
            continue;
          }
          inFlight++;
          call().then(() => {
            const end = now();
            if (scheduled >= measureFrom && scheduled < measureTo) {
              completed++;
              record(scheduled, end);
            }
          }, err => {
            if (scheduled >= measureFrom && scheduled < measureTo) noteError(err);
          }).finally(() => { inFlight--; });
        }
        setTimeout(tick, 1);
      };
      tick();
    });
    finish(config.duration);
  }

  function finish(seconds) {
    process.send({
      done: true,
      completed,
      errors: errors + dropped,
      dropped,
      seconds,
      firstErrors,
      latencies: Buffer.from(latencies.buffer, 0, n * 8).toString('base64'),
    });
    client.close();
    setTimeout(() => process.exit(0), 500);
  }
}

// ------------------------------------------------------------ orchestrator

const CLK_TCK = (() => {
  try {
    return Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
  } catch (err) {
    return 100;
  }
})();

// utime + stime of a process and its threads, in seconds (null if gone).
function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch (err) {
    return null;
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const index = Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1);
  return sorted[Math.max(0, index)];
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const procs = Math.max(1, args.procs);
  const split = (total, i) => Math.floor(total / procs) + (i < total % procs ? 1 : 0);
  const workers = [];
  for (let i = 0; i < procs; i++) {
    const child = fork(__filename, [], { env: Object.assign({}, process.env, { CAIRN_BOLT_LOAD_WORKER: '1' }), stdio: [ 'ignore', 'inherit', 'inherit', 'ipc' ] });
    child.on('exit', code => { if (code) child.failed = code; });
    child.send({
      mode: args.mode,
      target: args.target,
      concurrency: Math.max(1, split(args.concurrency, i)),
      count: split(args.count, i),
      rate: args.rate / procs,
      warmup: args.mode === 'count' ? 0 : args.warmup,
      duration: args.duration,
      maxSeconds: args['max-seconds'],
      protocol: args.protocol,
      connections: Math.max(1, args.connections),
    });
    workers.push(child);
  }
  const kill = () => { for (const w of workers) w.kill('SIGKILL'); };
  process.on('SIGTERM', () => { kill(); process.exit(143); });
  process.on('SIGINT', () => { kill(); process.exit(130); });

  const message = (child, key) => new Promise((resolve, reject) => {
    const onMessage = m => { if (m && m[key]) { child.off('message', onMessage); resolve(m); } };
    child.on('message', onMessage);
    child.once('exit', code => reject(new Error(`load worker exited (${code}) before '${key}'`)));
  });
  await Promise.all(workers.map(w => message(w, 'ready')));
  const startAt = performance.timeOrigin + performance.now() + 100;
  const results = workers.map(w => message(w, 'done'));
  for (const w of workers) w.send({ startAt });

  // CPU over the measured window (count mode: the whole run).
  const watch = args.watch ? args.watch.split(',').map(e => e.split('=')).map(([ name, pid ]) => ({ name, pid: Number(pid) })) : [];
  watch.push(...workers.map((w, i) => ({ name: `load${i}`, pid: w.pid })));
  const measureStart = startAt + (args.mode === 'count' ? 0 : args.warmup * 1000);
  await new Promise(resolve => setTimeout(resolve, Math.max(0, measureStart - (performance.timeOrigin + performance.now()))));
  const cpu0 = watch.map(w => cpuSeconds(w.pid));
  const wall0 = performance.now();
  let cpu1;
  let wall1;
  if (args.mode !== 'count') {
    await new Promise(resolve => setTimeout(resolve, args.duration * 1000));
    cpu1 = watch.map(w => cpuSeconds(w.pid));
    wall1 = performance.now();
  }
  const done = await Promise.all(results);
  if (args.mode === 'count') {
    cpu1 = watch.map(w => cpuSeconds(w.pid));
    wall1 = performance.now();
  }

  let total = 0;
  for (const d of done) total += Buffer.from(d.latencies, 'base64').length / 8;
  const all = new Float64Array(total);
  let at = 0;
  for (const d of done) {
    const buf = Buffer.from(d.latencies, 'base64');
    all.set(new Float64Array(buf.buffer, buf.byteOffset, buf.length / 8), at);
    at += buf.length / 8;
  }
  all.sort();
  const completed = done.reduce((s, d) => s + d.completed, 0);
  const errors = done.reduce((s, d) => s + d.errors, 0);
  const seconds = Math.max(...done.map(d => d.seconds));
  const cpu = {};
  const wallSeconds = (wall1 - wall0) / 1000;
  watch.forEach((w, i) => {
    if (cpu0[i] !== null && cpu1[i] !== null) cpu[w.name] = Math.round(1000 * (cpu1[i] - cpu0[i]) / wallSeconds) / 10;
  });
  const round = (v, d = 3) => (v === null ? null : Math.round(v * 10 ** d) / 10 ** d);
  const out = {
    protocol: args.protocol === 'bolt' ? undefined : args.protocol, // absent for bolt, as before
    mode: args.mode,
    procs,
    concurrency: args.concurrency,
    rate: args.mode === 'open' ? args.rate : undefined,
    completed,
    errors,
    dropped: done.reduce((s, d) => s + d.dropped, 0),
    duration_s: round(seconds),
    req_per_s: round(completed / seconds, 1),
    latency_p50_ms: round(percentile(all, 0.50)),
    latency_p90_ms: round(percentile(all, 0.90)),
    latency_p99_ms: round(percentile(all, 0.99)),
    latency_p999_ms: round(percentile(all, 0.999)),
    latency_max_ms: round(all.length ? all[all.length - 1] : null),
    cpu_pct: cpu,
    cpu_window_s: round(wallSeconds),
    first_errors: done.flatMap(d => d.firstErrors).slice(0, 5),
  };
  process.stdout.write(JSON.stringify(out) + '\n');
  const failedWorkers = workers.filter(w => w.failed);
  process.exit(failedWorkers.length ? 1 : 0);
}

if (process.env.CAIRN_BOLT_LOAD_WORKER === '1') {
  runWorker().catch(err => {
    console.error('load worker:', err && err.stack || err);
    process.exit(1);
  });
} else {
  main().catch(err => {
    console.error('load:', err && err.stack || err);
    process.exit(1);
  });
}
