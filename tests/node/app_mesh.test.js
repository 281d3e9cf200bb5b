'use strict';

// Application-level discovery with a meshed SOFARPC app (issue 6), real
// peers only: a sofa-rpc-node provider whose CairnRegistry runs in mesh mode
// (`sidecar:`) registers its services through its inbound sidecar's local
// API; the sidecar (app.discovery: app) publishes ONE app-level record with
// its own Bolt listener as the endpoint. A plain sofa-rpc-node consumer whose
// CairnRegistry talks to the registry directly (interface-level, as before
// the migration) finds the provider (the registry derives its interface data
// from the app record) and calls it through the sidecar; so does a meshed
// consumer through an outbound sidecar whose cluster is fed app-level.
//
//   consumer ── CairnRegistry (interface-level) ──► registry
//      │                                              ▲ app:mesh-shop + revision
//      └── Bolt ──► inbound sidecar ──► provider ─────┘ (register via the sidecar)
//
// Run: node --test tests/node/   (CAIRN_BIN=path/to/cairn; default build/bin/cairn)

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('net');
const { RegistryProcess } = require('./support/registry_process');
const { RpcClient, createRegistry, logger, waitFor, AddressRecorder } = require('./support/sofa');
const { SidecarProcess } = require('./support/sidecar_process');
const { ProviderProcess, ECHO_INTERFACE } = require('./support/provider_process');
const { Resources } = require('./support/resources');
const { outboundConfig, fixedClient, waitForClusterHosts } = require('./support/mesh');
const { CairnRegistry } = require('../../clients/node');

const SUITE_TIMEOUT_MS = 300000;
const WAIT_MS = 30000;
const ECHO_ID = `${ECHO_INTERFACE}:1.0`;
const APP = 'mesh-shop';

// A port nobody listens on right now (the provider binds it just after).
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1' }, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function inboundConfig(registry, providerPort) {
  return {
    workers: 1,
    admin: '127.0.0.1:0',
    registry_servers: [ registry ],
    drain_timeout_ms: 3000,
    app: { name: APP, discovery: 'app' },
    listeners: [{
      name: 'inbound',
      address: '127.0.0.1:0',
      protocol: 'bolt',
      publish: {}, // the interfaces come from the app, through the local API
      publish_health_cluster: 'local-app',
      bolt_routes: [{ cluster: 'local-app' }],
    }],
    clusters: [{
      name: 'local-app',
      protocol: 'bolt',
      endpoints: [ `127.0.0.1:${providerPort}` ],
      connect_timeout_ms: 1000,
      health_check: { type: 'tcp', interval_ms: 300, timeout_ms: 300, unhealthy_threshold: 1, healthy_threshold: 1 },
    }],
  };
}

async function sidecarState(sidecar) {
  const response = await fetch(`http://${sidecar.adminAddress}/registry`, { signal: AbortSignal.timeout(5000) });
  return response.json();
}

describe('a meshed SOFARPC provider published app-level through its sidecar', { timeout: SUITE_TIMEOUT_MS }, () => {
  const resources = new Resources();
  let registry;
  let inbound;
  let provider;
  let oldConsumerRecorder;

  before(async () => {
    registry = await new RegistryProcess().start();
    resources.add(() => registry.cleanup());
    const port = await freePort();
    inbound = new SidecarProcess('inbound-app', inboundConfig(registry.grpcAddress, port));
    resources.add(() => inbound.cleanup());
    await inbound.start();
    provider = new ProviderProcess({ tag: 'm1', port, sidecar: `http://${inbound.adminAddress}` });
    resources.add(() => provider.stop('SIGKILL'));
    await provider.start();
  });

  after(() => resources.closeAll());

  it('is one app-level record that an old interface-level consumer calls', async () => {
    // The sidecar registered a revision with the app's two services and
    // published one instance; no interface-level publisher exists.
    const state = await waitFor(async () => {
      const s = await sidecarState(inbound);
      return s.inbound.app_published && s.inbound.interfaces.length === 2 && s;
    }, WAIT_MS, 'the sidecar to publish the app');
    assert.equal(state.inbound.discovery, 'app');
    const echo = state.inbound.interfaces.find(i => i.data_id === ECHO_ID);
    assert.ok(echo, JSON.stringify(state));
    assert.equal(echo.source, 'api');
    assert.equal(echo.params.protocol, 'bolt');
    assert.equal(echo.params.serialization, 'hessian2');
    assert.equal(echo.params.pid, undefined); // volatile params are not part of the revision
    const app = await registry.admin(`/api/v1/app?name=${APP}`);
    assert.equal(app.revisions.length, 1);
    assert.equal(app.revisions[0].revision, state.inbound.revision);
    assert.equal(app.revisions[0].instances.length, 1);
    const iface = await registry.admin(`/api/v1/interface?data_id=${encodeURIComponent(ECHO_ID)}&group=SOFA`);
    assert.equal(iface.interface_publishers || 0, 0);
    assert.deepEqual(iface.apps.map(a => a.app_name), [ APP ]);

    // An old consumer: CairnRegistry straight to the registry, interface-level.
    const direct = createRegistry([ registry.grpcAddress ]);
    resources.add(() => direct.close());
    const recorder = new AddressRecorder();
    direct.subscribe({ interfaceName: ECHO_INTERFACE, version: '1.0', group: 'SOFA' }, recorder.listener);
    const list = await recorder.waitForHosts([ inbound.listeners.inbound ], WAIT_MS);
    assert.match(list[0], /^bolt:\/\//);
    assert.match(list[0], /protocol=bolt/);
    // retryFaultInterval: its default keeps a 30 s timer alive after close.
    const client = new RpcClient({ logger, registry: direct, retryFaultInterval: 1000 });
    resources.add(() => client.close());
    const consumer = client.createConsumer({ interfaceName: ECHO_INTERFACE });
    await consumer.ready();
    for (let i = 0; i < 5; i++) {
      assert.equal(await consumer.invoke('echo', [ `hi${i}` ], { responseTimeout: 10000 }), `m1:hi${i}`);
    }

    oldConsumerRecorder = recorder;
  });

  it('is reached by a meshed consumer through an outbound sidecar fed app-level', async () => {
    const config = outboundConfig({
      registry: registry.grpcAddress,
      routes: [{ service: ECHO_ID, cluster: 'echo', timeout_ms: 10000 }],
      clusters: [{ name: 'echo', data_id: ECHO_ID, group: 'SOFA' }],
    });
    config.app = { name: 'mesh-storefront', discovery: 'app', mapping_refresh_ms: 300 };
    const outbound = new SidecarProcess('outbound-app', config);
    resources.add(() => outbound.cleanup());
    await outbound.start();
    await waitForClusterHosts(outbound, 'echo', [ inbound.listeners.inbound ], WAIT_MS);
    const state = await sidecarState(outbound);
    const cluster = state.outbound.clusters.find(c => c.name === 'echo');
    assert.equal(cluster.source, 'app', JSON.stringify(state));
    assert.deepEqual(cluster.apps, [ APP ]);
    const client = fixedClient();
    resources.add(() => client.close());
    const consumer = client.createConsumer({ interfaceName: ECHO_INTERFACE, serverHost: outbound.listeners.outbound });
    await consumer.ready();
    for (let i = 0; i < 5; i++) {
      assert.equal(await consumer.invoke('echo', [ `via${i}` ], { responseTimeout: 10000 }), `m1:via${i}`);
    }
  });

  it('is withdrawn when the provider unpublishes', async () => {
    // Through the sidecar: a new revision without the app's services, so
    // the old consumer's list empties.
    await provider.ask('unpublish');
    await oldConsumerRecorder.waitForHosts([], WAIT_MS);
    const after = await sidecarState(inbound);
    assert.equal(after.inbound.interfaces.length, 0);
    assert.equal(after.inbound.app_published, false);
  });

  it('reports a bad registration with the sidecar\'s message', async () => {
    const mesh = new CairnRegistry({ logger, sidecar: `http://${inbound.adminAddress}`, requestTimeout: 5000 });
    resources.add(() => mesh.close());
    await mesh.ready();
    await assert.rejects(
      mesh.register({ interfaceName: 'com.example.Bad', version: '1.0', group: 'SOFA',
        url: `bolt://127.0.0.1:1?${'k'.repeat(200)}=v` }),
      err => err.status === 400 && /param/.test(err.message));
    // The sidecar's raw API: bad JSON is a 400 with a message.
    const response = await fetch(`http://${inbound.adminAddress}/registry/publish`, {
      method: 'POST', body: '{"interface":', signal: AbortSignal.timeout(5000) });
    assert.equal(response.status, 400);
    assert.match((await response.json()).error, /bad JSON/);
  });
});
