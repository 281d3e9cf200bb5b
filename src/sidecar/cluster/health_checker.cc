#include "sidecar/cluster/health_checker.h"

#include <spdlog/spdlog.h>
#include <asio/connect.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include "sidecar/cluster/cluster.h"

namespace cairn::sidecar {
namespace {

// One probe: connect (and for HTTP, one request/response), bounded by a timer.
struct Probe : std::enable_shared_from_this<Probe> {
  Probe(asio::io_context& io) : socket(io), timer(io) {}
  asio::ip::tcp::socket socket;
  asio::steady_timer timer;
  std::string request;
  std::string response;
  std::array<char, 512> buffer;
  bool finished = false;
  std::function<void(bool)> done;

  void Finish(bool passed) {
    if (finished) return;
    finished = true;
    timer.cancel();
    std::error_code ec;
    socket.close(ec);
    done(passed);
  }

  void ReadStatus() {
    auto self = shared_from_this();
    socket.async_read_some(asio::buffer(buffer), [self](const std::error_code& ec, size_t n) {
      if (self->finished) return;
      self->response.append(self->buffer.data(), n);
      // "HTTP/1.1 200": the status code sits at bytes 9-11.
      if (self->response.size() >= 12) {
        char first = self->response[9];
        self->Finish(self->response.compare(0, 5, "HTTP/") == 0 && first == '2');
        return;
      }
      if (ec) {
        self->Finish(false);
        return;
      }
      self->ReadStatus();
    });
  }
};

}  // namespace

HealthChecker::HealthChecker(asio::io_context& io, const HealthCheckConfig& config,
                             std::string cluster)
    : io_(io), config_(config), cluster_(std::move(cluster)) {}

HealthChecker::~HealthChecker() {
  *alive_ = false;
  if (timer_) timer_->cancel();
}

void HealthChecker::SetHosts(std::shared_ptr<const upstream::HostSet> hosts) {
  hosts_ = std::move(hosts);
}

void HealthChecker::Start() {
  timer_ = std::make_unique<asio::steady_timer>(io_);
  CheckAll();
}

void HealthChecker::CheckAll() {
  if (hosts_ != nullptr) {
    for (const auto& host : hosts_->hosts()) CheckOne(host);
  }
  timer_->expires_after(std::chrono::milliseconds(config_.interval_ms));
  timer_->async_wait([this, alive = alive_](const std::error_code& ec) {
    if (*alive && !ec) CheckAll();
  });
}

void HealthChecker::CheckOne(const upstream::HostPtr& host) {
  auto endpoint = ToEndpoint(host->address());
  if (!endpoint.ok()) {
    Record(host, false);
    return;
  }
  auto probe = std::make_shared<Probe>(io_);
  probe->done = [this, alive = alive_, host](bool passed) {
    if (*alive) Record(host, passed);
  };
  if (config_.type == "http") {
    probe->request = "GET " + config_.path + " HTTP/1.1\r\nHost: " + host->address_string() +
                     "\r\nUser-Agent: cairn-health-check\r\nConnection: close\r\n\r\n";
  }
  probe->timer.expires_after(std::chrono::milliseconds(config_.timeout_ms));
  probe->timer.async_wait([probe](const std::error_code& ec) {
    if (!ec) probe->Finish(false);
  });
  probe->socket.async_connect(*endpoint, [probe](const std::error_code& ec) {
    if (probe->finished) return;
    if (ec) {
      probe->Finish(false);
      return;
    }
    if (probe->request.empty()) {
      probe->Finish(true);
      return;
    }
    asio::async_write(probe->socket, asio::buffer(probe->request),
                      [probe](const std::error_code& write_ec, size_t) {
                        if (probe->finished) return;
                        if (write_ec) {
                          probe->Finish(false);
                          return;
                        }
                        probe->ReadStatus();
                      });
  });
}

void HealthChecker::Record(const upstream::HostPtr& host, bool passed) {
  HostState& state = states_[host->address_string()];
  using upstream::HealthFlag;
  if (passed) {
    state.failures = 0;
    ++state.passes;
    if (host->HasHealthFlag(HealthFlag::kFailedActiveHealthCheck) &&
        state.passes >= config_.healthy_threshold) {
      host->ClearHealthFlag(HealthFlag::kFailedActiveHealthCheck);
      spdlog::info("cluster {}: host {} passed health checks; back in rotation", cluster_,
                   host->address_string());
    }
  } else {
    state.passes = 0;
    ++state.failures;
    if (!host->HasHealthFlag(HealthFlag::kFailedActiveHealthCheck) &&
        state.failures >= config_.unhealthy_threshold) {
      host->SetHealthFlag(HealthFlag::kFailedActiveHealthCheck);
      spdlog::warn("cluster {}: host {} failed {} health checks; out of rotation", cluster_,
                   host->address_string(), state.failures);
    }
  }
}

}  // namespace cairn::sidecar
