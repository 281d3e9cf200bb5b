'use strict';

// @cairn/sofa-registry (clients/node) against a real `cairn registry` and
// real sofa-rpc-node providers and consumers, all on 127.0.0.1.
//
// Run: node --test tests/node/   (CAIRN_BIN=path/to/cairn; default build/bin/cairn)

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const protobuf = require('protobufjs');
const boltProtocol = require('sofa-bolt-node');
const { RegistryProcess } = require('./support/registry_process');
const { Resources } = require('./support/resources');
const {
  LoopbackRpcServer, RpcClient, createRegistry, logger, waitFor, AddressRecorder,
} = require('./support/sofa');
const { dataInfoKey } = require('../../clients/node');

// Bounded, and generous enough for sanitizer builds of the registry.
const SUITE_TIMEOUT_MS = 300000;
const TEST_TIMEOUT_MS = 120000;
const WAIT_MS = 30000;
const CALL_OPTIONS = { responseTimeout: 10000 };

// A sofa-rpc-node provider with its own CairnRegistry. `services` maps an
// interface name to its delegate; published with the RpcServer's defaults
// (version 1.0, group SOFA).
async function startProvider(resources, servers, services, options = {}) {
  const registry = createRegistry(servers);
  const server = new LoopbackRpcServer(Object.assign({ logger, registry }, options));
  for (const [ interfaceName, delegate ] of Object.entries(services)) {
    server.addService({ interfaceName }, delegate);
  }
  const close = resources.add(async () => {
    await server.close();
    await registry.close();
  });
  await server.start();
  await server.publish();
  const host = `127.0.0.1:${server.publishPort}`;
  return { server, registry, host, close };
}

// An RpcClient whose consumers discover providers through a CairnRegistry.
function startConsumerClient(resources, servers) {
  const registry = createRegistry(servers);
  // retryFaultInterval: sofa-rpc-node's address group sleeps this long
  // between reconnect rounds and only notices close() when it wakes; its
  // default (30 s) would keep the test process alive that long.
  const client = new RpcClient({ logger, registry, retryFaultInterval: 1000 });
  const close = resources.add(async () => {
    await client.close();
    await registry.close();
  });
  return { client, registry, close };
}

function echoService(tag) {
  return {
    async echo(name) {
      return `${tag}:${name}`;
    },
  };
}

function serviceConfig(interfaceName) {
  return { interfaceName, version: '1.0', group: 'SOFA' };
}

async function publishersOf(registryProcess, interfaceName) {
  const key = dataInfoKey(serviceConfig(interfaceName));
  const described = await registryProcess.describe(key.data_id, key.group);
  return described.publishers || [];
}

// Whether the registry still holds publishers or subscribers of a service.
async function holds(registryProcess, interfaceName) {
  const dataId = dataInfoKey(serviceConfig(interfaceName)).data_id;
  const infos = await registryProcess.dataInfos();
  return infos.some(info => info.key.data_id === dataId && (info.publishers > 0 || info.subscribers > 0));
}

describe('CairnRegistry with sofa-rpc-node and one registry', { timeout: SUITE_TIMEOUT_MS }, () => {
  let registry;
  const resources = new Resources();

  before(async () => {
    registry = await new RegistryProcess().start();
  });

  after(async () => {
    try {
      await resources.closeAll();
    } finally {
      await registry.cleanup();
    }
  });

  it('a consumer discovers a provider and calls it (hessian2)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const iface = 'com.cairn.test.EchoService';
    const provider = await startProvider(resources, [ registry.grpcAddress ], { [iface]: echoService('p1') });

    // The provider's URL is registered under interface:version / SOFA.
    const publishers = await publishersOf(registry, iface);
    assert.equal(publishers.length, 1);
    assert.equal(publishers[0].publisher.data.length, 1);
    const url = new URL(publishers[0].publisher.data[0]);
    assert.equal(url.protocol, 'bolt:');
    assert.equal(url.host, provider.host);
    assert.equal(url.searchParams.get('interface'), iface);

    const { client } = startConsumerClient(resources, [ registry.grpcAddress ]);
    const consumer = client.createConsumer({ interfaceName: iface });
    await consumer.ready();
    assert.equal(await consumer.invoke('echo', [ 'hello' ], CALL_OPTIONS), 'p1:hello');
  });

  it('a consumer calls a provider with codecType protobuf', { timeout: TEST_TIMEOUT_MS }, async () => {
    const proto = protobuf.loadSync(path.join(__dirname, 'fixtures', 'echo.proto'));
    boltProtocol.setOptions({ proto });
    const iface = 'cairn.test.ProtoEcho';
    await startProvider(resources, [ registry.grpcAddress ], {
      [iface]: {
        async echo(request) {
          return { message: `hello ${request.name}`, provider: 'p1' };
        },
      },
    }, { codecType: 'protobuf', proto });

    const { client } = startConsumerClient(resources, [ registry.grpcAddress ]);
    const consumer = client.createConsumer({ interfaceName: iface });
    await consumer.ready();
    const reply = await consumer.invoke('echo', [{ name: 'cairn' }],
      Object.assign({ codecType: 'protobuf' }, CALL_OPTIONS));
    assert.equal(reply.message, 'hello cairn');
    assert.equal(reply.provider, 'p1');
  });

  it('the address list follows a second provider joining and leaving', { timeout: TEST_TIMEOUT_MS }, async () => {
    const iface = 'com.cairn.test.JoinLeave';
    const servers = [ registry.grpcAddress ];
    const p1 = await startProvider(resources, servers, { [iface]: echoService('p1') });
    const { client, registry: consumerRegistry } = startConsumerClient(resources, servers);
    const consumer = client.createConsumer({ interfaceName: iface });
    await consumer.ready();
    const recorder = new AddressRecorder();
    consumerRegistry.subscribe(serviceConfig(iface), recorder.listener);
    await recorder.waitForHosts([ p1.host ]);
    assert.equal(await consumer.invoke('echo', [ 'a' ], CALL_OPTIONS), 'p1:a');

    const p2 = await startProvider(resources, servers, { [iface]: echoService('p2') });
    await recorder.waitForHosts([ p1.host, p2.host ]);
    // Round robin over both: both answer within a bounded number of calls.
    const seen = new Set();
    for (let i = 0; i < 200 && seen.size < 2; i++) {
      seen.add((await consumer.invoke('echo', [ 'b' ], CALL_OPTIONS)).split(':')[0]);
    }
    assert.deepEqual([ ...seen ].sort(), [ 'p1', 'p2' ]);

    await p2.close(); // unPublish (unRegister), then close the registry
    await recorder.waitForHosts([ p1.host ]);
    for (let i = 0; i < 20; i++) {
      assert.equal(await consumer.invoke('echo', [ 'c' ], CALL_OPTIONS), 'p1:c');
    }
    assert.equal((await publishersOf(registry, iface)).length, 1);
  });

  it('unRegister removes the provider from the consumer\'s list', { timeout: TEST_TIMEOUT_MS }, async () => {
    const iface = 'com.cairn.test.Unregister';
    const servers = [ registry.grpcAddress ];
    const provider = await startProvider(resources, servers, { [iface]: echoService('p1') });
    const { client, registry: consumerRegistry } = startConsumerClient(resources, servers);
    const consumer = client.createConsumer({ interfaceName: iface });
    await consumer.ready();
    const recorder = new AddressRecorder();
    consumerRegistry.subscribe(serviceConfig(iface), recorder.listener);
    await recorder.waitForHosts([ provider.host ]);
    assert.equal(await consumer.invoke('echo', [ 'x' ], CALL_OPTIONS), 'p1:x');

    await provider.server.unPublish(); // registry.unRegister({ interfaceName, version, group, url })
    await recorder.waitForHosts([]);
    assert.equal((await publishersOf(registry, iface)).length, 0);
    await assert.rejects(consumer.invoke('echo', [ 'y' ], CALL_OPTIONS));

    // Registering again brings it back.
    await provider.server.publish();
    await recorder.waitForHosts([ provider.host ]);
    assert.equal(await consumer.invoke('echo', [ 'z' ], CALL_OPTIONS), 'p1:z');
  });

  it('unSubscribe stops the listener and removes the subscriber', { timeout: TEST_TIMEOUT_MS }, async () => {
    const iface = 'com.cairn.test.Unsubscribe';
    const servers = [ registry.grpcAddress ];
    const regClient = createRegistry(servers);
    resources.add(() => regClient.close());
    await regClient.ready();
    const first = new AddressRecorder();
    const second = new AddressRecorder();
    await regClient.subscribe(serviceConfig(iface), first.listener);
    await regClient.subscribe(serviceConfig(iface), second.listener);
    await first.waitForHosts([]);
    await second.waitForHosts([]);

    const url = 'bolt://127.0.0.1:1?interface=' + iface;
    await regClient.register(Object.assign({ url }, serviceConfig(iface)));
    await first.waitForHosts([ '127.0.0.1:1' ]);
    await second.waitForHosts([ '127.0.0.1:1' ]);

    // One listener gone: the subscriber stays for the other.
    await regClient.unSubscribe(serviceConfig(iface), first.listener);
    let described = await registry.describe(dataInfoKey(serviceConfig(iface)).data_id, 'SOFA');
    assert.equal((described.subscribers || []).length, 1);
    const firstCount = first.lists.length;
    await regClient.unRegister(Object.assign({ url }, serviceConfig(iface)));
    await second.waitForHosts([]);
    assert.equal(first.lists.length, firstCount);

    // The last one gone: so is the subscriber.
    await regClient.unSubscribe(serviceConfig(iface), second.listener);
    described = await registry.describe(dataInfoKey(serviceConfig(iface)).data_id, 'SOFA');
    assert.equal((described.subscribers || []).length, 0);
  });

  it('server refusals reject with the server\'s code and message', { timeout: TEST_TIMEOUT_MS }, async () => {
    const regClient = createRegistry([ registry.grpcAddress ]);
    resources.add(() => regClient.close());
    await regClient.ready();
    const tooLong = { interfaceName: 'x'.repeat(300), url: 'bolt://127.0.0.1:1' };
    await assert.rejects(regClient.register(tooLong), err => {
      assert.equal(err.name, 'CairnRegistryError');
      assert.equal(err.code, 3);
      assert.equal(err.codeName, 'INVALID_ARGUMENT');
      assert.match(err.message, /data_id is \d+ bytes; the limit is 256/);
      return true;
    });
    // A refused subscription rejects too, and is emitted as 'error'.
    const emitted = new Promise(resolve => regClient.once('error', resolve));
    await assert.rejects(regClient.subscribe(tooLong, () => {}), err => err.code === 3);
    assert.equal((await emitted).code, 3);
    // Nothing was kept: the stream still works.
    await regClient.register({ interfaceName: 'com.cairn.test.Fine', url: 'bolt://127.0.0.1:2' });
    await regClient.close();
    await assert.rejects(regClient.register({ interfaceName: 'com.cairn.test.Fine', url: 'bolt://127.0.0.1:3' }),
      err => err.codeName === 'CANCELLED');
  });

  it('one CairnRegistry serves a provider and a consumer in one process', { timeout: TEST_TIMEOUT_MS }, async () => {
    const iface = 'com.cairn.test.Shared';
    const local = new Resources();
    try {
      const shared = createRegistry([ registry.grpcAddress ]);
      local.add(() => shared.close());
      const server = new LoopbackRpcServer({ logger, registry: shared });
      server.addService({ interfaceName: iface }, echoService('self'));
      local.add(() => server.close());
      await server.start();
      await server.publish();
      const client = new RpcClient({ logger, registry: shared, retryFaultInterval: 1000 });
      local.add(() => client.close());
      const consumer = client.createConsumer({ interfaceName: iface });
      await consumer.ready();
      assert.equal(await consumer.invoke('echo', [ 'x' ], CALL_OPTIONS), 'self:x');
      // One stream: one client id holds both the publisher and the subscriber.
      const described = await registry.describe(dataInfoKey(serviceConfig(iface)).data_id, 'SOFA');
      assert.equal(described.publishers.length, 1);
      assert.equal(described.subscribers.length, 1);
      assert.equal(described.publishers[0].owner.client_id, shared.clientId);
      assert.equal(described.subscribers[0].owner.client_id, shared.clientId);
    } finally {
      await local.closeAll();
    }
    await waitFor(async () => !(await holds(registry, iface)), WAIT_MS, `${iface} gone after close()`);
  });

  it('close() leaves nothing registered', { timeout: TEST_TIMEOUT_MS }, async () => {
    const iface = 'com.cairn.test.Close';
    const servers = [ registry.grpcAddress ];
    const local = new Resources();
    try {
      const provider = await startProvider(local, servers, { [iface]: echoService('p1') });
      const consumerSide = startConsumerClient(local, servers);
      const consumer = consumerSide.client.createConsumer({ interfaceName: iface });
      await consumer.ready();
      assert.equal(await consumer.invoke('echo', [ 'x' ], CALL_OPTIONS), 'p1:x');
      assert.equal(await holds(registry, iface), true);
      const ids = [ provider.registry.clientId, consumerSide.registry.clientId ];

      await local.closeAll();
      await waitFor(async () => !(await holds(registry, iface)), WAIT_MS, `${iface} gone from /api/v1/datainfos`);
      const clients = (await registry.admin('/api/v1/clients?address=127.0.0.1')).clients || [];
      const left = clients.filter(c => ids.includes(c.owner.client_id) &&
        ((c.publishers || []).length > 0 || (c.subscribers || []).length > 0));
      assert.deepEqual(left, []);
    } finally {
      await local.closeAll();
    }
  });
});

describe('CairnRegistry failover and registry restart', { timeout: SUITE_TIMEOUT_MS }, () => {
  let first;
  let second;
  const resources = new Resources();

  before(async () => {
    first = await new RegistryProcess().start();
    second = await new RegistryProcess().start();
  });

  after(async () => {
    try {
      await resources.closeAll();
    } finally {
      await first.cleanup();
      await second.cleanup();
    }
  });

  it('reconnects to the next server, replays, and comes back to a restarted one', { timeout: TEST_TIMEOUT_MS }, async () => {
    const iface = 'com.cairn.test.Failover';
    const servers = [ first.grpcAddress, second.grpcAddress ];
    const provider = await startProvider(resources, servers, { [iface]: echoService('p1') });
    const { client, registry: consumerRegistry } = startConsumerClient(resources, servers);
    const consumer = client.createConsumer({ interfaceName: iface });
    await consumer.ready();
    const recorder = new AddressRecorder();
    consumerRegistry.subscribe(serviceConfig(iface), recorder.listener);
    await recorder.waitForHosts([ provider.host ]);
    assert.equal(provider.registry.connectedServer, first.grpcAddress);
    assert.equal(consumerRegistry.connectedServer, first.grpcAddress);
    const [ before ] = await publishersOf(first, iface);
    const registrationId = before.publisher.registration_id;

    // 1. The first registry dies: both sides move to the second and replay.
    const deliveredBefore = recorder.lists.length;
    await first.stop('SIGKILL');
    await waitFor(() => provider.registry.connectedServer === second.grpcAddress &&
      consumerRegistry.connectedServer === second.grpcAddress, WAIT_MS, 'both clients on the second registry');
    const replayed = await waitFor(async () => (await publishersOf(second, iface))[0], WAIT_MS,
      'the provider replayed on the second registry');
    assert.equal(replayed.publisher.registration_id, registrationId);
    await waitFor(() => recorder.lists.length > deliveredBefore, WAIT_MS, 'a push from the second registry');
    assert.deepEqual(recorder.hostsOf(recorder.last), [ provider.host ]);
    assert.equal(await consumer.invoke('echo', [ 'a' ], CALL_OPTIONS), 'p1:a');

    // A consumer that only knows the second registry finds the provider.
    const late = startConsumerClient(resources, [ second.grpcAddress ]);
    const lateConsumer = late.client.createConsumer({ interfaceName: iface });
    await lateConsumer.ready();
    assert.equal(await lateConsumer.invoke('echo', [ 'b' ], CALL_OPTIONS), 'p1:b');
    await late.close();

    // 2. The first registry comes back on its port (same data directory) and
    //    the second dies: both sides go back and replay again.
    await first.start(Number(servers[0].split(':')[1]));
    assert.equal(first.grpcAddress, servers[0]);
    await second.stop('SIGKILL');
    await waitFor(() => provider.registry.connectedServer === first.grpcAddress &&
      consumerRegistry.connectedServer === first.grpcAddress, WAIT_MS, 'both clients back on the first registry');
    const back = await waitFor(async () => (await publishersOf(first, iface))[0], WAIT_MS,
      'the provider replayed on the restarted registry');
    assert.equal(back.publisher.registration_id, registrationId);
    const again = startConsumerClient(resources, [ first.grpcAddress ]);
    const againConsumer = again.client.createConsumer({ interfaceName: iface });
    await againConsumer.ready();
    assert.equal(await againConsumer.invoke('echo', [ 'c' ], CALL_OPTIONS), 'p1:c');
    assert.equal(await consumer.invoke('echo', [ 'd' ], CALL_OPTIONS), 'p1:d');
    await recorder.waitForHosts([ provider.host ]);
    assert.ok(provider.registry.stats.reconnects >= 2, JSON.stringify(provider.registry.stats));
    assert.ok(consumerRegistry.stats.reconnects >= 2, JSON.stringify(consumerRegistry.stats));

    // Closing everything leaves the restarted registry empty.
    await resources.closeAll();
    await waitFor(async () => !(await holds(first, iface)), WAIT_MS, `${iface} gone after close()`);
  });
});

describe('CairnRegistry connection handling', { timeout: SUITE_TIMEOUT_MS }, () => {
  const resources = new Resources();
  const processes = [];

  async function startRegistry(extraArgs = [], port = 0) {
    const registryProcess = new RegistryProcess(extraArgs);
    processes.push(registryProcess);
    return registryProcess.start(port);
  }

  after(async () => {
    try {
      await resources.closeAll();
    } finally {
      for (const registryProcess of processes) {
        registryProcess.signal('SIGCONT');
        await registryProcess.cleanup();
      }
    }
  });

  it('ready() waits for a server; requests time out with the last error', { timeout: TEST_TIMEOUT_MS }, async () => {
    // A port that was free a moment ago: nothing listens there now.
    const probe = await startRegistry();
    const port = probe.grpcPort;
    await probe.stop();

    const regClient = createRegistry([ `127.0.0.1:${port}` ], { requestTimeout: 500 });
    resources.add(() => regClient.close());
    let ready = false;
    regClient.ready().then(() => { ready = true; });
    await assert.rejects(regClient.register({ interfaceName: 'com.cairn.test.Early', url: 'bolt://127.0.0.1:1' }),
      err => {
        assert.equal(err.codeName, 'UNAVAILABLE');
        assert.match(err.message, /no Cairn registry server .* answered within 500 ms; last error from/);
        return true;
      });
    assert.equal(ready, false);

    const late = await startRegistry([], port);
    await waitFor(() => ready, WAIT_MS, 'ready() after the registry started');
    assert.equal(regClient.connectedServer, late.grpcAddress);
    // The timed-out publisher was not kept; a new one works.
    assert.equal((await publishersOf(late, 'com.cairn.test.Early')).length, 0);
    await regClient.register({ interfaceName: 'com.cairn.test.Early', url: 'bolt://127.0.0.1:1' });
    assert.equal((await publishersOf(late, 'com.cairn.test.Early')).length, 1);
  });

  it('pings keep a quiet client\'s registrations past the server\'s keepalive timeout', { timeout: TEST_TIMEOUT_MS }, async () => {
    // Without pings the server would end the stream after 1.5 s of silence
    // (and the client would reconnect: stats.connections > 1).
    const strict = await startRegistry([ '--keepalive-timeout-ms', '1500', '--min-keepalive-timeout-ms', '500' ]);
    const regClient = createRegistry([ strict.grpcAddress ], { keepaliveInterval: 300 });
    resources.add(() => regClient.close());
    await regClient.ready();
    await regClient.register({ interfaceName: 'com.cairn.test.Quiet', url: 'bolt://127.0.0.1:1' });
    await new Promise(resolve => setTimeout(resolve, 4000));
    assert.equal((await publishersOf(strict, 'com.cairn.test.Quiet')).length, 1);
    assert.equal(regClient.stats.connections, 1, JSON.stringify(regClient.stats));
  });

  it('a registry that stops answering is left for the next one', { timeout: TEST_TIMEOUT_MS }, async () => {
    const hung = await startRegistry();
    const spare = await startRegistry();
    const regClient = createRegistry([ hung.grpcAddress, spare.grpcAddress ], { keepaliveInterval: 300 });
    resources.add(() => regClient.close());
    await regClient.ready();
    assert.equal(regClient.connectedServer, hung.grpcAddress);
    await regClient.register({ interfaceName: 'com.cairn.test.Hung', url: 'bolt://127.0.0.1:1' });

    hung.signal('SIGSTOP'); // its sockets stay open; nothing answers
    try {
      // Dead after max(3 x 300 ms, 3 s) of silence, then the next server.
      await waitFor(() => regClient.connectedServer === spare.grpcAddress, WAIT_MS, 'the client on the spare registry');
      await waitFor(async () => (await publishersOf(spare, 'com.cairn.test.Hung')).length === 1, WAIT_MS,
        'the publisher replayed on the spare registry');
    } finally {
      hung.signal('SIGCONT');
    }
  });
});
