'use strict';

// Building blocks of the Bolt mesh tests: sidecar configs (outbound and
// inbound), consumers pointed at a fixed address (the way a meshed app is
// pointed at its sidecar), and a bounded call loop that counts answers and
// failures while the topology changes under it.

const { RpcClient, logger, waitFor } = require('./sofa');
const { Resources } = require('./resources');

// An outbound sidecar: one Bolt listener; each route sends a service to a
// registry-backed cluster.
//   routes: [{ service, cluster, timeout_ms?, retry? }]
//   clusters: [{ name, data_id, group?, lb?, outlier? }]
function outboundConfig({ registry, routes, clusters, workers = 2, protocol = 'bolt' }) {
  return {
    workers,
    admin: '127.0.0.1:0',
    registry_servers: [ registry ],
    drain_timeout_ms: 5000,
    listeners: [{
      name: 'outbound',
      address: '127.0.0.1:0',
      protocol,
      bolt_routes: routes.map(r => {
        const route = { match: { service: r.service }, cluster: r.cluster };
        if (r.timeout_ms !== undefined) route.timeout_ms = r.timeout_ms;
        if (r.retry) route.retry = r.retry;
        return route;
      }),
    }],
    clusters: clusters.map(c => {
      const registrySource = { data_id: c.data_id };
      if (c.group) registrySource.group = c.group;
      return Object.assign({
        name: c.name,
        protocol: 'bolt',
        registry: registrySource,
        lb: c.lb || 'round_robin',
        connect_timeout_ms: 1000,
      }, c.outlier ? { outlier: c.outlier } : {});
    }),
  };
}

// An inbound sidecar in front of one local provider: one Bolt listener per
// published dataInfoId, each forwarding every request to the provider (a
// static cluster) and published as bolt://<listener address> while a TCP
// health check of the provider passes.
//   publish: [{ listener, data_id, group? }]
function inboundConfig({ registry, provider, publish, app = 'mesh-test', workers = 1 }) {
  return {
    workers,
    admin: '127.0.0.1:0',
    registry_servers: [ registry ],
    drain_timeout_ms: 5000,
    listeners: publish.map(p => ({
      name: p.listener,
      address: '127.0.0.1:0',
      protocol: 'bolt',
      publish: Object.assign({ data_id: p.data_id, app }, p.group ? { group: p.group } : {}),
      publish_health_cluster: 'local-app',
      bolt_routes: [{ cluster: 'local-app' }],
    })),
    clusters: [{
      name: 'local-app',
      protocol: 'bolt',
      endpoints: [ provider ],
      connect_timeout_ms: 1000,
      health_check: { type: 'tcp', interval_ms: 500, timeout_ms: 500, unhealthy_threshold: 2, healthy_threshold: 1 },
    }],
  };
}

// A sofa-rpc-node RpcClient without a registry: its consumers are pointed
// at one address (serverHost), e.g. the outbound sidecar's listener.
function fixedClient() {
  // retryFaultInterval: see startConsumerClient in sofa_registry.test.js.
  return new RpcClient({ logger, retryFaultInterval: 1000 });
}

// Waits until the sidecar's cluster lists exactly these host:port entries.
async function waitForClusterHosts(sidecar, cluster, hosts, timeoutMs = 30000) {
  const want = [ ...hosts ].sort();
  let seen;
  return waitFor(async () => {
    const described = await sidecar.clusters();
    const found = described.clusters.find(c => c.name === cluster);
    seen = found ? found.hosts.map(h => h.address).sort() : null;
    return JSON.stringify(seen) === JSON.stringify(want);
  }, timeoutMs, () => `cluster ${cluster} of sidecar ${sidecar.name} to hold ${JSON.stringify(want)} (has ${JSON.stringify(seen)})`);
}

// `concurrency` callers, each calling `call()` in a loop until stop(), or
// until maxCalls calls were made in all, or maxMs passed. `call()` returns
// the answering provider's tag (or anything: counted by value). Failures are
// kept with the time they happened.
class CallLoop {
  constructor(call, { concurrency = 4, maxCalls = 1000000, maxMs = 60000 } = {}) {
    this.call = call;
    this.concurrency = concurrency;
    this.maxCalls = maxCalls;
    this.maxMs = maxMs;
    this.started = 0;
    this.ok = 0;
    this.inFlight = 0;
    this.byValue = new Map();
    this.failures = [];
    this.stopped = false;
    this.workers = [];
  }

  start() {
    this.startedAt = Date.now();
    const deadline = this.startedAt + this.maxMs;
    const worker = async () => {
      while (!this.stopped && this.started < this.maxCalls && Date.now() < deadline) {
        this.started++;
        this.inFlight++;
        try {
          const value = await this.call();
          this.ok++;
          this.byValue.set(value, (this.byValue.get(value) || 0) + 1);
        } catch (err) {
          this.failures.push({ at: Date.now(), message: `${err.name}: ${err.message}` });
        } finally {
          this.inFlight--;
        }
      }
    };
    for (let i = 0; i < this.concurrency; i++) this.workers.push(worker());
    return this;
  }

  get finished() {
    return this.ok + this.failures.length;
  }

  count(value) {
    return this.byValue.get(value) || 0;
  }

  // Waits until at least n more calls finished than when asked.
  async advance(n, timeoutMs = 30000) {
    const target = this.finished + n;
    await waitFor(() => this.finished >= target || this.stopped, timeoutMs,
      () => `${n} more calls (finished ${this.finished}, failures ${JSON.stringify(this.failures.slice(0, 5))})`);
  }

  async stop() {
    this.stopped = true;
    await Promise.all(this.workers);
    return this;
  }

  summary() {
    return {
      ok: this.ok,
      failures: this.failures.length,
      byValue: Object.fromEntries(this.byValue),
      firstFailures: this.failures.slice(0, 5),
    };
  }
}

module.exports = {
  outboundConfig, inboundConfig, fixedClient, waitForClusterHosts, CallLoop, Resources,
};
