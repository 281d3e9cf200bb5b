'use strict';

// Proxyless gRPC through Cairn's xDS server, with real peers only: a real
// `cairn registry` (its ADS service on the registry's gRPC port), plain
// @grpc/grpc-js echo servers in processes of their own, each published as
// grpc://127.0.0.1:PORT under the data id cairn.test.NodeEcho by a running
// `cairnctl publish` (fixtures/xds_echo_backend.js), and a @grpc/grpc-js
// client with @grpc/grpc-js-xds on the target xds:///cairn.test.NodeEcho,
// all on 127.0.0.1.
//
//   grpc-js client ──ADS (LDS, RDS, CDS, EDS)──► cairn registry ◄── cairnctl publish (one per backend)
//         └──────────── calls, round robin ───────────► echo servers
//
// The xDS name cairn.test.NodeEcho is the dataInfoId
// cairn.test.NodeEcho#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP; one locality per
// publisher zone (locality weight = the sum of its endpoints' weights),
// endpoint health from the publisher attribute `health`.
//
// Scenarios, in order on one registry and one client: calls spread over two
// backends (and `cairnctl xds` shows the client); one unregisters, calls
// move; a third joins; one is SIGKILLed; zones weighted as localities and an
// unhealthy endpoint left alone; the last one leaves (an empty assignment:
// calls fail at once) and comes back; a ring-hash service (the registry's
// xds_ring_hash_services) keeps each key on one backend.
//
// When the endpoint set changes is told by the registry: its counter of EDS
// ACKs (cairn_xds_acks_total) moves once the client took the new
// ClusterLoadAssignment. Calls in flight when a backend is SIGKILLed may
// fail; no call may fail, nor reach a removed backend, once that ACK came.
//
// Run: CAIRN_BIN=build/bin/cairn node --test tests/node/xds_grpc.test.js
// (cairnctl is taken from CAIRN_BIN's directory, or CAIRNCTL_BIN).
// CAIRN_TEST_VERBOSE=1 prints the registry's log at the end; grpc-js-xds's
// own trace: GRPC_TRACE=xds_client,xds_resolver,xds_cluster_resolver GRPC_VERBOSITY=DEBUG.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { execFile } = require('child_process');
const { promisify } = require('util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const grpcXds = require('@grpc/grpc-js-xds');
const { RegistryProcess } = require('./support/registry_process');
const { parseMetrics } = require('./support/sidecar_process');
const { Resources } = require('./support/resources');
const { EchoBackend, PROTO_FILE, PROTO_OPTIONS, cairnctlBin } = require('./fixtures/xds_echo_backend');

const execFileAsync = promisify(execFile);

// Bounded, and generous enough for sanitizer builds of the binaries.
const SUITE_TIMEOUT_MS = 400000;
const TEST_TIMEOUT_MS = 120000;
const WAIT_MS = 30000;
const CALL_DEADLINE_MS = 5000;
const LOOP_MAX_MS = 90000;
const CONCURRENCY = 4;
// Between the registry counting the client's EDS ACK and the channel's picker
// using the new endpoints (grpc-js-xds ACKs once its watchers ran).
const APPLY_SLACK_MS = 500;

const SERVICE = 'cairn.test.NodeEcho';
const TARGET = `xds:///${SERVICE}`;
// Listed in the registry's xds_ring_hash_services (RING_HASH, hashing on
// HASH_HEADER); its backends serve the same NodeEcho service.
const HASHED_SERVICE = 'cairn.test.NodeEchoHash';
const HASH_HEADER = 'x-cairn-hash-key';

const verbose = process.env.CAIRN_TEST_VERBOSE === '1';
const { NodeEcho } = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO_FILE, PROTO_OPTIONS)).cairn.test;

grpcXds.register();

// grpc-js-xds 1.14.1: a priority child that leaves the priority list (here:
// when the assignment becomes empty) gets a 15-minute deactivation timer that
// is neither unref'd nor cleared when the channel closes, so this process
// would outlive its tests by 15 minutes. Such timers are unref'd here; no
// other timer is touched.
const PRIORITY_RETENTION_MS = 15 * 60 * 1000;
const originalSetTimeout = global.setTimeout;
global.setTimeout = function setTimeoutUnrefLongRetention(callback, delay, ...args) {
  const timer = originalSetTimeout.call(this, callback, delay, ...args);
  if (delay === PRIORITY_RETENTION_MS && timer && typeof timer.unref === 'function') timer.unref();
  return timer;
};

function sleep(ms) {
  return new Promise(resolve => setTimeout(resolve, ms));
}

// Polls `condition` (sync or async) every 20 ms until it returns a truthy
// value, which is returned; throws after timeoutMs with `what` and the last value.
async function waitFor(condition, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await condition();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const description = typeof what === 'function' ? what() : what;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}; last: ${
        last instanceof Error ? last.stack : JSON.stringify(last)}`);
    }
    await sleep(20);
  }
}

// One unary Echo; resolves with the reply, rejects with the grpc-js error.
// hashKey: sent as the header a ring-hash service's route hashes on.
function echo(client, text, { delayMs = 0, deadlineMs = CALL_DEADLINE_MS, hashKey = null } = {}) {
  const metadata = new grpc.Metadata();
  if (hashKey !== null) metadata.set(HASH_HEADER, hashKey);
  return new Promise((resolve, reject) => {
    client.Echo({ text, delay_ms: delayMs }, metadata, { deadline: Date.now() + deadlineMs }, (err, reply) => {
      if (err) reject(err); else resolve(reply);
    });
  });
}

// `concurrency` callers calling Echo in a loop until stop(), or maxCalls
// calls, or maxMs. Every call is kept: { start, end, backend } or
// { start, end, code, message } for a failure.
class CallLoop {
  constructor(client, { concurrency = CONCURRENCY, maxCalls = 200000, maxMs = LOOP_MAX_MS, delayMs = 0 } = {}) {
    Object.assign(this, { client, concurrency, maxCalls, maxMs, delayMs });
    this.calls = [];
    this.failures = [];
    this.started = 0;
    this.stopped = false;
    this.workers = [];
  }

  start() {
    const deadline = Date.now() + this.maxMs;
    const worker = async () => {
      while (!this.stopped && this.started < this.maxCalls && Date.now() < deadline) {
        const n = this.started++;
        const start = Date.now();
        try {
          const reply = await echo(this.client, `loop-${n}`, { delayMs: this.delayMs });
          assert.equal(reply.text, `loop-${n}`);
          this.calls.push({ start, end: Date.now(), backend: reply.backend });
        } catch (err) {
          const failure = { start, end: Date.now(), code: err.code, message: err.message };
          this.calls.push(failure);
          this.failures.push(failure);
        }
      }
    };
    for (let i = 0; i < this.concurrency; i++) this.workers.push(worker());
    return this;
  }

  get finished() {
    return this.calls.length;
  }

  count(backend, since = 0) {
    return this.calls.filter(c => c.backend === backend && c.start >= since).length;
  }

  // The last n finished calls.
  tail(n) {
    return this.calls.slice(-n);
  }

  async advance(n, timeoutMs = WAIT_MS) {
    const target = this.finished + n;
    await waitFor(() => this.finished >= target || this.stopped, timeoutMs,
      () => `${n} more calls (${JSON.stringify(this.summary())})`);
  }

  async stop() {
    this.stopped = true;
    await Promise.all(this.workers);
    return this;
  }

  summary() {
    const byBackend = {};
    for (const c of this.calls) if (c.backend) byBackend[c.backend] = (byBackend[c.backend] || 0) + 1;
    return { finished: this.finished, byBackend, failures: this.failures.length, firstFailures: this.failures.slice(0, 5) };
  }
}

describe('proxyless gRPC (@grpc/grpc-js-xds) through the registry\'s xDS server', { timeout: SUITE_TIMEOUT_MS }, () => {
  let registry;
  let client;
  const resources = new Resources();
  const backends = {};

  async function startBackend(tag, options = {}) {
    const backend = new EchoBackend(Object.assign({ tag, registry: registry.grpcAddress, dataId: SERVICE }, options));
    resources.add(() => backend.kill());
    backends[tag] = backend;
    return backend.start();
  }

  async function registryMetrics() {
    const response = await fetch(`http://${registry.adminAddress}/metrics`, { signal: AbortSignal.timeout(10000) });
    if (!response.ok) throw new Error(`GET /metrics: HTTP ${response.status}`);
    return parseMetrics(await response.text());
  }

  // The sum of an xDS metric's samples, of one resource type (label type=lds,
  // rds, cds or eds) or of all.
  async function xdsMetric(name, type = null) {
    let sum = 0;
    for (const sample of await registryMetrics()) {
      if (sample.name === name && (type === null || sample.labels.type === type.toLowerCase())) sum += sample.value;
    }
    return sum;
  }

  // Waits until the registry counted an EDS ACK beyond `before`; returns when.
  async function waitForEdsAck(before, what) {
    let seen = before;
    await waitFor(async () => (seen = await xdsMetric('cairn_xds_acks_total', 'EDS')) > before, WAIT_MS,
      () => `an EDS ACK after ${what} (acks ${before} -> ${seen})`);
    return Date.now();
  }

  // `cairnctl xds --output json`: the registry's ADS clients.
  async function xdsClients() {
    const { stdout } = await execFileAsync(cairnctlBin(), [ '--server', registry.grpcAddress, '--output', 'json', 'xds' ],
      { timeout: 20000 });
    return JSON.parse(stdout).clients || [];
  }

  // The registry's publishers of SERVICE (DEFAULT_GROUP).
  async function publishedUrls() {
    const described = await registry.describe(SERVICE, 'DEFAULT_GROUP');
    return (described.publishers || []).flatMap(p => p.publisher.data).sort();
  }

  // Calls one at a time until every backend in `tags` answered within the
  // last `window` calls and no other did.
  async function waitForBackends(tags, window = 20) {
    const want = [ ...tags ].sort();
    const recent = [];
    let lastError = null;
    await waitFor(async () => {
      try {
        recent.push((await echo(client, 'probe')).backend);
      } catch (err) {
        lastError = err;
        recent.push(`error:${err.code}`);
      }
      if (recent.length > window) recent.shift();
      return recent.length === window && JSON.stringify([ ...new Set(recent) ].sort()) === JSON.stringify(want);
    }, WAIT_MS, () => `answers from exactly ${JSON.stringify(want)} (last ${window}: ${JSON.stringify(recent)}, ` +
      `last error: ${lastError && lastError.message})`);
  }

  before(async () => {
    registry = await new RegistryProcess([ '--xds-ring-hash-services', HASHED_SERVICE ]).start();
    const bootstrap = path.join(registry.dir, 'xds-bootstrap.json');
    fs.writeFileSync(bootstrap, JSON.stringify({
      xds_servers: [{ server_uri: registry.grpcAddress, channel_creds: [{ type: 'insecure' }], server_features: [ 'xds_v3' ] }],
      node: { id: 'node-test', locality: { zone: 'z1' } },
    }));
    // Read once, when the first xds: channel resolves.
    process.env.GRPC_XDS_BOOTSTRAP = bootstrap;
    await startBackend('a');
    await startBackend('b');
    client = new NodeEcho(TARGET, grpc.credentials.createInsecure());
    resources.add(() => client.close());
  });

  after(async () => {
    try {
      await resources.closeAll();
    } finally {
      if (verbose && registry) console.error(`--- registry log\n${registry.log()}`);
      if (verbose) for (const b of Object.values(backends)) console.error(`--- backend ${b.tag}\n${b.output}`);
      if (registry) await registry.cleanup();
    }
  });

  it('the registry serves the four resources; calls spread over both backends', { timeout: TEST_TIMEOUT_MS }, async () => {
    assert.deepEqual(await publishedUrls(), [ backends.a.url, backends.b.url ].sort());
    await waitForBackends([ 'a', 'b' ]);
    const spread = { a: 0, b: 0 };
    for (let i = 0; i < 200; i++) {
      const reply = await echo(client, `spread-${i}`);
      assert.equal(reply.text, `spread-${i}`);
      spread[reply.backend]++;
    }
    // Round robin over two ready backends of one locality.
    assert.ok(spread.a >= 80 && spread.b >= 80 && spread.a + spread.b === 200, JSON.stringify(spread));
    // One ADS stream, every type ACKed at least once, none NACKed.
    assert.equal(await xdsMetric('cairn_xds_streams'), 1);
    for (const type of [ 'LDS', 'RDS', 'CDS', 'EDS' ]) {
      assert.ok(await xdsMetric('cairn_xds_acks_total', type) >= 1, `an ACK of ${type}`);
      assert.equal(await xdsMetric('cairn_xds_nacks_total', type), 0, `no NACK of ${type}`);
    }
    // `cairnctl xds`: this client, its zone, the one name of each type, all ACKed.
    let clients;
    await waitFor(async () => {
      clients = await xdsClients();
      const types = clients.length === 1 ? clients[0].types : [];
      return types.length === 4 && types.every(t => !t.awaiting_ack && t.acked_version === t.sent_version);
    }, WAIT_MS, () => `one xDS client with four ACKed types: ${JSON.stringify(clients)}`);
    const [ node ] = clients;
    assert.equal(node.node_id, 'node-test');
    assert.equal(node.zone, 'z1');
    assert.match(node.user_agent, /gRPC Node/);
    assert.deepEqual(node.types.map(t => t.type_url.split('.').pop()).sort(),
      [ 'Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration' ]);
    for (const type of node.types) {
      assert.deepEqual(type.resource_names, [ SERVICE ], JSON.stringify(type));
      assert.equal(Number(type.nacks), 0, JSON.stringify(type));
    }
  });

  it('a backend unregisters while calls flow: calls move to the other, none fails', { timeout: TEST_TIMEOUT_MS }, async () => {
    await waitForBackends([ 'a', 'b' ]);
    const loop = new CallLoop(client).start();
    let ackedAt;
    try {
      await waitFor(() => loop.count('a') >= 20 && loop.count('b') >= 20, WAIT_MS,
        () => `answers from a and b: ${JSON.stringify(loop.summary())}`);
      const acks = await xdsMetric('cairn_xds_acks_total', 'EDS');
      await backends.b.unpublish(); // cairnctl unregisters; b keeps serving
      ackedAt = await waitForEdsAck(acks, 'b unregistered');
      assert.deepEqual(await publishedUrls(), [ backends.a.url ]);
      await waitFor(() => loop.tail(100).every(c => c.backend === 'a') && loop.finished >= 100, WAIT_MS,
        () => `100 answers in a row from a: ${JSON.stringify(loop.summary())}`);
      await sleep(APPLY_SLACK_MS);
      await loop.advance(200);
    } finally {
      await loop.stop();
    }
    const report = JSON.stringify(Object.assign(loop.summary(), { ackedAt }));
    if (verbose) console.error('[unregister]', report);
    // b kept running: nothing may fail, before or after the push.
    assert.deepEqual(loop.failures, [], report);
    // No call started after the client took the new endpoints went to b.
    assert.equal(loop.count('b', ackedAt + APPLY_SLACK_MS), 0, report);
    assert.ok(loop.count('a', ackedAt + APPLY_SLACK_MS) >= 200, report);
    // b still serves, but no longer gets calls.
    const before = (await backends.b.stats()).echo;
    for (let i = 0; i < 20; i++) assert.equal((await echo(client, `after-${i}`)).backend, 'a');
    assert.equal((await backends.b.stats()).echo, before);
    await backends.b.stop();
  });

  it('a third backend registers while calls flow: it starts receiving calls, none fails', { timeout: TEST_TIMEOUT_MS }, async () => {
    await waitForBackends([ 'a' ]);
    const loop = new CallLoop(client).start();
    let joinedAt;
    try {
      await loop.advance(50);
      const acks = await xdsMetric('cairn_xds_acks_total', 'EDS');
      await startBackend('c');
      joinedAt = await waitForEdsAck(acks, 'c registered');
      await waitFor(() => loop.count('c') >= 50, WAIT_MS, () => `50 answers from c: ${JSON.stringify(loop.summary())}`);
      await loop.advance(100);
    } finally {
      await loop.stop();
    }
    const report = JSON.stringify(Object.assign(loop.summary(), { joinedAt }));
    if (verbose) console.error('[join]', report);
    assert.deepEqual(loop.failures, [], report);
    // Both share the load once c is in.
    const tail = loop.tail(100);
    const fromC = tail.filter(c => c.backend === 'c').length;
    assert.ok(fromC >= 30 && fromC <= 70, report);
  });

  it('a backend SIGKILLed (server and publisher) while calls flow: only calls in flight fail, none after the push',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      await waitForBackends([ 'a', 'c' ]);
      // Calls that take a little while, so that some are in flight at the kill.
      const loop = new CallLoop(client, { delayMs: 10 }).start();
      let killedAt;
      let ackedAt;
      try {
        await waitFor(() => loop.count('a') >= 20 && loop.count('c') >= 20, WAIT_MS,
          () => `answers from a and c: ${JSON.stringify(loop.summary())}`);
        const acks = await xdsMetric('cairn_xds_acks_total', 'EDS');
        killedAt = Date.now();
        await backends.c.kill();
        // The publisher's stream broke: the registry drops it and pushes.
        ackedAt = await waitForEdsAck(acks, 'c was killed');
        assert.deepEqual(await publishedUrls(), [ backends.a.url ]);
        await sleep(APPLY_SLACK_MS);
        await loop.advance(200);
      } finally {
        await loop.stop();
      }
      const report = JSON.stringify(Object.assign(loop.summary(), { killedAt, ackedAt }));
      if (verbose) console.error('[kill]', report);
      // Failures: only calls in flight at the kill (at most one per caller;
      // or sent in the moment before the client saw the connection drop),
      // each UNAVAILABLE; none started once the client had the new endpoints.
      // (A failure may be reported after the ACK: the push can beat the
      // client's own notice of the dropped connection.)
      assert.ok(loop.failures.length <= CONCURRENCY, report);
      for (const failure of loop.failures) {
        assert.equal(failure.code, grpc.status.UNAVAILABLE, report);
        assert.ok(failure.start <= killedAt + APPLY_SLACK_MS && failure.start < ackedAt, report);
      }
      assert.equal(loop.count('c', ackedAt + APPLY_SLACK_MS), 0, report);
      assert.ok(loop.count('a', ackedAt + APPLY_SLACK_MS) >= 200, report);
      // After the update: every call succeeds, on a.
      for (let i = 0; i < 50; i++) assert.equal((await echo(client, `after-kill-${i}`)).backend, 'a');
    });

  it('zones are localities weighted by their endpoints; unhealthy endpoints get no calls', { timeout: TEST_TIMEOUT_MS }, async () => {
    await waitForBackends([ 'a' ]);
    // a (z1, weight 1) and d (z2, weight 3): localities z1 = 1, z2 = 3;
    // grpc-js picks a locality at random by weight.
    const acks = await xdsMetric('cairn_xds_acks_total', 'EDS');
    await startBackend('d', { zone: 'z2', attributes: { weight: 3 } });
    await waitForEdsAck(acks, 'd registered');
    await waitForBackends([ 'a', 'd' ]);
    const spread = { a: 0, d: 0 };
    for (let i = 0; i < 400; i++) spread[(await echo(client, `w-${i}`)).backend]++;
    // Expected 100 : 300 (a's share 0.25, sd 8.7 calls): well inside 57..143.
    assert.ok(spread.a >= 57 && spread.a <= 143 && spread.a + spread.d === 400, JSON.stringify(spread));

    // e publishes health=unhealthy: its endpoint is sent (or left out), never used.
    const acks2 = await xdsMetric('cairn_xds_acks_total', 'EDS');
    await startBackend('e', { attributes: { health: 'unhealthy' } });
    await waitForEdsAck(acks2, 'e registered');
    await sleep(APPLY_SLACK_MS);
    const seen = new Set();
    for (let i = 0; i < 100; i++) seen.add((await echo(client, `h-${i}`)).backend);
    assert.deepEqual([ ...seen ].sort(), [ 'a', 'd' ]);
    assert.equal((await backends.e.stats()).echo, 0);
    await backends.d.stop();
    await backends.e.stop();
  });

  it('the last backend unregisters: calls fail at once though it still runs; it registers again: calls succeed',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      await waitForBackends([ 'a' ]);
      await backends.a.unpublish();
      // An empty (or removed) endpoint set: UNAVAILABLE, not a call to a's
      // address (which still answers) and not a hang until the deadline.
      let lastError = null;
      await waitFor(async () => {
        try {
          await echo(client, 'none', { deadlineMs: 2000 });
          return false;
        } catch (err) {
          lastError = err;
          return err.code === grpc.status.UNAVAILABLE;
        }
      }, WAIT_MS, () => `a call to fail with UNAVAILABLE (last error: ${lastError && lastError.message})`);
      const started = Date.now();
      await assert.rejects(echo(client, 'none-again', { deadlineMs: 4000 }), err => err.code === grpc.status.UNAVAILABLE);
      assert.ok(Date.now() - started < 3000, 'failed fast');
      if (verbose) console.error('[empty]', lastError.message);

      await backends.a.publish();
      await waitForBackends([ 'a' ]);
      for (let i = 0; i < 20; i++) assert.equal((await echo(client, `back-${i}`)).backend, 'a');
    });

  it('a ring-hash service: each key sticks to one backend; when one leaves, its keys move and most others stay',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      for (const tag of [ 'h1', 'h2', 'h3' ]) await startBackend(tag, { dataId: HASHED_SERVICE });
      const hashed = new NodeEcho(`xds:///${HASHED_SERVICE}`, grpc.credentials.createInsecure());
      resources.add(() => hashed.close());
      const keys = Array.from({ length: 60 }, (_, i) => `key-${i}`);
      // Every key's calls (3 each) go to one backend: key -> backend.
      const owners = async () => {
        const out = {};
        for (const key of keys) {
          const seen = new Set();
          for (let i = 0; i < 3; i++) seen.add((await echo(hashed, `${key}-${i}`, { hashKey: key })).backend);
          assert.equal(seen.size, 1, `${key} answered by ${[ ...seen ]}`);
          out[key] = [ ...seen ][0];
        }
        return out;
      };
      await waitFor(async () => (await echo(hashed, 'probe', { hashKey: 'probe' })).backend, WAIT_MS, 'a first answer');
      const before = await owners();
      // 60 keys over three equal endpoints: all three own some.
      assert.deepEqual([ ...new Set(Object.values(before)) ].sort(), [ 'h1', 'h2', 'h3' ], JSON.stringify(before));

      const acks = await xdsMetric('cairn_xds_acks_total', 'EDS');
      await backends.h3.unpublish(); // h3 keeps serving: only the registry can move its keys
      await waitForEdsAck(acks, 'h3 unregistered');
      await sleep(APPLY_SLACK_MS);
      const afterLeave = await owners();
      const report = JSON.stringify({ before, afterLeave });
      assert.ok(!Object.values(afterLeave).includes('h3'), report);
      // Consistent hashing: the survivors' keys mostly stay (the ring gains
      // entries for them, so some ~15% move between the two).
      const survivorKeys = keys.filter(k => before[k] !== 'h3');
      const stayed = survivorKeys.filter(k => afterLeave[k] === before[k]).length;
      assert.ok(stayed >= 0.6 * survivorKeys.length, `${stayed} of ${survivorKeys.length} stayed: ${report}`);
      if (verbose) console.error('[ring hash]', `${stayed} of ${survivorKeys.length} survivor keys stayed`);
      for (const tag of [ 'h1', 'h2', 'h3' ]) await backends[tag].stop();
    });
});
