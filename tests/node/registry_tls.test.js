'use strict';

// @cairn/sofa-registry over TLS: a real `cairn registry` with certificates
// from scripts/dev-certs (mTLS: client certificates required), a real
// sofa-rpc-node provider and consumer whose CairnRegistry has `tls`.
//
// Run: node --test tests/node/   (CAIRN_BIN=path/to/cairn; default build/bin/cairn)

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { RegistryProcess } = require('./support/registry_process');
const { Resources } = require('./support/resources');
const { LoopbackRpcServer, RpcClient, createRegistry, logger } = require('./support/sofa');
const { CairnSessionClient, dataInfoKey } = require('../../clients/node');

const SUITE_TIMEOUT_MS = 180000;
const TEST_TIMEOUT_MS = 60000;
const DEV_CERTS = path.resolve(__dirname, '../../scripts/dev-certs');
const quiet = { info() {}, warn() {}, error() {} };

describe('CairnRegistry over TLS', { timeout: SUITE_TIMEOUT_MS }, () => {
  let registry;
  let certs;
  const resources = new Resources();
  const tlsOf = name => ({
    ca: path.join(certs, 'ca.crt'),
    cert: path.join(certs, `${name}.crt`),
    key: path.join(certs, `${name}.key`),
  });

  before(async () => {
    certs = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-node-certs-'));
    execFileSync(DEV_CERTS, [ certs ], { stdio: 'ignore', timeout: 60000 });
    registry = await new RegistryProcess([
      '--tls-cert', path.join(certs, 'registry.crt'),
      '--tls-key', path.join(certs, 'registry.key'),
      '--tls-ca', path.join(certs, 'ca.crt'),
    ]).start();
  });

  after(async () => {
    try {
      await resources.closeAll();
    } finally {
      if (registry) await registry.cleanup();
      if (certs) fs.rmSync(certs, { recursive: true, force: true });
    }
  });

  it('a provider publishes and a consumer calls it, both over mTLS', { timeout: TEST_TIMEOUT_MS }, async () => {
    const iface = 'com.cairn.test.TlsEchoService';
    // The app name is the one app-a's certificate names, so a default
    // authorization policy lets it publish.
    const providerRegistry = createRegistry([ registry.grpcAddress ], { appName: 'app-a', tls: tlsOf('app-a') });
    const server = new LoopbackRpcServer({ logger, registry: providerRegistry });
    server.addService({ interfaceName: iface }, { async echo(name) { return `tls:${name}`; } });
    resources.add(async () => {
      await server.close();
      await providerRegistry.close();
    });
    await server.start();
    await server.publish();

    const key = dataInfoKey({ interfaceName: iface, version: '1.0', group: 'SOFA' });
    const described = await registry.describe(key.data_id, key.group);
    assert.equal((described.publishers || []).length, 1, JSON.stringify(described));
    assert.equal(new URL(described.publishers[0].publisher.data[0]).host, `127.0.0.1:${server.publishPort}`);

    const consumerRegistry = createRegistry([ registry.grpcAddress ], { appName: 'app-b', tls: tlsOf('app-b') });
    const client = new RpcClient({ logger, registry: consumerRegistry, retryFaultInterval: 1000 });
    resources.add(async () => {
      await client.close();
      await consumerRegistry.close();
    });
    const consumer = client.createConsumer({ interfaceName: iface });
    await consumer.ready();
    assert.equal(await consumer.invoke('echo', [ 'hi' ], { responseTimeout: 10000 }), 'tls:hi');
  });

  it('without a client certificate, or in plaintext, register fails and nothing is published', { timeout: TEST_TIMEOUT_MS }, async () => {
    const iface = 'com.cairn.test.TlsRefused';
    const url = 'bolt://127.0.0.1:1?interface=' + iface;
    for (const tls of [ { ca: path.join(certs, 'ca.crt') }, undefined ]) {
      const client = new CairnSessionClient({
        servers: [ registry.grpcAddress ], logger: quiet, appName: 'app-a', tls,
        requestTimeout: 1500, reconnectBackoffMax: 300,
      });
      resources.add(() => client.close());
      await assert.rejects(client.register({ interfaceName: iface, version: '1.0', group: 'SOFA', url }),
        err => err.name === 'CairnRegistryError' && [ 'UNAVAILABLE', 'DEADLINE_EXCEEDED' ].includes(err.codeName));
      assert.equal(client.stats.connections, 0);
    }
    const key = dataInfoKey({ interfaceName: iface, version: '1.0', group: 'SOFA' });
    const infos = await registry.dataInfos();
    assert.equal(infos.some(info => info.key.data_id === key.data_id), false);
  });

  it('bad tls options are refused at construction', () => {
    const servers = [ '127.0.0.1:1' ];
    const cases = [
      [ 'no-ca', { cert: path.join(certs, 'app-a.crt'), key: path.join(certs, 'app-a.key') }, /tls\.ca is required/ ],
      [ 'cert without key', { ca: path.join(certs, 'ca.crt'), cert: path.join(certs, 'app-a.crt') }, /come together/ ],
      [ 'unreadable', { ca: path.join(certs, 'missing.crt') }, /tls\.ca: cannot read/ ],
      [ 'unknown key', { ca: path.join(certs, 'ca.crt'), cacert: 'x' }, /unknown key 'cacert'/ ],
      [ 'not an object', 'ca.crt', /must be \{ ca, cert, key \}/ ],
      [ 'wrong type', { ca: 42 }, /file path or a Buffer/ ],
    ];
    for (const [ name, tls, message ] of cases) {
      assert.throws(() => new CairnSessionClient({ servers, logger: quiet, tls }), message, name);
    }
  });
});
