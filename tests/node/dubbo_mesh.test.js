'use strict';

// Dubbo 2 through the Cairn mesh, with real peers only: a real `cairn
// registry`, real `cairn sidecar` processes, the real npm dubbo2.js consumer
// (its direct mode, DirectlyDubbo: one connection to a fixed address, no
// ZooKeeper) and Dubbo 2 providers written here from the wire format
// (support/dubbo_provider.js; child processes, so they can be SIGKILLed),
// all on 127.0.0.1.
//
//   dubbo2.js ──► outbound sidecar ──► inbound sidecar ──► provider
//   (DirectlyDubbo  (dubbo_routes → cluster  (Dubbo listener → static cluster;
//    at the sidecar)  fed by the registry)     publishes dubbo://<listener>)
//
// dubbo2.js calls resolve to { res, err } (they never reject): a sidecar
// error (a non-OK status) is an err whose message holds the sidecar's text.
// Where a test needs the status byte, a heartbeat or a chosen request id, it
// writes raw frames (support/dubbo_wire.js, hessian2 bodies by hessian.js).
//
// Run: node --test tests/node/   (CAIRN_BIN=path/to/cairn; default build/bin/cairn)

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { RegistryProcess, sleep } = require('./support/registry_process');
const { waitFor } = require('./support/sofa');
const { SidecarProcess } = require('./support/sidecar_process');
const { waitForClusterHosts, CallLoop, Resources } = require('./support/mesh');
const { DubboProviderProcess, DUBBO_ECHO_INTERFACE } = require('./support/dubbo_provider');
const {
  dubboOutboundConfig, dubboInboundConfig, dubboConnection, echoService, echoConsumer, unwrap,
} = require('./support/dubbo_mesh');
const { RawDubboConnection, STATUS, RESPONSE_FLAG, encodeRequest } = require('./support/dubbo_wire');

// Bounded, and generous enough for sanitizer builds of the binaries.
const SUITE_TIMEOUT_MS = 400000;
const TEST_TIMEOUT_MS = 150000;
const WAIT_MS = 30000;

const ECHO = DUBBO_ECHO_INTERFACE;
// Served by the same providers; its outbound route has a short timeout.
const SLOW = 'com.cairn.mesh.DubboSlowEcho';
const SLOW_TIMEOUT_MS = 400;
// No route anywhere.
const UNROUTED = 'com.cairn.mesh.NoSuchService';
// The data id the inbound sidecars publish under and the outbound cluster
// subscribes to (the interface name: Dubbo routes by interface, no version).
const DATA_ID = ECHO;

const STRING = 'Ljava/lang/String;';
const echoCall = (service, text, extra = {}) => Object.assign({ service, method: 'echo', paramDesc: STRING, args: [ text ] }, extra);
const sleepCall = (service, ms, text) => ({ service, method: 'sleep', paramDesc: `I${STRING}`, args: [ ms, text ] });
const tagOf = answer => String(answer).split(':')[0];

async function startProvider(resources, tag) {
  const provider = new DubboProviderProcess({ tag, interfaces: [ SLOW ] });
  resources.add(() => provider.stop('SIGKILL'));
  return provider.start();
}

async function startSidecar(resources, name, config) {
  const sidecar = new SidecarProcess(name, config);
  resources.add(async () => {
    // A failing test is easier to read with the sidecar's own words.
    if (process.env.CAIRN_TEST_VERBOSE === '1') console.error(`--- sidecar ${name} log\n${sidecar.log()}`);
    await sidecar.cleanup();
  });
  return sidecar.start();
}

// A provider and its inbound sidecar, publishing dubbo://<listener> under DATA_ID.
async function startMeshNode(resources, registryAddress, tag) {
  const provider = await startProvider(resources, tag);
  const inbound = await startSidecar(resources, `dubbo-inbound-${tag}`, dubboInboundConfig({
    registry: registryAddress,
    provider: provider.address,
    publish: [{ listener: 'dubbo', data_id: DATA_ID }],
  }));
  return { provider, inbound, address: inbound.listener('dubbo') };
}

// The registry's publishers of a data id, whatever its group.
async function publishedData(registryProcess, dataId) {
  const infos = await registryProcess.dataInfos();
  const data = [];
  for (const info of infos.filter(i => i.key.data_id === dataId)) {
    const described = await registryProcess.describe(info.key.data_id, info.key.group);
    for (const p of described.publishers || []) data.push(...p.publisher.data);
  }
  return data.sort();
}

async function responses(sidecar, service, status = 'OK') {
  return sidecar.metric('cairn_sidecar_dubbo_responses_total', { service, status });
}

async function requests(sidecar, service) {
  return sidecar.metric('cairn_sidecar_dubbo_requests_total', { service });
}

// ------------------------------------------------------------------------
// The provider and the wire first, with no sidecar in the way: if these
// fail, the mesh tests below cannot tell anything.

describe('Dubbo 2 without a sidecar: dubbo2.js straight to the Node provider', { timeout: SUITE_TIMEOUT_MS }, () => {
  let provider;
  const resources = new Resources();

  before(async () => {
    provider = await startProvider(resources, 'solo');
  });

  after(() => resources.closeAll());

  it('dubbo2.js calls echo (answers with and without attachments) and sleep', { timeout: TEST_TIMEOUT_MS }, async () => {
    const modern = echoConsumer(resources, provider.address, { dubboVersion: '2.0.2' });
    const legacy = echoConsumer(resources, provider.address, { dubboVersion: '2.0.0' });
    for (let i = 0; i < 5; i++) {
      assert.equal(await unwrap(modern.echo(`m${i}`)), `solo:m${i}`);
      assert.equal(await unwrap(legacy.echo(`l${i}`)), `solo:l${i}`);
    }
    assert.equal(await unwrap(modern.sleep(50, 'zz')), 'solo:zz');
    const stats = await provider.stats();
    assert.equal(stats.echo, 10);
    assert.equal(stats.sleep, 1);
  });

  it('raw frames: flags 4 and 1, heartbeats, an unknown service and method', { timeout: TEST_TIMEOUT_MS }, async () => {
    const raw = new RawDubboConnection(provider.address);
    resources.add(() => raw.close());
    await raw.connect();
    let r = await raw.call(1, echoCall(ECHO, 'a'));
    assert.equal(r.status, STATUS.OK);
    assert.deepEqual(r.decoded, { flag: RESPONSE_FLAG.VALUE_WITH_ATTACHMENTS, value: 'solo:a', attachments: { dubbo: '2.0.2' } });
    r = await raw.call(2, echoCall(ECHO, 'b', { dubboVersion: '2.0.0' }));
    assert.deepEqual(r.decoded, { flag: RESPONSE_FLAG.VALUE, value: 'solo:b' });
    r = await raw.heartbeat(3);
    assert.equal(r.event, true);
    assert.equal(r.status, STATUS.OK);
    r = await raw.call(4, echoCall(UNROUTED, 'c'));
    assert.equal(r.status, STATUS.SERVICE_ERROR);
    assert.match(r.decoded.message, /Not found exported service: com\.cairn\.mesh\.NoSuchService/);
    const missing = await echoService(dubboConnection(resources, provider.address)).missing('x');
    assert.match(`${missing.err}`, /NoSuchMethodException/);
  });
});

// ------------------------------------------------------------------------

describe('Dubbo 2 (dubbo2.js) through outbound and inbound sidecars', { timeout: SUITE_TIMEOUT_MS }, () => {
  let registry;
  let outbound;
  let outboundAddress;
  let node1;
  const resources = new Resources();
  // The second mesh node, shared by the join and the kill tests.
  let node2 = null;
  const node2Resources = new Resources();

  before(async () => {
    registry = await new RegistryProcess().start();
    node1 = await startMeshNode(resources, registry.grpcAddress, 'p1');
    outbound = await startSidecar(resources, 'dubbo-outbound', dubboOutboundConfig({
      registry: registry.grpcAddress,
      routes: [
        { service: ECHO, cluster: 'echo', timeout_ms: 10000 },
        { service: SLOW, cluster: 'echo', timeout_ms: SLOW_TIMEOUT_MS },
      ],
      clusters: [{ name: 'echo', data_id: DATA_ID }],
    }));
    outboundAddress = outbound.listener('outbound');
    resources.add(() => node2Resources.closeAll()); // if the kill test did not run
  });

  after(async () => {
    try {
      await resources.closeAll();
    } finally {
      await registry.cleanup();
    }
  });

  it('the inbound sidecar publishes dubbo://<its listener>; the outbound cluster learns it', { timeout: TEST_TIMEOUT_MS }, async () => {
    const endpoint = `dubbo://${node1.address}`;
    await waitFor(async () => JSON.stringify(await publishedData(registry, DATA_ID)) === JSON.stringify([ endpoint ]),
      WAIT_MS, `${DATA_ID} published as ${endpoint}`);
    await waitForClusterHosts(outbound, 'echo', [ node1.address ]);
  });

  it('dubbo2.js → outbound → inbound → provider: the right answers, both response forms', { timeout: TEST_TIMEOUT_MS }, async () => {
    await waitForClusterHosts(outbound, 'echo', [ node1.address ]);
    const before = await node1.provider.stats();
    const outboundOk = await responses(outbound, ECHO);
    const inboundOk = await responses(node1.inbound, ECHO);
    // dubbo version 2.0.2: the provider answers RESPONSE_VALUE_WITH_ATTACHMENTS
    // (4); 2.0.0: RESPONSE_VALUE (1). dubbo2.js reads both.
    const modern = echoConsumer(resources, outboundAddress, { dubboVersion: '2.0.2' });
    const legacy = echoConsumer(resources, outboundAddress, { dubboVersion: '2.0.0' });
    for (let i = 0; i < 20; i++) {
      assert.equal(await unwrap(modern.echo(`hello-${i}`)), `p1:hello-${i}`);
      assert.equal(await unwrap(legacy.echo(`old-${i}`)), `p1:old-${i}`);
    }
    // Calls in flight together on one connection, each with its own answer.
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => unwrap(modern.echo(`c${i}`))));
    assert.deepEqual(many, Array.from({ length: 50 }, (_, i) => `p1:c${i}`));
    // Non-ASCII and a larger body go through untouched.
    const big = `ünïcødé-${'x'.repeat(20000)}-✓`;
    assert.equal(await unwrap(modern.echo(big)), `p1:${big}`);
    // The body a raw client gets is the provider's, byte for byte in meaning:
    // the flag and the attachments came through.
    const raw = new RawDubboConnection(outboundAddress);
    resources.add(() => raw.close());
    await raw.connect();
    const r4 = await raw.call(7, echoCall(ECHO, 'raw'));
    assert.equal(r4.status, STATUS.OK);
    assert.equal(r4.id, 7n);
    assert.deepEqual(r4.decoded, { flag: RESPONSE_FLAG.VALUE_WITH_ATTACHMENTS, value: 'p1:raw', attachments: { dubbo: '2.0.2' } });
    const r1 = await raw.call(8, echoCall(ECHO, 'raw-old', { dubboVersion: '2.0.0' }));
    assert.deepEqual(r1.decoded, { flag: RESPONSE_FLAG.VALUE, value: 'p1:raw-old' });

    // Both sidecars carried the calls, and the provider answered them.
    const calls = 20 + 20 + 50 + 1 + 2;
    assert.equal((await node1.provider.stats()).echo - before.echo, calls);
    assert.ok(await responses(outbound, ECHO) - outboundOk >= calls);
    assert.ok(await responses(node1.inbound, ECHO) - inboundOk >= calls);
  });

  it('an unknown service: SERVICE_NOT_FOUND (60) from the sidecar, a rejected dubbo2.js call; the connection goes on',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      await waitForClusterHosts(outbound, 'echo', [ node1.address ]);
      // Raw: the status byte and the message.
      const raw = new RawDubboConnection(outboundAddress);
      resources.add(() => raw.close());
      await raw.connect();
      const started = Date.now();
      const r = await raw.call(1, echoCall(UNROUTED, 'x'));
      assert.equal(r.status, STATUS.SERVICE_NOT_FOUND);
      assert.equal(r.event, false);
      assert.equal(r.request, false);
      assert.equal(r.id, 1n);
      assert.equal(r.decoded.message, `cairn sidecar: no route for service '${UNROUTED}'`);
      assert.ok(Date.now() - started < 2000);
      assert.equal((await raw.call(2, echoCall(ECHO, 'raw-after'))).decoded.value, 'p1:raw-after');

      // dubbo2.js: both services on one connection (one DirectlyDubbo).
      const dubbo = dubboConnection(resources, outboundAddress);
      const unrouted = echoService(dubbo, { dubboInterface: UNROUTED });
      const routed = echoService(dubbo);
      assert.equal(await unwrap(routed.echo('first')), 'p1:first');
      // A call in flight on the same connection while the unrouted one fails.
      const alongside = unwrap(routed.sleep(300, 'alongside'));
      alongside.catch(() => {}); // awaited below
      const { res, err } = await unrouted.echo('x');
      assert.equal(res, null);
      assert.ok(err, 'dubbo2.js reports an error');
      // dubbo2.js turns a non-OK response into DubboDecodeError(body as text):
      // the hessian2 string's length byte, then the sidecar's message.
      assert.equal(err.constructor.name, 'DubboDecodeError');
      assert.match(err.message, /cairn sidecar: no route for service 'com\.cairn\.mesh\.NoSuchService'/);
      assert.equal(await alongside, 'p1:alongside');
      for (let i = 0; i < 5; i++) assert.equal(await unwrap(routed.echo(`after-${i}`)), `p1:after-${i}`);
      assert.ok(await responses(outbound, UNROUTED, 'SERVICE_NOT_FOUND') >= 2);
    });

  it('heartbeats: the outbound sidecar answers them itself; calls go on around them', { timeout: TEST_TIMEOUT_MS }, async () => {
    await waitForClusterHosts(outbound, 'echo', [ node1.address ]);
    const raw = new RawDubboConnection(outboundAddress);
    resources.add(() => raw.close());
    await raw.connect();
    // A heartbeat as the first frame, then one between calls, with ids a
    // client would use (dubbo2.js sends id 0; Java clients count).
    for (const id of [ 0, 5, 2 ** 40 ]) {
      const hb = await raw.heartbeat(id, 5000);
      assert.equal(hb.event, true);
      assert.equal(hb.request, false);
      assert.equal(hb.status, STATUS.OK);
      assert.equal(hb.id, BigInt(id));
      assert.equal(hb.body.toString('hex'), '4e'); // hessian2 null
      const r = await raw.call(id + 1, echoCall(ECHO, `after-hb-${id}`));
      assert.equal(r.decoded.value, `p1:after-hb-${id}`);
    }
    // A heartbeat and a call in one write: both answered.
    const hb = raw.heartbeat(100, 5000);
    const call = raw.call(101, echoCall(ECHO, 'same-write'));
    assert.equal((await hb).event, true);
    assert.equal((await call).decoded.value, 'p1:same-write');
    assert.equal(raw.closed, false);
  });

  it('a call slower than its route\'s timeout: SERVER_TIMEOUT (31) promptly, the late answer is dropped, the next call succeeds',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      await waitForClusterHosts(outbound, 'echo', [ node1.address ]);
      const raw = new RawDubboConnection(outboundAddress);
      resources.add(() => raw.close());
      await raw.connect();
      let started = Date.now();
      const r = await raw.call(1, sleepCall(SLOW, 3000, 'late'));
      const elapsed = r.at - started;
      assert.equal(r.status, STATUS.SERVER_TIMEOUT, `status ${r.status}: ${JSON.stringify(r.decoded)}`);
      assert.ok(elapsed >= SLOW_TIMEOUT_MS - 50 && elapsed < 2500, `SERVER_TIMEOUT after ${elapsed} ms`);
      assert.match(r.decoded.message, new RegExp(`^cairn sidecar: no response from .* within ${SLOW_TIMEOUT_MS} ms$`));
      // The same connection goes on.
      assert.equal((await raw.call(2, echoCall(SLOW, 'quick'))).decoded.value, 'p1:quick');

      // dubbo2.js sees an error, well before its own 10 s timer.
      const slow = echoConsumer(resources, outboundAddress, { dubboInterface: SLOW });
      started = Date.now();
      const { err } = await slow.sleep(3000, 'late-too');
      assert.ok(err);
      assert.match(err.message, /cairn sidecar: no response from .* within 400 ms/);
      assert.ok(Date.now() - started < 2500);

      // After the provider's late answers (3 s), both connections still work,
      // and nothing stray arrived on the raw one.
      await sleep(3200);
      assert.equal(await outbound.health(), 200);
      assert.equal((await raw.call(3, echoCall(ECHO, 'raw-later'))).decoded.value, 'p1:raw-later');
      assert.deepEqual(raw.unsolicited.filter(f => !f.event), []);
      assert.equal(await unwrap(slow.echo('later')), 'p1:later');
      assert.ok(await responses(outbound, SLOW, 'SERVER_TIMEOUT') >= 2);
    });

  it('the sidecars count the service\'s requests and responses in /metrics', { timeout: TEST_TIMEOUT_MS }, async () => {
    const consumer = echoConsumer(resources, outboundAddress);
    const outboundBefore = await requests(outbound, ECHO);
    const inboundBefore = await requests(node1.inbound, ECHO);
    const okBefore = await responses(outbound, ECHO);
    const N = 25;
    for (let i = 0; i < N; i++) assert.equal(await unwrap(consumer.echo(`m${i}`)), `p1:m${i}`);
    assert.equal(await requests(outbound, ECHO) - outboundBefore, N);
    assert.equal(await requests(node1.inbound, ECHO) - inboundBefore, N);
    assert.equal(await responses(outbound, ECHO) - okBefore, N);
    // The metric names and labels as documented.
    const samples = await outbound.metrics();
    const names = new Set(samples.map(s => s.name));
    assert.ok(names.has('cairn_sidecar_dubbo_requests_total'), [ ...names ].join(' '));
    assert.ok(names.has('cairn_sidecar_dubbo_responses_total'));
    assert.ok(samples.some(s => s.name === 'cairn_sidecar_dubbo_requests_total' && s.labels.service === UNROUTED));
    assert.ok(samples.some(s => s.name === 'cairn_sidecar_dubbo_responses_total' && s.labels.service === UNROUTED &&
      s.labels.status === 'SERVICE_NOT_FOUND'));
  });

  it('a second provider (with its inbound sidecar) joins while calls flow: no failed call, both answer', { timeout: TEST_TIMEOUT_MS }, async () => {
    const consumer = echoConsumer(resources, outboundAddress);
    const loop = new CallLoop(async () => tagOf(await unwrap(consumer.echo('x'))), { concurrency: 4, maxMs: 120000 }).start();
    try {
      await loop.advance(100);
      node2 = await startMeshNode(node2Resources, registry.grpcAddress, 'p2');
      await waitForClusterHosts(outbound, 'echo', [ node1.address, node2.address ]);
      await waitFor(() => loop.count('p1') >= 50 && loop.count('p2') >= 50, WAIT_MS,
        () => `answers from p1 and p2: ${JSON.stringify(loop.summary())}`);
      await loop.advance(100);
    } finally {
      await loop.stop();
    }
    assert.deepEqual(loop.failures, [], JSON.stringify(loop.summary()));
  });

  it('a provider SIGKILLed while calls flow: once the registry and the cluster drop it, every call succeeds on the other', { timeout: TEST_TIMEOUT_MS }, async () => {
    try {
      assert.ok(node2, 'the join test ran');
      await waitForClusterHosts(outbound, 'echo', [ node1.address, node2.address ]);
      const consumer = echoConsumer(resources, outboundAddress);
      // Spread: over 200 calls, each provider answers a fair share.
      const spread = { p1: 0, p2: 0 };
      for (let i = 0; i < 200; i++) spread[tagOf(await unwrap(consumer.echo(`s${i}`)))]++;
      assert.ok(spread.p1 >= 60 && spread.p2 >= 60, JSON.stringify(spread));

      const loop = new CallLoop(async () => tagOf(await unwrap(consumer.echo('k'))), { concurrency: 4, maxMs: 120000 }).start();
      let killedAt;
      let droppedAt;
      try {
        await waitFor(() => loop.count('p1') >= 20 && loop.count('p2') >= 20, WAIT_MS,
          () => `answers from p1 and p2: ${JSON.stringify(loop.summary())}`);
        killedAt = Date.now();
        await node2.provider.stop('SIGKILL');
        // The inbound sidecar's health check fails, it withdraws dubbo://,
        // the registry pushes, the outbound cluster drops the host.
        await waitForClusterHosts(outbound, 'echo', [ node1.address ]);
        droppedAt = Date.now();
        await loop.advance(200);
      } finally {
        await loop.stop();
      }
      const report = JSON.stringify(Object.assign(loop.summary(), { killedAt, droppedAt }));
      if (process.env.CAIRN_TEST_VERBOSE === '1') console.error('[kill]', report);
      // Calls routed to the dead provider before the cluster dropped it may
      // fail, each with a sidecar's error answer (not a hang, not a closed
      // connection), and only then.
      for (const failure of loop.failures) {
        assert.match(failure.message, /cairn sidecar: /, report);
        assert.ok(failure.at <= droppedAt + 1000, report);
      }
      // After the update: every call succeeds, on p1.
      for (let i = 0; i < 50; i++) assert.equal(await unwrap(consumer.echo(`after-${i}`)), `p1:after-${i}`);
      assert.equal(await outbound.health(), 200);
    } finally {
      await node2Resources.closeAll();
    }
  });
});

// ------------------------------------------------------------------------

describe('Dubbo 2 on an auto listener, static cluster', { timeout: SUITE_TIMEOUT_MS }, () => {
  let registry;
  let sidecar;
  let provider;
  const resources = new Resources();

  before(async () => {
    registry = await new RegistryProcess().start();
    provider = await startProvider(resources, 'static');
    sidecar = await startSidecar(resources, 'dubbo-auto', dubboOutboundConfig({
      registry: registry.grpcAddress,
      protocol: 'auto',
      routes: [{ service_prefix: 'com.cairn.mesh.Dubbo', cluster: 'local', timeout_ms: 10000 }],
      clusters: [{ name: 'local', endpoints: [ provider.address ] }],
    }));
  });

  after(async () => {
    try {
      await resources.closeAll();
    } finally {
      await registry.cleanup();
    }
  });

  it('the first byte 0xda picks Dubbo: dubbo2.js calls through, a prefix route matches', { timeout: TEST_TIMEOUT_MS }, async () => {
    const address = sidecar.listener('outbound');
    const consumer = echoConsumer(resources, address);
    for (let i = 0; i < 10; i++) assert.equal(await unwrap(consumer.echo(`a${i}`)), `static:a${i}`);
    const slow = echoConsumer(resources, address, { dubboInterface: SLOW });
    assert.equal(await unwrap(slow.echo('prefix')), 'static:prefix');
    // A connection whose first frame is a heartbeat is Dubbo too.
    const raw = new RawDubboConnection(address);
    resources.add(() => raw.close());
    await raw.connect();
    assert.equal((await raw.heartbeat(9, 5000)).event, true);
    assert.equal((await raw.call(10, echoCall(ECHO, 'raw'))).decoded.value, 'static:raw');
    // Not under the prefix: no route.
    assert.equal((await raw.call(11, echoCall(UNROUTED, 'x'))).status, STATUS.SERVICE_NOT_FOUND);
    assert.ok(await requests(sidecar, ECHO) >= 11);
  });

  it('malformed requests: an unreadable body gets SERVICE_NOT_FOUND, an oversized frame BAD_REQUEST (40) and a close', { timeout: TEST_TIMEOUT_MS }, async () => {
    const address = sidecar.listener('outbound');
    const raw = new RawDubboConnection(address);
    resources.add(() => raw.close());
    await raw.connect();
    // A well-framed two-way request whose body is garbage: its service cannot
    // be read (the service is ""), which only a match-all route could take;
    // there is none. The framing is intact, so the connection goes on.
    const garbage = Buffer.from(encodeRequest(21, echoCall(ECHO, 'g')));
    garbage.fill(0xff, 16);
    let r = await raw.request(21, garbage, 5000);
    assert.equal(r.status, STATUS.SERVICE_NOT_FOUND);
    assert.equal(r.decoded.message, "cairn sidecar: no route for service ''");
    assert.equal((await raw.call(22, echoCall(ECHO, 'next'))).decoded.value, 'static:next');
    // A header announcing a 2 GiB body: BAD_REQUEST with the request's id,
    // then the sidecar closes the connection (the stream cannot be resynced).
    const oversized = Buffer.from(encodeRequest(23, echoCall(ECHO, 'o')).subarray(0, 16));
    oversized.writeInt32BE(0x7fffffff, 12);
    r = await raw.request(23, oversized, 5000);
    assert.equal(r.status, STATUS.BAD_REQUEST);
    assert.match(r.decoded.message, /^cairn sidecar: .*exceeds max_frame_bytes/);
    await waitFor(() => raw.closed, WAIT_MS, 'the sidecar to close the connection');
    // Other connections are unaffected.
    const consumer = echoConsumer(resources, address);
    assert.equal(await unwrap(consumer.echo('fresh')), 'static:fresh');
  });
});
