#include "sidecar/cluster/upstream_attempts.h"

namespace cairn::sidecar {

UpstreamAttempts::~UpstreamAttempts() {
  if (cluster_ == nullptr) return;
  if (counted_retry_) cluster_->EndRetry();
  cluster_->EndRequest();
}

bool UpstreamAttempts::Begin(ClusterWorker& cluster) {
  if (!cluster.TryStartRequest()) return false;
  cluster_ = &cluster;
  return true;
}

upstream::HostPtr UpstreamAttempts::NextHost(upstream::LbContext ctx) {
  ++attempts_;
  ctx.avoid = host_.get();
  host_ = cluster_->ChooseHost(ctx);
  if (host_ == nullptr) return nullptr;
  host_request_ = upstream::ActiveRequestHandle(host_);
  reported_ = false;
  cluster_->stats().requests.Increment();
  return host_;
}

void UpstreamAttempts::Report(bool success) {
  if (reported_ || host_ == nullptr) return;
  reported_ = true;
  cluster_->ReportResult(host_, success);
}

bool UpstreamAttempts::TakeRetry(uint32_t max_retries) {
  if (attempts_ > max_retries) return false;
  if (!counted_retry_) {
    if (!cluster_->TryStartRetry()) return false;
    counted_retry_ = true;
  }
  cluster_->stats().retries.Increment();
  return true;
}

std::string UpstreamAttempts::HostName() const {
  return host_ != nullptr ? host_->address_string() : std::string("-");
}

}  // namespace cairn::sidecar
