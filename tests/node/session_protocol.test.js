'use strict';

// CairnSessionClient against a scripted Session server on 127.0.0.1: the
// protocol details a real registry does not let a test force (stale push
// versions, the exact acks, a stream the server ends, a refused Hello).

const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { CairnSessionClient, DEFAULT_PROTO_PATH } = require('../../clients/node');
const { waitFor } = require('./support/sofa');

// The adapter's own copies, so that no second install is needed.
const clientDir = path.resolve(__dirname, '../../clients/node');
const grpc = require(require.resolve('@grpc/grpc-js', { paths: [ clientDir ] }));
const protoLoader = require(require.resolve('@grpc/proto-loader', { paths: [ clientDir ] }));

const Registry = grpc.loadPackageDefinition(protoLoader.loadSync(DEFAULT_PROTO_PATH, {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
})).cairn.registry.v1.Registry;

const quiet = { info() {}, warn() {}, error() {} };
const WAIT_MS = 20000;

// A Session server that records every client message and lets the test
// answer. `onMessage(stream, message)` (with `this` the FakeServer) runs for
// each message after the default handling (Hello → OK unless `refuseHello`, ping → pong).
class FakeServer {
  constructor(options = {}) {
    this.options = options;
    this.messages = [];
    this.streams = [];
    this.server = new grpc.Server();
    this.server.addService(Registry.service, {
      Session: call => this._session(call),
      ListDataInfos: (call, callback) => callback(null, { data_infos: [] }),
      Describe: (call, callback) => callback({ code: grpc.status.UNIMPLEMENTED }),
      QueryByClient: (call, callback) => callback(null, { clients: [] }),
    });
  }

  start() {
    return new Promise((resolve, reject) => {
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
        if (err) return reject(err);
        this.address = `127.0.0.1:${port}`;
        resolve(this);
      });
    });
  }

  stop() {
    this.server.forceShutdown();
  }

  of(kind) {
    return this.messages.filter(m => m.message.body === kind).map(m => Object.assign({ stream: m.stream }, m.message));
  }

  _session(call) {
    const stream = { call, index: this.streams.length, ended: false };
    this.streams.push(stream);
    call.on('data', message => {
      this.messages.push({ stream: stream.index, message });
      if (message.body === 'hello') {
        const refused = this.options.refuseHello;
        this.reply(stream, message.request_id, refused ? 3 : 0, refused ? 'hello refused by the test' : '');
      } else if (message.body === 'ping') {
        call.write({ pong: { nonce: message.ping.nonce } });
      }
      if (this.options.onMessage) this.options.onMessage.call(this, stream, message);
    });
    call.on('end', () => {
      if (!stream.ended) {
        stream.ended = true;
        call.end();
      }
    });
    call.on('error', () => {});
  }

  reply(stream, requestId, code = 0, message = '', datumVersion = 0) {
    stream.call.write({ result: { request_id: requestId, code, message, datum_version: datumVersion } });
  }

  push(stream, registrationId, pushId, version, urls) {
    stream.call.write({
      push: {
        registration_id: registrationId,
        push_id: pushId,
        key: { data_id: 'x', group: 'SOFA', instance_id: '' },
        version,
        empty: urls.length === 0,
        zones: urls.length ? [{ zone: 'z', publishers: [{ registration_id: 'pub', data: urls }] }] : [],
      },
    });
  }

  // Ends a stream from the server side with an OK status.
  endStream(stream) {
    stream.ended = true;
    stream.call.end();
  }
}

describe('CairnSessionClient protocol details', { timeout: 120000 }, () => {
  const cleanups = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  function client(servers, extra = {}) {
    const c = new CairnSessionClient(Object.assign({
      servers, logger: quiet, keepaliveInterval: 200, reconnectBackoffInitial: 20,
      reconnectBackoffMax: 200, requestTimeout: 5000,
    }, extra));
    c.on('error', () => {});
    cleanups.push(() => c.close());
    return c;
  }

  async function fake(options) {
    const server = await new FakeServer(options).start();
    cleanups.push(() => server.stop());
    return server;
  }

  it('sends Hello first, pings, and acks every push; stale versions are dropped', { timeout: 60000 }, async () => {
    const server = await fake({
      onMessage(stream, message) {
        if (message.body !== 'subscribe') return;
        const id = message.subscribe.registration_id;
        this.reply(stream, message.request_id);
        this.push(stream, id, '1', '100', [ 'bolt://127.0.0.1:1' ]);
        this.push(stream, id, '2', '90', [ 'bolt://127.0.0.1:2' ]); // older: dropped
        this.push(stream, id, '3', '100', [ 'bolt://127.0.0.1:3' ]); // same: dropped
        this.push(stream, id, '4', '120', [ 'bolt://127.0.0.1:5', 'bolt://127.0.0.1:4', 'bolt://127.0.0.1:4' ]);
        this.push(stream, id, '5', '130', []);
      },
    });
    const c = client([ server.address ], { clientId: 'proto-test', appName: 'app', zone: 'zone-a' });
    await c.ready();
    const lists = [];
    await c.subscribe({ interfaceName: 'com.cairn.test.Proto' }, list => lists.push(list));
    await waitFor(() => server.of('push_ack').length === 5, WAIT_MS, 'five acks');
    assert.deepEqual(lists, [
      [ 'bolt://127.0.0.1:1' ],
      [ 'bolt://127.0.0.1:4', 'bolt://127.0.0.1:5' ],
      [],
    ]);
    assert.deepEqual(server.of('push_ack').map(m => m.push_ack.push_id), [ '1', '2', '3', '4', '5' ]);
    assert.ok(server.of('push_ack').every(m => m.request_id === '0'));
    assert.equal(c.stats.pushesDropped, 2);

    const first = server.messages[0].message;
    assert.equal(first.body, 'hello');
    assert.equal(first.hello.client_id, 'proto-test');
    assert.equal(first.hello.app_name, 'app');
    assert.equal(first.hello.zone, 'zone-a');
    const subscribe = server.of('subscribe')[0].subscribe;
    assert.deepEqual(subscribe.key, { data_id: 'com.cairn.test.Proto:1.0', group: 'SOFA', instance_id: '' });
    assert.equal(subscribe.scope, 'SCOPE_DATACENTER');
    await waitFor(() => server.of('ping').length >= 2, WAIT_MS, 'pings');
  });

  it('replays registrations with the same ids after the server ends the stream', { timeout: 60000 }, async () => {
    const server = await fake({
      onMessage(stream, message) {
        if (message.body === 'publish' || message.body === 'subscribe') this.reply(stream, message.request_id);
      },
    });
    const c = client([ server.address ]);
    await c.ready();
    await c.register({ interfaceName: 'com.cairn.test.Replay', url: 'bolt://127.0.0.1:9' });
    c.subscribe({ interfaceName: 'com.cairn.test.Other' }, () => {});
    await waitFor(() => server.of('subscribe').length === 1, WAIT_MS, 'the subscription');
    const published = server.of('publish')[0].publish;
    const subscribed = server.of('subscribe')[0].subscribe;
    assert.deepEqual(published.data, [ 'bolt://127.0.0.1:9' ]);
    assert.equal(published.version, '1');

    server.endStream(server.streams[0]);
    await waitFor(() => server.of('publish').length === 2 && server.of('subscribe').length === 2, WAIT_MS, 'the replay');
    const replayed = server.of('publish')[1];
    assert.equal(replayed.stream, 1);
    assert.equal(replayed.publish.registration_id, published.registration_id);
    assert.equal(replayed.publish.version, '1');
    assert.deepEqual(replayed.publish.data, published.data);
    assert.equal(server.of('subscribe')[1].subscribe.registration_id, subscribed.registration_id);
    // Hello came first on the new stream too.
    const onSecond = server.messages.filter(m => m.stream === 1);
    assert.equal(onSecond[0].message.body, 'hello');
    await waitFor(() => c.stats.reconnects === 1, WAIT_MS, 'a reconnect counted');
  });

  it('a refused Hello is emitted as an error and retried', { timeout: 60000 }, async () => {
    const server = await fake({ refuseHello: true });
    const c = client([ server.address ]);
    const err = await new Promise(resolve => c.once('error', resolve));
    assert.equal(err.code, 3);
    assert.equal(err.message, 'hello refused by the test');
    await waitFor(() => server.of('hello').length >= 2, WAIT_MS, 'a second Hello');
    assert.equal(c.connected, false);
  });

  it('close() half-closes the stream and rejects what is pending', { timeout: 60000 }, async () => {
    const server = await fake(); // never answers publishes
    const c = client([ server.address ]);
    await c.ready();
    const pending = c.register({ interfaceName: 'com.cairn.test.Pending', url: 'bolt://127.0.0.1:1' });
    await waitFor(() => server.of('publish').length === 1, WAIT_MS, 'the publish');
    const rejected = assert.rejects(pending, err => err.codeName === 'CANCELLED');
    await c.close();
    await rejected;
    await waitFor(() => server.streams[0].ended, WAIT_MS, 'the stream ended by the client');
  });
});
