#include "ads_load.h"

#include <limits>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace cairn::bench::xds {

namespace ads = ::envoy::service::discovery::v3;
namespace endpoint = ::envoy::config::endpoint::v3;

namespace {

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    default:
      return absl::StrCat("code ", static_cast<int>(code));
  }
}

}  // namespace

// One ADS stream. gRPC may run its read and write reactions concurrently:
// `mu_` guards the write queue (at most one write in flight, at most one ACK
// waiting: a newer ACK replaces an older one, whose nonce the server would
// ignore as stale anyway). Reads are sequential (one in flight).
class AdsStream : public grpc::ClientBidiReactor<ads::DiscoveryRequest, ads::DiscoveryResponse> {
 public:
  AdsStream(AdsLoad* load, int index, const std::vector<std::string>& names)
      : load_(load), index_(index), names_(names) {}

  void Begin(ads::AggregatedDiscoveryService::Stub* stub) {
    stub->async()->StreamAggregatedResources(&context_, this);
    ads::DiscoveryRequest first;
    first.mutable_node()->set_id(absl::StrCat(load_->options_.node_prefix, "-", index_));
    first.set_type_url(kEdsType);
    for (const auto& name : names_) first.add_resource_names(name);
    if (load_->options_.send_requests) Send(std::move(first));
    StartRead(&response_);
    StartCall();
  }

  void Cancel() { context_.TryCancel(); }

  int first_resources() const { return first_resources_.load(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended: OnDone follows
    auto now = Clock::now();
    load_->responses_.fetch_add(1, std::memory_order_relaxed);
    if (first_resources_.load(std::memory_order_relaxed) < 0) {
      first_resources_.store(response_.resources_size());
    }
    for (const auto& any : response_.resources()) {
      endpoint::ClusterLoadAssignment cla;
      if (!any.UnpackTo(&cla)) {
        load_->decode_errors_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (cla.cluster_name() != load_->options_.watched) continue;
      for (const auto& locality : cla.endpoints()) {
        for (const auto& lb : locality.lb_endpoints()) {
          const auto& socket = lb.endpoint().address().socket_address();
          load_->tracker_->Observe(index_, socket.port_value(), now);
        }
      }
    }
    // ACK as a real client does: the version and nonce just received, the
    // same names.
    ads::DiscoveryRequest ack;
    ack.set_version_info(response_.version_info());
    ack.set_response_nonce(response_.nonce());
    ack.set_type_url(response_.type_url().empty() ? kEdsType : response_.type_url());
    for (const auto& name : names_) ack.add_resource_names(name);
    Send(std::move(ack));
    load_->acks_.fetch_add(1, std::memory_order_relaxed);
    StartRead(&response_);
  }

  void OnWriteDone(bool ok) override {
    bool start = false;
    {
      std::lock_guard lock(mu_);
      if (ok && pending_) {
        request_ = std::move(*pending_);
        pending_.reset();
        start = true;
      } else {
        writing_ = false;
        pending_.reset();
      }
    }
    if (start) StartWrite(&request_);
  }

  void OnDone(const grpc::Status& status) override {
    bool by_us = load_->stopping_.load() && status.error_code() == grpc::StatusCode::CANCELLED;
    std::string error;
    if (!by_us) {
      error = absl::StrCat("stream ", index_, ": ", CodeName(status.error_code()), " ",
                           status.error_message());
    }
    // Last touch of `this` by gRPC; the owner frees it after Stop.
    load_->OnStreamDone(index_, by_us, error);
  }

 private:
  void Send(ads::DiscoveryRequest message) {
    bool start = false;
    {
      std::lock_guard lock(mu_);
      if (writing_) {
        pending_ = std::move(message);
      } else {
        writing_ = true;
        request_ = std::move(message);
        start = true;
      }
    }
    // Outside the lock: a reaction may run inline.
    if (start) StartWrite(&request_);
  }

  AdsLoad* const load_;
  const int index_;
  const std::vector<std::string> names_;
  grpc::ClientContext context_;
  ads::DiscoveryResponse response_;
  std::atomic<int> first_resources_{-1};
  std::mutex mu_;
  bool writing_ = false;                          // a write is in flight (request_ in use)
  ads::DiscoveryRequest request_;                 // the write in flight
  std::optional<ads::DiscoveryRequest> pending_;  // the next one
};

AdsLoad::AdsLoad(AdsLoadOptions options, DeliveryTracker* tracker)
    : options_(std::move(options)), tracker_(tracker) {}

AdsLoad::~AdsLoad() { Stop(std::chrono::seconds(10)); }

void AdsLoad::Start() {
  int n = std::max(1, options_.channels);
  for (int c = 0; c < n; ++c) {
    grpc::ChannelArguments args;
    // One connection per channel: no subchannel shared with another channel
    // (the registry allows max_streams_per_connection calls per connection).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("cairn.xds_bench.channel", c);
    channels_.push_back(
        grpc::CreateCustomChannel(options_.target, grpc::InsecureChannelCredentials(), args));
  }
  std::vector<std::unique_ptr<ads::AggregatedDiscoveryService::Stub>> stubs;
  for (const auto& channel : channels_) {
    stubs.push_back(ads::AggregatedDiscoveryService::NewStub(channel));
  }
  for (size_t i = 0; i < options_.names.size(); ++i) {
    streams_.push_back(std::make_unique<AdsStream>(this, static_cast<int>(i), options_.names[i]));
  }
  for (size_t i = 0; i < streams_.size(); ++i) streams_[i]->Begin(stubs[i % stubs.size()].get());
}

int AdsLoad::Stop(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return 0;
    stopped_ = true;
  }
  stopping_.store(true);
  for (auto& s : streams_) s->Cancel();
  auto deadline = Clock::now() + timeout;
  const int total = static_cast<int>(streams_.size());
  while (ended_.load() < total && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  int left = total - ended_.load();
  if (left > 0) {
    // Some reactor may still be called by gRPC: never free it.
    for (auto& s : streams_) (void)s.release();
  }
  streams_.clear();
  channels_.clear();
  return left;
}

void AdsLoad::OnStreamDone(int /*index*/, bool cancelled_by_us, const std::string& error) {
  if (!cancelled_by_us) {
    failed_.fetch_add(1);
    std::lock_guard lock(mu_);
    if (first_error_.empty()) first_error_ = error;
  }
  ended_.fetch_add(1);
}

std::string AdsLoad::FirstError() const {
  std::lock_guard lock(mu_);
  return first_error_;
}

int AdsLoad::MinFirstResources() const {
  int out = std::numeric_limits<int>::max();
  for (const auto& s : streams_) out = std::min(out, s->first_resources());
  return streams_.empty() ? -1 : out;
}

int AdsLoad::MaxFirstResources() const {
  int out = -1;
  for (const auto& s : streams_) out = std::max(out, s->first_resources());
  return out;
}

}  // namespace cairn::bench::xds
