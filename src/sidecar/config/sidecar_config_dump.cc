// DumpSidecarConfig: the effective configuration (defaults filled in) as
// YAML, served by the admin /config endpoint. There are no secrets in the
// schema yet; a field that holds one must be printed as "<redacted>" here.
#include <yaml-cpp/yaml.h>

#include "sidecar/config/sidecar_config.h"

namespace cairn::sidecar {
namespace {

// File paths only: the key's contents are never read here.
void EmitTls(YAML::Emitter& out, const TlsConfig& tls, bool listener) {
  out << YAML::Key << "tls" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "cert" << YAML::Value << tls.cert;
  out << YAML::Key << "key" << YAML::Value << tls.key;
  out << YAML::Key << "ca" << YAML::Value << tls.ca;
  if (listener) {
    out << YAML::Key << "require_client_cert" << YAML::Value << tls.require_client_cert;
  } else {
    out << YAML::Key << "verify_app" << YAML::Value << tls.verify_app;
    out << YAML::Key << "expect_app" << YAML::Value << tls.expect_app;
    out << YAML::Key << "expect_identity" << YAML::Value << tls.expect_identity;
  }
  out << YAML::EndMap;
}

void EmitCluster(YAML::Emitter& out, const ClusterConfig& c) {
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << c.name;
  out << YAML::Key << "lb" << YAML::Value << c.lb;
  out << YAML::Key << "protocol" << YAML::Value << c.protocol;
  if (c.registry) {
    out << YAML::Key << "registry" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "data_id" << YAML::Value << c.registry->data_id;
    out << YAML::Key << "group" << YAML::Value << c.registry->group;
    out << YAML::Key << "instance_id" << YAML::Value << c.registry->instance_id;
    out << YAML::EndMap;
  } else {
    out << YAML::Key << "endpoints" << YAML::Value << YAML::Flow << c.endpoints;
  }
  out << YAML::Key << "connect_timeout_ms" << YAML::Value << c.connect_timeout_ms;
  out << YAML::Key << "idle_timeout_ms" << YAML::Value << c.idle_timeout_ms;
  if (IsRpcProtocol(c.protocol)) {
    out << YAML::Key << "heartbeat_interval_ms" << YAML::Value << c.heartbeat_interval_ms;
  }
  if (c.tls) EmitTls(out, *c.tls, false);
  out << YAML::Key << "limits" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "max_connections" << YAML::Value << c.limits.max_connections;
  out << YAML::Key << "max_pending" << YAML::Value << c.limits.max_pending;
  out << YAML::Key << "max_requests" << YAML::Value << c.limits.max_requests;
  out << YAML::Key << "max_retries" << YAML::Value << c.limits.max_retries;
  out << YAML::EndMap;
  out << YAML::Key << "health_check" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "type" << YAML::Value << c.health_check.type;
  out << YAML::Key << "path" << YAML::Value << c.health_check.path;
  out << YAML::Key << "interval_ms" << YAML::Value << c.health_check.interval_ms;
  out << YAML::Key << "timeout_ms" << YAML::Value << c.health_check.timeout_ms;
  out << YAML::Key << "unhealthy_threshold" << YAML::Value << c.health_check.unhealthy_threshold;
  out << YAML::Key << "healthy_threshold" << YAML::Value << c.health_check.healthy_threshold;
  out << YAML::EndMap;
  out << YAML::Key << "outlier" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "consecutive_failures" << YAML::Value << c.outlier.consecutive_failures;
  out << YAML::Key << "base_ejection_ms" << YAML::Value << c.outlier.base_ejection_ms;
  out << YAML::Key << "max_ejection_percent" << YAML::Value << c.outlier.max_ejection_percent;
  out << YAML::EndMap;
  out << YAML::EndMap;
}

void EmitRoute(YAML::Emitter& out, const Route& r) {
  out << YAML::BeginMap;
  out << YAML::Key << "match" << YAML::Value << YAML::BeginMap;
  if (!r.path.empty()) {
    out << YAML::Key << "path" << YAML::Value << r.path;
  } else {
    out << YAML::Key << "prefix" << YAML::Value << r.prefix;
  }
  if (!r.host.empty()) out << YAML::Key << "host" << YAML::Value << r.host;
  if (!r.headers.empty()) {
    out << YAML::Key << "headers" << YAML::Value << YAML::BeginSeq;
    for (const auto& h : r.headers) {
      out << YAML::Flow << YAML::BeginMap << YAML::Key << "name" << YAML::Value << h.name
          << YAML::Key << "value" << YAML::Value << h.value << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
  if (!r.cluster.empty()) out << YAML::Key << "cluster" << YAML::Value << r.cluster;
  if (!r.weighted_clusters.empty()) {
    out << YAML::Key << "weighted_clusters" << YAML::Value << YAML::BeginSeq;
    for (const auto& w : r.weighted_clusters) {
      out << YAML::Flow << YAML::BeginMap << YAML::Key << "cluster" << YAML::Value << w.cluster
          << YAML::Key << "weight" << YAML::Value << w.weight << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  if (r.direct_response) {
    out << YAML::Key << "direct_response" << YAML::Value << YAML::Flow << YAML::BeginMap
        << YAML::Key << "status" << YAML::Value << r.direct_response->status << YAML::Key << "body"
        << YAML::Value << r.direct_response->body << YAML::EndMap;
  }
  out << YAML::Key << "timeout_ms" << YAML::Value << r.timeout_ms;
  out << YAML::Key << "retry" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "attempts" << YAML::Value << r.retry.attempts;
  out << YAML::Key << "on_connect_failure" << YAML::Value << r.retry.on_connect_failure;
  out << YAML::Key << "on_5xx" << YAML::Value << r.retry.on_5xx;
  out << YAML::Key << "on_reset" << YAML::Value << r.retry.on_reset;
  out << YAML::Key << "per_try_timeout_ms" << YAML::Value << r.retry.per_try_timeout_ms;
  out << YAML::EndMap;
  if (!r.hash_header.empty()) out << YAML::Key << "hash_header" << YAML::Value << r.hash_header;
  if (!r.allow.empty()) out << YAML::Key << "allow" << YAML::Value << YAML::Flow << r.allow;
  out << YAML::EndMap;
}

void EmitRpcRoute(YAML::Emitter& out, const RpcRoute& r) {
  out << YAML::BeginMap;
  out << YAML::Key << "match" << YAML::Value << YAML::Flow << YAML::BeginMap;
  if (!r.service.empty()) out << YAML::Key << "service" << YAML::Value << r.service;
  if (!r.service_prefix.empty()) {
    out << YAML::Key << "service_prefix" << YAML::Value << r.service_prefix;
  }
  out << YAML::EndMap;
  out << YAML::Key << "cluster" << YAML::Value << r.cluster;
  out << YAML::Key << "timeout_ms" << YAML::Value << r.timeout_ms;
  out << YAML::Key << "retry" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "attempts" << YAML::Value << r.retry.attempts;
  out << YAML::Key << "on_connect_failure" << YAML::Value << r.retry.on_connect_failure;
  out << YAML::Key << "on_reset" << YAML::Value << r.retry.on_reset;
  out << YAML::EndMap;
  out << YAML::EndMap;
}

}  // namespace

std::string DumpSidecarConfig(const SidecarConfig& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "workers" << YAML::Value << c.workers;
  out << YAML::Key << "admin" << YAML::Value << c.admin;
  out << YAML::Key << "admin_token_file" << YAML::Value << c.admin_token_file;
  out << YAML::Key << "registry_servers" << YAML::Value << YAML::Flow << c.registry_servers;
  if (c.registry_tls) {
    out << YAML::Key << "registry_tls" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "cert" << YAML::Value << c.registry_tls->cert;
    out << YAML::Key << "key" << YAML::Value << c.registry_tls->key;
    out << YAML::Key << "ca" << YAML::Value << c.registry_tls->ca;
    out << YAML::EndMap;
  }
  out << YAML::Key << "access_log" << YAML::Value << c.access_log;
  out << YAML::Key << "drain_timeout_ms" << YAML::Value << c.drain_timeout_ms;
  out << YAML::Key << "max_request_header_bytes" << YAML::Value << c.max_request_header_bytes;
  out << YAML::Key << "max_request_body_bytes" << YAML::Value << c.max_request_body_bytes;
  out << YAML::Key << "app" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << c.app.name;
  out << YAML::Key << "discovery" << YAML::Value << c.app.discovery;
  out << YAML::Key << "zone" << YAML::Value << c.app.zone;
  out << YAML::Key << "mapping_refresh_ms" << YAML::Value << c.app.mapping_refresh_ms;
  out << YAML::Key << "local_api" << YAML::Value << c.app.local_api;
  out << YAML::EndMap;
  out << YAML::Key << "listeners" << YAML::Value << YAML::BeginSeq;
  for (const auto& l : c.listeners) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << l.name;
    out << YAML::Key << "address" << YAML::Value << l.address;
    out << YAML::Key << "protocol" << YAML::Value << l.protocol;
    if (!l.tcp_cluster.empty()) out << YAML::Key << "tcp_cluster" << YAML::Value << l.tcp_cluster;
    if (l.tls) EmitTls(out, *l.tls, true);
    out << YAML::Key << "http2_flush_delay_us" << YAML::Value << l.http2_flush_delay_us;
    out << YAML::Key << "http2_flush_batch" << YAML::Value << l.http2_flush_batch;
    out << YAML::Key << "request_header_timeout_ms" << YAML::Value << l.request_header_timeout_ms;
    out << YAML::Key << "idle_timeout_ms" << YAML::Value << l.idle_timeout_ms;
    out << YAML::Key << "max_connections" << YAML::Value << l.max_connections;
    out << YAML::Key << "http2_max_reset_burst" << YAML::Value << l.http2_max_reset_burst;
    out << YAML::Key << "http2_resets_per_s" << YAML::Value << l.http2_resets_per_s;
    out << YAML::Key << "http2_max_continuations" << YAML::Value << l.http2_max_continuations;
    if (!l.routes.empty()) {
      out << YAML::Key << "routes" << YAML::Value << YAML::BeginSeq;
      for (const auto& r : l.routes) EmitRoute(out, r);
      out << YAML::EndSeq;
    }
    for (const auto& [rpc, routes] : l.rpc_routes) {
      out << YAML::Key << rpc + "_routes" << YAML::Value << YAML::BeginSeq;
      for (const auto& r : routes) EmitRpcRoute(out, r);
      out << YAML::EndSeq;
    }
    if (l.publish) {
      out << YAML::Key << "publish" << YAML::Value << YAML::BeginMap;
      out << YAML::Key << "data_id" << YAML::Value << l.publish->data_id;
      out << YAML::Key << "app" << YAML::Value << l.publish->app;
      out << YAML::Key << "zone" << YAML::Value << l.publish->zone;
      out << YAML::Key << "endpoint" << YAML::Value << l.publish->endpoint;
      if (!l.publish->interfaces.empty()) {
        out << YAML::Key << "interfaces" << YAML::Value << YAML::BeginSeq;
        for (const auto& f : l.publish->interfaces) {
          out << YAML::BeginMap;
          out << YAML::Key << "data_id" << YAML::Value << f.data_id;
          out << YAML::Key << "group" << YAML::Value << f.group;
          out << YAML::Key << "instance_id" << YAML::Value << f.instance_id;
          out << YAML::Key << "params" << YAML::Value << YAML::Flow << f.params;
          out << YAML::EndMap;
        }
        out << YAML::EndSeq;
      }
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "clusters" << YAML::Value << YAML::BeginSeq;
  for (const auto& cluster : c.clusters) EmitCluster(out, cluster);
  out << YAML::EndSeq;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace cairn::sidecar
