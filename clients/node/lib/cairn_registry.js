'use strict';

// CairnRegistry: Cairn as the registry of a sofa-rpc-node app.
//
//   const registry = new CairnRegistry({ logger, servers: [ '127.0.0.1:9600' ] });
//   new RpcServer({ logger, registry, ... });      // providers: register / unRegister
//   new RpcClient({ logger, registry, ... });      // consumers: subscribe / unSubscribe
//
// It is a RegistryBase (sofa-rpc-node's registry contract: ready, register,
// unRegister, subscribe, unSubscribe, close) whose data client is a
// CairnSessionClient: one gRPC Session stream per CairnRegistry instance.
//
// RegistryBase builds its data client through cluster-client, which can share
// one client among processes (leader/follower over a local port) or, in
// single mode, among instances of one process. Both wrappers change the
// contract in ways a registry must not: register errors do not reach the
// caller when register is delegated to `publish`, unSubscribe never reaches
// the data client (its server-side subscriber would live until close), and
// instances with the same name share one client. So CairnRegistry hands
// RegistryBase a factory that builds the data client in-process, one per
// instance, and every call goes straight to it. No leader-election port is
// opened; an app that wants one stream per process creates one
// CairnRegistry and passes it to both its RpcServer and its RpcClient.
//
// Options (all durations in milliseconds):
//   servers                  ['host:port', ...] or 'host:port,host:port' (required)
//   logger                   console-like; default console
//   protoPath                registry.proto; default the repository's proto/ next to this package
//   clientId                 sent in Hello and prefix of registration ids; default
//                            sofa-node-<hostname>-<pid>-<random>
//   appName, zone            sent in Hello (the default app name and zone of our publishers)
//   scope                    'zone' | 'datacenter' (default) | 'global' for subscribers
//   keepaliveInterval        5000: a ping this often; the stream is dead after
//                            max(3 x interval, 3000) without a message
//   keepaliveTimeout         0: asked of the server in Hello (0 = the server's default)
//   reconnectBackoffInitial  100, reconnectBackoffMax 5000
//   requestTimeout           10000: how long register/unRegister/subscribe wait for the
//                            server (including waiting for a connection)
//   closeTimeout             2000: how long close() waits for the server to end the stream
//   channelOptions           extra @grpc/grpc-js channel options
//   tls                      { ca, cert, key }: PEM file paths (or Buffers). TLS to the
//                            registry: ca is required (the registry's certificate must chain
//                            to it and name the address dialled); cert + key are this app's
//                            identity, required when the registry has a CA (mTLS). Files are
//                            read again for each new channel. Default: plaintext.
//
// Mesh mode (option `sidecar`): no stream to the registry. register and
// unRegister go to the local Cairn sidecar's registration API, which
// publishes the app (interface-level, app-level or both: its app.discovery
// switch) with the sidecar's inbound listener as the endpoint. See
// sidecar_client.js.
//   sidecar                  'http://127.0.0.1:PORT': the sidecar's admin listener
//   outbound                 '127.0.0.1:PORT': the sidecar's outbound Bolt listener,
//                            the address consumers of this registry are given
//   requestTimeout           as above, for the sidecar's answers
//
// Events: 'connected' (server address), 'disconnected' (server address),
// 'error' (a refused subscription or replay, a listener that threw).

const RegistryBase = require('sofa-rpc-node/lib/registry/base');
const { CairnSessionClient } = require('./session_client');
const { SidecarRegistrationClient } = require('./sidecar_client');

// What APIClientBase expects of `options.cluster`: (DataClient, clusterOptions)
// → { delegate(from, to), create(options) }. With options.sidecar the data
// client is the sidecar's registration API instead of a Session stream.
function inProcessClient(DataClient) {
  return {
    delegate() { return this; },
    create(options) {
      return options.sidecar ? new SidecarRegistrationClient(options) : new DataClient(options);
    },
  };
}

class CairnRegistry extends RegistryBase {
  constructor(options = {}) {
    super(Object.assign({}, options, { cluster: inProcessClient }));
  }

  get DataClient() {
    return CairnSessionClient;
  }

  // Not used by inProcessClient; stated so that nothing derived from
  // RegistryBase's default (which reads options.address) applies.
  get clusterOptions() {
    return { singleMode: true, name: 'CairnRegistry' };
  }

  // register(config) / unRegister(config): RegistryBase's, returning the
  // data client's promises. subscribe and unSubscribe also return theirs
  // (RegistryBase's return nothing); close() ends the stream.
  subscribe(config, listener) {
    return this._client.subscribe(config, listener);
  }

  unSubscribe(config, listener) {
    return this._client.unSubscribe(config, listener);
  }

  // The session's Hello client id, the server it is connected to (null when
  // not connected) and its counters.
  get clientId() { return this._client.clientId; }
  get connectedServer() { return this._client.connectedServer; }
  get stats() { return this._client.stats; }
}

module.exports = CairnRegistry;
