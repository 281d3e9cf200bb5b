'use strict';

// Building blocks of the Dubbo 2 mesh tests: sidecar configs (the Dubbo
// twins of support/mesh.js's Bolt ones) and the real npm dubbo2.js consumer
// pointed at a fixed address.
//
// dubbo2.js normally finds providers through ZooKeeper; its DirectlyDubbo
// (exported by the package, es7/directly-dubbo.js) is its direct mode: one
// connection (a SocketWorker) to a fixed host:port, no registry. Its calls
// never reject: they resolve to { res, err } (dubbo2.js's go()); a non-OK
// status becomes err = DubboDecodeError whose message is the response body
// as text (a hessian2 string, so the text is the message after a length
// byte or two). dubbo2.js has no close(): see closeDirectlyDubbo.

const { DirectlyDubbo, java } = require('dubbo2.js');
const { DUBBO_ECHO_INTERFACE } = require('./dubbo_provider');

// An outbound sidecar: one Dubbo listener (protocol 'dubbo', or 'auto');
// each route sends an interface to a cluster, registry-backed (data_id) or
// static (endpoints).
//   routes: [{ service | service_prefix, cluster, timeout_ms?, retry? }]
//   clusters: [{ name, data_id, group? } | { name, endpoints: [ 'host:port' ] }, lb?]
function dubboOutboundConfig({ registry, routes, clusters, workers = 2, protocol = 'dubbo', listenerName = 'outbound' }) {
  return {
    workers,
    admin: '127.0.0.1:0',
    registry_servers: [ registry ],
    drain_timeout_ms: 5000,
    listeners: [{
      name: listenerName,
      address: '127.0.0.1:0',
      protocol,
      dubbo_routes: routes.map(r => {
        const match = r.service_prefix !== undefined ? { service_prefix: r.service_prefix } : { service: r.service };
        const route = { match, cluster: r.cluster };
        if (r.timeout_ms !== undefined) route.timeout_ms = r.timeout_ms;
        if (r.retry) route.retry = r.retry;
        return route;
      }),
    }],
    clusters: clusters.map(c => {
      const cluster = { name: c.name, protocol: 'dubbo', lb: c.lb || 'round_robin', connect_timeout_ms: 1000 };
      if (c.endpoints) {
        cluster.endpoints = c.endpoints;
      } else {
        cluster.registry = Object.assign({ data_id: c.data_id }, c.group ? { group: c.group } : {});
      }
      return cluster;
    }),
  };
}

// An inbound sidecar in front of one local Dubbo provider: one Dubbo
// listener per published data id, forwarding every request to the provider
// (a static cluster), published as dubbo://<listener address> while a TCP
// health check of the provider passes.
//   publish: [{ listener, data_id, group? }]
function dubboInboundConfig({ registry, provider, publish, app = 'dubbo-mesh-test', workers = 1 }) {
  return {
    workers,
    admin: '127.0.0.1:0',
    registry_servers: [ registry ],
    drain_timeout_ms: 5000,
    listeners: publish.map(p => ({
      name: p.listener,
      address: '127.0.0.1:0',
      protocol: 'dubbo',
      publish: Object.assign({ data_id: p.data_id, app }, p.group ? { group: p.group } : {}),
      publish_health_cluster: 'local-app',
      dubbo_routes: [{ cluster: 'local-app' }],
    })),
    clusters: [{
      name: 'local-app',
      protocol: 'dubbo',
      endpoints: [ provider ],
      connect_timeout_ms: 1000,
      health_check: { type: 'tcp', interval_ms: 500, timeout_ms: 500, unhealthy_threshold: 2, healthy_threshold: 1 },
    }],
  };
}

// Stops a DirectlyDubbo for good: its SocketWorker reconnects a closed
// socket 20 times, 3 s apart, and has no close(); with no retries left and
// no way to open a socket again, destroying the socket ends it (queued calls
// fail with 'socket-worker was closed.').
function closeDirectlyDubbo(dubbo) {
  const worker = dubbo._socketWorker;
  if (!worker || worker.closedByTest) return;
  worker.closedByTest = true;
  worker._retry = 0;
  worker._initSocket = () => {}; // a retry timer already armed must not reconnect
  if (worker._socket) worker._socket.destroy();
}

// One dubbo2.js connection (a DirectlyDubbo) to `address`, closed with
// `resources` (when given).
//   dubboVersion: what its requests carry as the dubbo version ('2.0.2':
//   Dubbo providers answer with attachments, flag 4; '2.0.0': flag 1)
//   invokeTimeoutS: dubbo2.js's own per-call timer, in seconds
function dubboConnection(resources, address, { dubboVersion = '2.0.2', invokeTimeoutS = 10 } = {}) {
  const dubbo = DirectlyDubbo.from({ dubboAddress: address, dubboVersion, dubboInvokeTimeout: invokeTimeoutS });
  if (resources) resources.add(() => closeDirectlyDubbo(dubbo));
  return dubbo;
}

// The echo service's methods (support/dubbo_provider.js) on a dubbo2.js
// connection, for `dubboInterface` (any name the provider serves with these
// methods, or one nobody serves). Each method returns what dubbo2.js
// returns: a promise of { res, err }.
function echoService(dubbo, { dubboInterface = DUBBO_ECHO_INTERFACE, timeoutMs } = {}) {
  return dubbo.proxyService({
    dubboInterface,
    version: '1.0.0',
    timeout: timeoutMs, // sent as the 'timeout' attachment (the sidecar does not read it)
    methods: {
      echo(text) {
        return [ java.String(text) ];
      },
      sleep(ms, text) {
        return [ java.int(ms), java.String(text) ];
      },
      missing(text) {
        return [ java.String(text) ];
      },
    },
  });
}

// A connection and the echo service on it, in one.
function echoConsumer(resources, address, options = {}) {
  const dubbo = dubboConnection(resources, address, options);
  const service = echoService(dubbo, options);
  service.dubbo = dubbo;
  service.close = () => closeDirectlyDubbo(dubbo);
  return service;
}

// dubbo2.js's { res, err } as a plain promise (rejects with err).
async function unwrap(result) {
  const { res, err } = await result;
  if (err) throw err;
  return res;
}

module.exports = {
  dubboOutboundConfig, dubboInboundConfig, dubboConnection, echoService, echoConsumer, closeDirectlyDubbo, unwrap, java,
};
