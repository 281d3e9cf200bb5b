#include "sidecar/proxy/tcp_proxy.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

namespace cairn::sidecar {

TcpProxy::TcpProxy(Worker& worker, std::unique_ptr<Connection> downstream, ClusterWorker& cluster,
                   std::function<void(TcpProxy*)> on_finished)
    : worker_(worker),
      downstream_(std::move(downstream)),
      cluster_(cluster),
      on_finished_(std::move(on_finished)) {
  downstream_->SetHandler(&downstream_side_);
}

TcpProxy::~TcpProxy() = default;

void TcpProxy::Start() {
  downstream_->StartReading();
  Connect(1);
}

void TcpProxy::Connect(int attempt) {
  upstream::LbContext ctx;
  ctx.avoid = host_.get();
  host_ = cluster_.ChooseHost(ctx);
  if (host_ == nullptr) {
    spdlog::debug("tcp proxy: cluster {} has no host", cluster_.config().name);
    Finish();
    return;
  }
  auto endpoint = ToEndpoint(host_->address());
  if (!endpoint.ok()) {
    Finish();
    return;
  }
  cluster_.stats().requests.Increment();
  connector_ = std::make_unique<Connector>(
      worker_, *endpoint, std::chrono::milliseconds(cluster_.config().connect_timeout_ms),
      [this, attempt](int fd, const std::string&) {
        worker_.Post([doomed = std::shared_ptr<Connector>(std::move(connector_))] {});
        if (finished_) {
          if (fd >= 0) ::close(fd);
          return;
        }
        if (fd < 0) {
          cluster_.stats().errors.Increment();
          cluster_.ReportResult(host_, false);
          if (attempt < 3) {
            Connect(attempt + 1);  // another host, if there is one
          } else {
            Finish();
          }
          return;
        }
        cluster_.ReportResult(host_, true);
        upstream_ = std::make_unique<Connection>(worker_, fd, &upstream_side_);
        upstream_->StartReading();
        if (!early_data_.empty()) upstream_->Write(early_data_);
      });
}

void TcpProxy::Forward(bool from_downstream, std::string_view data) {
  if (from_downstream) {
    if (upstream_ == nullptr) {
      early_data_.append(data);
      if (early_data_.size() > kHighWatermark) downstream_->PauseReading();
      return;
    }
    upstream_->Write(data);
    if (upstream_->queued_bytes() > kHighWatermark) downstream_->PauseReading();
  } else {
    downstream_->Write(data);
    if (downstream_->queued_bytes() > kHighWatermark) upstream_->PauseReading();
  }
}

void TcpProxy::Drained(bool downstream) {
  // The side that drained can take more: resume reading from the other side.
  if (downstream) {
    if (upstream_) upstream_->StartReading();
  } else {
    downstream_->StartReading();
  }
}

void TcpProxy::Closed(bool downstream) {
  // One side closed: write what the other side still has queued, then close
  // it too; its OnClose finishes the proxy.
  Connection* other = downstream ? upstream_.get() : downstream_.get();
  if (other != nullptr && other->open()) {
    other->CloseAfterFlush();
    return;
  }
  Finish();
}

void TcpProxy::Finish() {
  if (finished_) return;
  finished_ = true;
  connector_.reset();
  if (on_finished_) {
    auto callback = std::move(on_finished_);
    callback(this);
  }
}

}  // namespace cairn::sidecar
