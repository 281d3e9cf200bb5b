'use strict';

// SOFARPC Bolt through the Cairn mesh, with real peers only: a real
// `cairn registry`, real `cairn sidecar` processes and real sofa-rpc-node
// providers (child processes, so they can be SIGKILLed) and consumers, all
// on 127.0.0.1.
//
//   consumer ──► outbound sidecar ──► inbound sidecar ──► provider
//   (serverHost:  (Bolt route → cluster   (Bolt listener → static cluster;
//    the sidecar)  fed by the registry)    publishes bolt://<listener>)
//
// and, without an inbound sidecar, providers that register themselves with
// CairnRegistry (data_id interface:version, group SOFA) while the outbound
// sidecar's cluster subscribes to that key.
//
// Run: node --test tests/node/   (CAIRN_BIN=path/to/cairn; default build/bin/cairn)

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const url = require('url');
const protobuf = require('protobufjs');
const boltProtocol = require('sofa-bolt-node');
const { RegistryProcess, sleep } = require('./support/registry_process');
const { logger, waitFor } = require('./support/sofa');
const { SidecarProcess } = require('./support/sidecar_process');
const { ProviderProcess, ECHO_INTERFACE, PROTO_INTERFACE, PROTO_FILE } = require('./support/provider_process');
const {
  outboundConfig, inboundConfig, fixedClient, waitForClusterHosts, CallLoop, Resources,
} = require('./support/mesh');
const { RawBoltConnection, STATUS } = require('./support/bolt_wire');

// Bounded, and generous enough for sanitizer builds of the binaries.
const SUITE_TIMEOUT_MS = 400000;
const TEST_TIMEOUT_MS = 150000;
const WAIT_MS = 30000;
const CALL_OPTIONS = { responseTimeout: 10000 };
// Callers per loop in the SIGKILL test: the bound on its failed calls.
const KILL_CONCURRENCY = 8;
// Workers of the outbound sidecar that the kill test drives.
const OUTBOUND_WORKERS = 2;

const ECHO_ID = `${ECHO_INTERFACE}:1.0`;
const PROTO_ID = `${PROTO_INTERFACE}:1.0`;
// Served by the same providers; its route retries calls cut by a reset.
const IDEMPOTENT_INTERFACE = 'com.cairn.mesh.IdempotentEcho';
const IDEMPOTENT_ID = `${IDEMPOTENT_INTERFACE}:1.0`;

const proto = protobuf.loadSync(PROTO_FILE);
boltProtocol.setOptions({ proto });

const tagOf = answer => String(answer).split(':')[0];

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

async function startProvider(resources, options) {
  const provider = new ProviderProcess(options);
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

// A provider and its inbound sidecar, publishing the echo and proto services.
async function startMeshNode(resources, registryAddress, tag) {
  const provider = await startProvider(resources, { tag });
  const inbound = await startSidecar(resources, `inbound-${tag}`, inboundConfig({
    registry: registryAddress,
    provider: provider.address,
    publish: [
      { listener: 'echo', data_id: ECHO_ID },
      { listener: 'proto', data_id: PROTO_ID },
    ],
  }));
  return { provider, inbound };
}

function consumerOf(resources, serverHost, interfaceName) {
  const client = fixedClient();
  resources.add(() => client.close());
  return client.createConsumer({ interfaceName, serverHost });
}

// The responses a sidecar sent for a service, with this status.
async function responses(sidecar, service, status = 'SUCCESS') {
  return sidecar.metric('cairn_sidecar_bolt_responses_total', { service, status });
}

describe('Bolt through outbound and inbound sidecars', { timeout: SUITE_TIMEOUT_MS }, () => {
  let registry;
  let outbound;
  let node1;
  let outboundAddress;
  const resources = new Resources();

  before(async () => {
    registry = await new RegistryProcess().start();
    node1 = await startMeshNode(resources, registry.grpcAddress, 'p1');
    outbound = await startSidecar(resources, 'outbound', outboundConfig({
      registry: registry.grpcAddress,
      routes: [
        { service: ECHO_ID, cluster: 'echo', timeout_ms: 10000 },
        { service: PROTO_ID, cluster: 'proto', timeout_ms: 10000 },
      ],
      clusters: [
        { name: 'echo', data_id: ECHO_ID },
        { name: 'proto', data_id: PROTO_ID },
      ],
    }));
    outboundAddress = outbound.listener('outbound');
    resources.add(() => node2Resources.closeAll()); // if the leave test did not run
  });

  after(async () => {
    try {
      await resources.closeAll();
    } finally {
      await registry.cleanup();
    }
  });

  it('the inbound sidecar publishes bolt://<its listener> under the service\'s dataInfoId', { timeout: TEST_TIMEOUT_MS }, async () => {
    const echoEndpoint = `bolt://${node1.inbound.listener('echo')}`;
    const protoEndpoint = `bolt://${node1.inbound.listener('proto')}`;
    await waitFor(async () => JSON.stringify(await publishedData(registry, ECHO_ID)) === JSON.stringify([ echoEndpoint ]),
      WAIT_MS, `${ECHO_ID} published as ${echoEndpoint}`);
    await waitFor(async () => JSON.stringify(await publishedData(registry, PROTO_ID)) === JSON.stringify([ protoEndpoint ]),
      WAIT_MS, `${PROTO_ID} published as ${protoEndpoint}`);
    await waitForClusterHosts(outbound, 'echo', [ node1.inbound.listener('echo') ]);
    await waitForClusterHosts(outbound, 'proto', [ node1.inbound.listener('proto') ]);
  });

  it('hessian2: consumer → outbound → inbound → provider', { timeout: TEST_TIMEOUT_MS }, async () => {
    await waitForClusterHosts(outbound, 'echo', [ node1.inbound.listener('echo') ]);
    const consumer = consumerOf(resources, outboundAddress, ECHO_INTERFACE);
    await consumer.ready();
    const before = await node1.provider.stats();
    for (let i = 0; i < 20; i++) {
      assert.equal(await consumer.invoke('echo', [ `hello-${i}` ], CALL_OPTIONS), `p1:hello-${i}`);
    }
    // Both sidecars carried the calls, and the provider answered them.
    assert.equal((await node1.provider.stats()).echo - before.echo, 20);
    assert.ok(await responses(outbound, ECHO_ID) >= 20);
    assert.ok(await responses(node1.inbound, ECHO_ID) >= 20);
  });

  it('protobuf: consumer → outbound → inbound → provider', { timeout: TEST_TIMEOUT_MS }, async () => {
    await waitForClusterHosts(outbound, 'proto', [ node1.inbound.listener('proto') ]);
    const consumer = consumerOf(resources, outboundAddress, PROTO_INTERFACE);
    await consumer.ready();
    for (let i = 0; i < 10; i++) {
      const reply = await consumer.invoke('echo', [{ name: `n${i}` }], Object.assign({ codecType: 'protobuf' }, CALL_OPTIONS));
      assert.equal(reply.message, `hello n${i}`);
      assert.equal(reply.provider, 'p1');
    }
    assert.ok((await node1.provider.stats()).proto >= 10);
    assert.ok(await responses(outbound, PROTO_ID) >= 10);
    assert.ok(await responses(node1.inbound, PROTO_ID) >= 10);
  });

  it('oneway calls reach the provider (sofa-bolt-node RpcClient.oneway)', { timeout: TEST_TIMEOUT_MS }, async () => {
    // sofa-rpc-node's consumer has no oneway API; its transport, sofa-bolt-node's
    // RpcClient, has: a type-2 request that nobody answers. (sofa-rpc-node's
    // server answers it anyway; the sidecars must drop that answer.)
    await waitForClusterHosts(outbound, 'echo', [ node1.inbound.listener('echo') ]);
    const BoltRpcClient = boltProtocol.RpcClient;
    const bolt = new BoltRpcClient({ address: url.parse(`bolt://${outboundAddress}`), logger });
    resources.add(() => bolt.close());
    await bolt.ready();
    const before = (await node1.provider.stats()).note;
    const requestsBefore = await outbound.metric('cairn_sidecar_bolt_requests_total', { service: ECHO_ID });
    const N = 50;
    for (let i = 0; i < N; i++) {
      bolt.oneway({ serverSignature: ECHO_ID, methodName: 'note', args: [ `o${i}` ],
        requestProps: { service: ECHO_ID }, timeout: 3000 });
    }
    await waitFor(async () => (await node1.provider.stats()).note - before === N, WAIT_MS,
      async () => `${N} oneway calls at the provider`);
    assert.equal(await outbound.metric('cairn_sidecar_bolt_requests_total', { service: ECHO_ID }) - requestsBefore, N);
    // The same path still answers two-way calls.
    const consumer = consumerOf(resources, outboundAddress, ECHO_INTERFACE);
    await consumer.ready();
    assert.equal(await consumer.invoke('echo', [ 'after-oneway' ], CALL_OPTIONS), 'p1:after-oneway');
  });

  it('a call whose timeout expires: the sidecar answers TIMEOUT promptly, stays healthy, the next call succeeds', { timeout: TEST_TIMEOUT_MS }, async () => {
    await waitForClusterHosts(outbound, 'echo', [ node1.inbound.listener('echo') ]);

    // 1. A raw frame with a 400 ms timeout, provider sleeping 3 s: the
    //    sidecar's own deadline answers TIMEOUT (no client timer involved).
    const raw = new RawBoltConnection(outboundAddress);
    resources.add(() => raw.close());
    await raw.connect();
    const timeoutsBefore = await responses(outbound, ECHO_ID, 'TIMEOUT');
    let started = Date.now();
    const answer = await raw.request(1, { service: ECHO_ID, method: 'sleep', args: [ 3000, 'raw' ], timeout: 400 });
    let elapsed = answer.at - started;
    assert.equal(answer.status, STATUS.TIMEOUT, `status ${answer.status}: ${answer.content.toString('latin1')}`);
    assert.ok(elapsed >= 350 && elapsed < 2500, `TIMEOUT after ${elapsed} ms`);
    assert.match(answer.content.toString('latin1'), /cairn sidecar: no response from .* within 400 ms/);
    assert.equal(await responses(outbound, ECHO_ID, 'TIMEOUT') - timeoutsBefore, 1);
    // The same connection goes on.
    const ok = await raw.request(2, { service: ECHO_ID, method: 'echo', args: [ 'raw-next' ], timeout: 5000 });
    assert.equal(ok.status, STATUS.SUCCESS);

    // 2. A sofa-rpc-node consumer with a 500 ms timeout: an error within
    //    bounds, not a hang (which error: see the next test).
    const consumer = consumerOf(resources, outboundAddress, ECHO_INTERFACE);
    await consumer.ready();
    started = Date.now();
    await assert.rejects(consumer.invoke('sleep', [ 3000, 'late' ], { responseTimeout: 500 }));
    elapsed = Date.now() - started;
    assert.ok(elapsed < 2500, `the consumer's call failed after ${elapsed} ms`);

    // 3. The late answers (after 3 s) are dropped; the sidecars are healthy
    //    and the next calls succeed.
    await sleep(3200);
    assert.equal(await outbound.health(), 200);
    assert.equal(await node1.inbound.health(), 200);
    const again = await raw.request(3, { service: ECHO_ID, method: 'echo', args: [ 'raw-later' ], timeout: 5000 });
    assert.equal(again.status, STATUS.SUCCESS);
    assert.equal(raw.closed, false);
    const fresh = consumerOf(resources, outboundAddress, ECHO_INTERFACE);
    await fresh.ready();
    for (let i = 0; i < 5; i++) assert.equal(await fresh.invoke('echo', [ `later-${i}` ], CALL_OPTIONS), `p1:later-${i}`);
  });

  it('sofa-rpc-node: the sidecar\'s TIMEOUT is a timeout error and leaves the connection\'s other calls alone',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      await waitForClusterHosts(outbound, 'echo', [ node1.inbound.listener('echo') ]);
      const consumer = consumerOf(resources, outboundAddress, ECHO_INTERFACE);
      await consumer.ready();
      assert.equal(await consumer.invoke('echo', [ 'first' ], CALL_OPTIONS), 'p1:first');
      // A call in flight on the same connection while another times out.
      const alongside = consumer.invoke('sleep', [ 1000, 'alongside' ], { responseTimeout: 5000 });
      alongside.catch(() => {}); // awaited below; not an unhandled rejection if an assertion fails first
      const started = Date.now();
      // The consumer's own timer (RpcResponseTimeoutError) or the sidecar's
      // TIMEOUT answer, whichever comes first; the other one must do no harm
      // (the sidecar's error content is a hessian2 RpcServerException that
      // sofa-bolt-node can decode, so it keeps the connection).
      await assert.rejects(consumer.invoke('sleep', [ 3000, 'late' ], { responseTimeout: 500 }),
        err => /RpcResponseTimeoutError|cairn sidecar: no response from .* within 500 ms/.test(`${err.name}: ${err.message}`));
      assert.ok(Date.now() - started < 2500);
      assert.equal(await alongside, 'p1:alongside');
      assert.equal(await consumer.invoke('echo', [ 'next' ], CALL_OPTIONS), 'p1:next');
    });

  it('a service without a route: sofa-rpc-node gets the sidecar\'s NO_PROCESSOR error; the connection goes on', { timeout: TEST_TIMEOUT_MS }, async () => {
    const client = fixedClient();
    resources.add(() => client.close());
    const unrouted = client.createConsumer({ interfaceName: 'com.cairn.mesh.NoRoute', serverHost: outboundAddress });
    const routed = client.createConsumer({ interfaceName: ECHO_INTERFACE, serverHost: outboundAddress });
    await unrouted.ready();
    await routed.ready();
    const alongside = routed.invoke('sleep', [ 300, 'alongside' ], CALL_OPTIONS);
    alongside.catch(() => {});
    await assert.rejects(unrouted.invoke('echo', [ 'x' ], CALL_OPTIONS),
      /RpcServerException: cairn sidecar: no route for service 'com\.cairn\.mesh\.NoRoute:1\.0'/);
    assert.equal(await alongside, 'p1:alongside');
    assert.equal(await routed.invoke('echo', [ 'after' ], CALL_OPTIONS), 'p1:after');
  });

  // The second mesh node, shared by the join and the leave tests.
  let node2 = null;
  const node2Resources = new Resources();

  it('a second provider (with its inbound sidecar) joins while calls flow: no failed call, both answer', { timeout: TEST_TIMEOUT_MS }, async () => {
    const consumer = consumerOf(resources, outboundAddress, ECHO_INTERFACE);
    await consumer.ready();
    const loop = new CallLoop(async () => tagOf(await consumer.invoke('echo', [ 'x' ], CALL_OPTIONS)),
      { concurrency: 4, maxMs: 120000 }).start();
    try {
      await loop.advance(100);
      node2 = await startMeshNode(node2Resources, registry.grpcAddress, 'p2');
      await waitForClusterHosts(outbound, 'echo', [ node1.inbound.listener('echo'), node2.inbound.listener('echo') ]);
      await waitFor(() => loop.count('p1') >= 50 && loop.count('p2') >= 50, WAIT_MS,
        () => `answers from p1 and p2: ${JSON.stringify(loop.summary())}`);
      await loop.advance(100);
    } finally {
      await loop.stop();
    }
    assert.deepEqual(loop.failures, [], JSON.stringify(loop.summary()));
  });

  it('the second provider leaves (SIGTERM to its inbound sidecar, then the provider) while calls flow: no failed call',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      try {
        assert.ok(node2, 'the join test ran');
        const consumer = consumerOf(resources, outboundAddress, ECHO_INTERFACE);
        await consumer.ready();
        const loop = new CallLoop(async () => tagOf(await consumer.invoke('echo', [ 'x' ], CALL_OPTIONS)),
          { concurrency: 8, maxMs: 120000 }).start();
        try {
          await waitFor(() => loop.count('p1') >= 20 && loop.count('p2') >= 20, WAIT_MS,
            () => `answers from p1 and p2: ${JSON.stringify(loop.summary())}`);
          // SIGTERM: the inbound sidecar withdraws its publication, then drains;
          // the provider stops once nothing routes to it.
          await node2.inbound.stop('SIGTERM');
          await waitForClusterHosts(outbound, 'echo', [ node1.inbound.listener('echo') ]);
          await node2.provider.stop('SIGTERM');
          await loop.advance(200);
        } finally {
          await loop.stop();
        }
        assert.deepEqual(loop.failures, [], JSON.stringify(loop.summary()));
      } finally {
        await node2Resources.closeAll();
      }
    });
});

describe('Bolt through an outbound sidecar to providers registered with CairnRegistry', { timeout: SUITE_TIMEOUT_MS }, () => {
  let registry;
  let outbound;
  let outboundAddress;
  const resources = new Resources();
  const providerOptions = tag => ({ tag, registryServers: [ registry.grpcAddress ], extraEchoInterfaces: [ IDEMPOTENT_INTERFACE ] });

  before(async () => {
    registry = await new RegistryProcess().start();
    outbound = await startSidecar(resources, 'outbound-direct', outboundConfig({
      workers: OUTBOUND_WORKERS,
      registry: registry.grpcAddress,
      routes: [
        { service: ECHO_ID, cluster: 'echo', timeout_ms: 10000 },
        { service: PROTO_ID, cluster: 'proto', timeout_ms: 10000 },
        { service: IDEMPOTENT_ID, cluster: 'idempotent', timeout_ms: 10000,
          retry: { attempts: 2, on_connect_failure: true, on_reset: true } },
      ],
      clusters: [
        // The keys sofa-rpc-node's providers register under through CairnRegistry.
        { name: 'echo', data_id: ECHO_ID, group: 'SOFA' },
        { name: 'proto', data_id: PROTO_ID, group: 'SOFA' },
        { name: 'idempotent', data_id: IDEMPOTENT_ID, group: 'SOFA' },
      ],
    }));
    outboundAddress = outbound.listener('outbound');
  });

  after(async () => {
    try {
      await resources.closeAll();
    } finally {
      await registry.cleanup();
    }
  });

  it('a self-registered provider is found through the registry (hessian2 and protobuf)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const local = new Resources();
    try {
      const a = await startProvider(local, providerOptions('a'));
      // The provider's URL (bolt://127.0.0.1:PORT?interface=...&weight=100&...)
      // is what the sidecar's cluster reads.
      const [ published ] = await waitFor(async () => {
        const data = await publishedData(registry, ECHO_ID);
        return data.length === 1 && data;
      }, WAIT_MS, `${ECHO_ID} registered`);
      assert.equal(new URL(published).host, a.address);
      await waitForClusterHosts(outbound, 'echo', [ a.address ]);
      await waitForClusterHosts(outbound, 'proto', [ a.address ]);

      const echo = consumerOf(local, outboundAddress, ECHO_INTERFACE);
      await echo.ready();
      for (let i = 0; i < 10; i++) assert.equal(await echo.invoke('echo', [ `h${i}` ], CALL_OPTIONS), `a:h${i}`);
      const protoConsumer = consumerOf(local, outboundAddress, PROTO_INTERFACE);
      await protoConsumer.ready();
      const reply = await protoConsumer.invoke('echo', [{ name: 'cairn' }], Object.assign({ codecType: 'protobuf' }, CALL_OPTIONS));
      assert.deepEqual({ message: reply.message, provider: reply.provider }, { message: 'hello cairn', provider: 'a' });
      assert.ok((await a.stats()).proto >= 1);
    } finally {
      await local.closeAll();
    }
    // Its registration went with it (SIGKILL in closeAll: the stream broke).
    await waitForClusterHosts(outbound, 'echo', []);
  });

  it('a second self-registered provider joins and leaves while calls flow: no failed call', { timeout: TEST_TIMEOUT_MS }, async () => {
    const local = new Resources();
    const loopHolder = {};
    try {
      const a = await startProvider(local, providerOptions('a'));
      await waitForClusterHosts(outbound, 'echo', [ a.address ]);
      const consumer = consumerOf(local, outboundAddress, ECHO_INTERFACE);
      await consumer.ready();
      const loop = loopHolder.loop = new CallLoop(async () => tagOf(await consumer.invoke('echo', [ 'x' ], CALL_OPTIONS)),
        { concurrency: 4, maxMs: 120000 }).start();
      await loop.advance(100);
      const b = await startProvider(local, providerOptions('b'));
      await waitForClusterHosts(outbound, 'echo', [ a.address, b.address ]);
      await waitFor(() => loop.count('a') > 0 && loop.count('b') >= 50, WAIT_MS,
        () => `answers from a and b: ${JSON.stringify(loop.summary())}`);
      // Leaving the sofa-rpc-node way: unPublish, then close once the sidecar
      // no longer routes to it.
      await b.ask('unpublish');
      await waitForClusterHosts(outbound, 'echo', [ a.address ]);
      await loop.advance(100);
      await b.stop('SIGTERM');
      await loop.advance(200);
      await loop.stop();
      assert.deepEqual(loop.failures, [], JSON.stringify(loop.summary()));
      assert.ok(loop.count('a') > 0);
    } finally {
      if (loopHolder.loop) await loopHolder.loop.stop();
      await local.closeAll();
    }
    await waitForClusterHosts(outbound, 'echo', []);
  });

  it('a provider SIGKILLed while calls flow: calls fail over, errors bounded by the retry policy', { timeout: TEST_TIMEOUT_MS }, async () => {
    const local = new Resources();
    const loops = [];
    try {
      const survivor = await startProvider(local, providerOptions('s'));
      const victim = await startProvider(local, providerOptions('v'));
      await waitForClusterHosts(outbound, 'echo', [ survivor.address, victim.address ]);
      await waitForClusterHosts(outbound, 'idempotent', [ survivor.address, victim.address ]);
      const plain = consumerOf(local, outboundAddress, ECHO_INTERFACE);
      const idempotent = consumerOf(local, outboundAddress, IDEMPOTENT_INTERFACE);
      await plain.ready();
      await idempotent.ready();
      // The calls take a while at the provider, so that several are in
      // flight on the victim's connection when it dies.
      const plainLoop = new CallLoop(async () => tagOf(await plain.invoke('sleep', [ 5, 'x' ], CALL_OPTIONS)),
        { concurrency: KILL_CONCURRENCY, maxMs: 120000 }).start();
      const idempotentLoop = new CallLoop(async () => tagOf(await idempotent.invoke('sleep', [ 5, 'y' ], CALL_OPTIONS)),
        { concurrency: KILL_CONCURRENCY, maxMs: 120000 }).start();
      loops.push(plainLoop, idempotentLoop);
      await waitFor(() => loops.every(l => l.count('s') >= 20 && l.count('v') >= 20), WAIT_MS,
        () => `answers from s and v: ${JSON.stringify(loops.map(l => l.summary()))}`);
      const victimAnswersAtKill = loops.map(l => l.count('v'));
      const killedAt = Date.now();
      await victim.stop('SIGKILL');
      await plainLoop.advance(300);
      await idempotentLoop.advance(300);
      await plainLoop.stop();
      await idempotentLoop.stop();
      const report = JSON.stringify(loops.map(l => l.summary()));
      if (process.env.CAIRN_TEST_VERBOSE === '1') console.error('[kill]', report);
      // Idempotent route (retry on_reset: true): the calls cut by the kill
      // are retried on the survivor, and new calls that pick the victim
      // before the registry's push fail to connect and are retried
      // (on_connect_failure): no failure at all.
      assert.deepEqual(idempotentLoop.failures, [], report);
      // Default route (on_reset: false): the calls already written to the
      // victim fail, and only they. Each of the outbound sidecar's workers
      // (OUTBOUND_WORKERS) has its own connection to the victim and learns of
      // its death on its own: until it has, it may still write a caller's
      // next call there. So a caller fails at most once per worker, and the
      // failures are at most callers x workers (one CI run under load saw 10,
      // runs on a quiet machine 4-5). Each failure is the sidecar's ERROR_COMM
      // answer (a hessian2 RpcServerException naming the provider), not the
      // consumer's own connection to the sidecar failing
      // (RpcSocketCloseError, or RpcRequestEncodeError on a closed socket).
      assert.ok(plainLoop.failures.length <= KILL_CONCURRENCY * OUTBOUND_WORKERS, report);
      for (const failure of plainLoop.failures) {
        assert.match(failure.message, /cairn sidecar: provider 127\.0\.0\.1:\d+: the upstream connection closed/, report);
      }
      // Answers after the kill came from the survivor (at most the calls the
      // victim had answered into its socket before dying).
      loops.forEach((l, i) => assert.ok(l.count('v') - victimAnswersAtKill[i] <= KILL_CONCURRENCY, report));
      // Failures only right after the kill.
      for (const failure of plainLoop.failures) assert.ok(failure.at - killedAt < 5000, report);
      // The victim's registration went with its stream; the cluster follows.
      await waitForClusterHosts(outbound, 'echo', [ survivor.address ]);
      const after = consumerOf(local, outboundAddress, ECHO_INTERFACE);
      await after.ready();
      for (let i = 0; i < 50; i++) assert.equal(await after.invoke('echo', [ `after-${i}` ], CALL_OPTIONS), `s:after-${i}`);
      assert.equal(await outbound.health(), 200);
    } finally {
      for (const l of loops) await l.stop();
      await local.closeAll();
    }
  });
});
