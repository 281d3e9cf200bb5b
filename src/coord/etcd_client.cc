#include "coord/etcd_client.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "coord/etcd_stubs.h"

namespace cairn::coord {
namespace {

bool IsIpv4Endpoint(const std::string& endpoint) {
  auto colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  for (size_t i = 0; i < colon; ++i) {
    char c = endpoint[i];
    if (c != '.' && (c < '0' || c > '9')) return false;
  }
  return true;
}

etcdserverpb::RequestOp ToProto(const TxnOp& op) {
  etcdserverpb::RequestOp out;
  switch (op.kind) {
    case TxnOp::Kind::kGet: {
      auto* range = out.mutable_request_range();
      range->set_key(op.key);
      if (op.prefix) range->set_range_end(PrefixRangeEnd(op.key));
      break;
    }
    case TxnOp::Kind::kPut: {
      auto* put = out.mutable_request_put();
      put->set_key(op.key);
      put->set_value(op.value);
      put->set_lease(op.lease);
      break;
    }
    case TxnOp::Kind::kDelete: {
      auto* del = out.mutable_request_delete_range();
      del->set_key(op.key);
      if (op.prefix) del->set_range_end(PrefixRangeEnd(op.key));
      break;
    }
  }
  return out;
}

etcdserverpb::Compare ToProto(const Compare& compare) {
  etcdserverpb::Compare out;
  out.set_key(compare.key);
  switch (compare.op) {
    case Compare::Op::kEqual:
      out.set_result(etcdserverpb::Compare::EQUAL);
      break;
    case Compare::Op::kGreater:
      out.set_result(etcdserverpb::Compare::GREATER);
      break;
    case Compare::Op::kLess:
      out.set_result(etcdserverpb::Compare::LESS);
      break;
    case Compare::Op::kNotEqual:
      out.set_result(etcdserverpb::Compare::NOT_EQUAL);
      break;
  }
  switch (compare.target) {
    case Compare::Target::kVersion:
      out.set_target(etcdserverpb::Compare::VERSION);
      out.set_version(compare.number);
      break;
    case Compare::Target::kCreateRevision:
      out.set_target(etcdserverpb::Compare::CREATE);
      out.set_create_revision(compare.number);
      break;
    case Compare::Target::kModRevision:
      out.set_target(etcdserverpb::Compare::MOD);
      out.set_mod_revision(compare.number);
      break;
    case Compare::Target::kValue:
      out.set_target(etcdserverpb::Compare::VALUE);
      out.set_value(compare.value);
      break;
    case Compare::Target::kLease:
      out.set_target(etcdserverpb::Compare::LEASE);
      out.set_lease(compare.number);
      break;
  }
  return out;
}

}  // namespace

std::string PrefixRangeEnd(const std::string& prefix) {
  // The smallest key greater than every key with this prefix: drop trailing
  // 0xff bytes, then increment the last byte. All 0xff (or empty): "\0",
  // which etcd reads as "to the end of the keyspace".
  std::string end = prefix;
  while (!end.empty()) {
    auto last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(const EtcdOptions& options) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("etcd: no endpoints");
  std::vector<std::string> endpoints;
  for (absl::string_view endpoint : options.endpoints) {
    if (absl::ConsumePrefix(&endpoint, "https://") && options.credentials == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "etcd: ", endpoint, " is https but no etcd TLS files are given (its CA at least)"));
    }
    absl::ConsumePrefix(&endpoint, "http://");
    while (absl::ConsumeSuffix(&endpoint, "/")) {
    }
    endpoints.emplace_back(endpoint);
  }
  if (options.request_timeout.count() <= 0) {
    return absl::InvalidArgumentError("etcd: request_timeout must be positive");
  }
  std::string target;
  if (endpoints.size() == 1) {
    target = endpoints[0];
  } else {
    for (const auto& endpoint : endpoints) {
      if (!IsIpv4Endpoint(endpoint)) {
        return absl::InvalidArgumentError(
            absl::StrCat("etcd: with several endpoints each must be IPv4:PORT, got ", endpoint));
      }
    }
    target = absl::StrCat("ipv4:", absl::StrJoin(endpoints, ","));
  }
  grpc::ChannelArguments args;
  // gRPC's default backoff grows to 120 s: far too slow to notice that etcd
  // is back. (Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: it is also the connect
  // timeout, and 100 ms aborts handshakes with a busy etcd.) Keepalive pings notice a dead peer
  // under a hung stream; etcd refuses pings more often than every 5 s (its default minimum).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(options.max_reconnect_backoff.count()));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5'000);
  auto stubs = std::make_unique<Stubs>();
  stubs->channel = grpc::CreateCustomChannel(
      target, options.credentials ? options.credentials : grpc::InsecureChannelCredentials(), args);
  stubs->kv = etcdserverpb::KV::NewStub(stubs->channel);
  stubs->lease = etcdserverpb::Lease::NewStub(stubs->channel);
  stubs->watch = etcdserverpb::Watch::NewStub(stubs->channel);
  return std::unique_ptr<EtcdClient>(new EtcdClient(options, std::move(stubs)));
}

EtcdClient::EtcdClient(EtcdOptions options, std::unique_ptr<Stubs> stubs)
    : options_(std::move(options)), stubs_(std::move(stubs)) {}

EtcdClient::~EtcdClient() = default;

absl::StatusOr<RangeResult> EtcdClient::Range(const std::string& key,
                                              const std::string& range_end) {
  etcdserverpb::RangeRequest request;
  request.set_key(key);
  request.set_range_end(range_end);
  etcdserverpb::RangeResponse response;
  grpc::ClientContext context;
  SetDeadline(context, options_.request_timeout);
  grpc::Status status = stubs_->kv->Range(&context, request, &response);
  if (!status.ok()) return EtcdError("Range", status);
  RangeResult result;
  result.revision = response.header().revision();
  result.kvs.reserve(static_cast<size_t>(response.kvs_size()));
  for (const auto& kv : response.kvs()) result.kvs.push_back(FromProto(kv));
  return result;
}

absl::StatusOr<KeyValue> EtcdClient::Get(const std::string& key) {
  auto range = Range(key, "");
  if (!range.ok()) return range.status();
  if (range->kvs.empty()) return absl::NotFoundError(absl::StrCat("etcd: no key ", key));
  return std::move(range->kvs.front());
}

absl::StatusOr<RangeResult> EtcdClient::GetPrefix(const std::string& prefix) {
  return Range(prefix, PrefixRangeEnd(prefix));
}

absl::StatusOr<int64_t> EtcdClient::Put(const std::string& key, const std::string& value,
                                        int64_t lease) {
  etcdserverpb::PutRequest request;
  request.set_key(key);
  request.set_value(value);
  request.set_lease(lease);
  etcdserverpb::PutResponse response;
  grpc::ClientContext context;
  SetDeadline(context, options_.request_timeout);
  grpc::Status status = stubs_->kv->Put(&context, request, &response);
  if (!status.ok()) return EtcdError("Put", status);
  return response.header().revision();
}

absl::StatusOr<int64_t> EtcdClient::DeleteRange(const std::string& key,
                                                const std::string& range_end) {
  etcdserverpb::DeleteRangeRequest request;
  request.set_key(key);
  request.set_range_end(range_end);
  etcdserverpb::DeleteRangeResponse response;
  grpc::ClientContext context;
  SetDeadline(context, options_.request_timeout);
  grpc::Status status = stubs_->kv->DeleteRange(&context, request, &response);
  if (!status.ok()) return EtcdError("DeleteRange", status);
  return response.deleted();
}

absl::StatusOr<int64_t> EtcdClient::Delete(const std::string& key) { return DeleteRange(key, ""); }

absl::StatusOr<int64_t> EtcdClient::DeletePrefix(const std::string& prefix) {
  return DeleteRange(prefix, PrefixRangeEnd(prefix));
}

absl::StatusOr<TxnResult> EtcdClient::Txn(const std::vector<Compare>& compares,
                                          const std::vector<TxnOp>& success,
                                          const std::vector<TxnOp>& failure) {
  etcdserverpb::TxnRequest request;
  for (const auto& compare : compares) *request.add_compare() = ToProto(compare);
  for (const auto& op : success) *request.add_success() = ToProto(op);
  for (const auto& op : failure) *request.add_failure() = ToProto(op);
  etcdserverpb::TxnResponse response;
  grpc::ClientContext context;
  SetDeadline(context, options_.request_timeout);
  grpc::Status status = stubs_->kv->Txn(&context, request, &response);
  if (!status.ok()) return EtcdError("Txn", status);
  TxnResult result;
  result.succeeded = response.succeeded();
  result.revision = response.header().revision();
  for (const auto& op : response.responses()) {
    std::vector<KeyValue> kvs;
    if (op.has_response_range()) {
      for (const auto& kv : op.response_range().kvs()) kvs.push_back(FromProto(kv));
    }
    result.gets.push_back(std::move(kvs));
  }
  return result;
}

absl::StatusOr<bool> EtcdClient::PutIfAbsent(const std::string& key, const std::string& value,
                                             int64_t lease) {
  auto result = Txn({Compare::Absent(key)}, {TxnOp::Put(key, value, lease)});
  if (!result.ok()) return result.status();
  return result->succeeded;
}

absl::StatusOr<bool> EtcdClient::CompareAndSwap(const std::string& key,
                                                int64_t expected_mod_revision,
                                                const std::string& value, int64_t lease) {
  auto result =
      Txn({Compare::ModRevisionIs(key, expected_mod_revision)}, {TxnOp::Put(key, value, lease)});
  if (!result.ok()) return result.status();
  return result->succeeded;
}

absl::StatusOr<int64_t> EtcdClient::GrantLease(std::chrono::seconds ttl) {
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(ttl.count());
  etcdserverpb::LeaseGrantResponse response;
  grpc::ClientContext context;
  SetDeadline(context, options_.request_timeout);
  grpc::Status status = stubs_->lease->LeaseGrant(&context, request, &response);
  if (!status.ok()) return EtcdError("LeaseGrant", status);
  if (!response.error().empty()) {
    return absl::FailedPreconditionError(absl::StrCat("etcd LeaseGrant: ", response.error()));
  }
  return response.id();
}

absl::Status EtcdClient::RevokeLease(int64_t lease) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseRevokeResponse response;
  grpc::ClientContext context;
  SetDeadline(context, options_.request_timeout);
  grpc::Status status = stubs_->lease->LeaseRevoke(&context, request, &response);
  if (!status.ok()) return EtcdError("LeaseRevoke", status);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> EtcdClient::LeaseTimeToLive(int64_t lease) {
  etcdserverpb::LeaseTimeToLiveRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseTimeToLiveResponse response;
  grpc::ClientContext context;
  SetDeadline(context, options_.request_timeout);
  grpc::Status status = stubs_->lease->LeaseTimeToLive(&context, request, &response);
  if (!status.ok()) return EtcdError("LeaseTimeToLive", status);
  if (response.ttl() < 0) return absl::NotFoundError(absl::StrCat("etcd: no lease ", lease));
  return response.ttl();
}

std::unique_ptr<LeaseKeeper> EtcdClient::KeepAlive(int64_t lease, std::chrono::seconds ttl,
                                                   std::function<void()> on_lost) {
  return std::make_unique<LeaseKeeper>(*this, lease, ttl, std::move(on_lost));
}

std::unique_ptr<Watch> EtcdClient::WatchPrefix(
    const std::string& prefix, int64_t start_revision,
    std::function<void(const std::vector<WatchEvent>&, int64_t revision)> on_events,
    std::function<void(const absl::Status&)> on_error) {
  return std::make_unique<Watch>(*this, prefix, start_revision, std::move(on_events),
                                 std::move(on_error));
}

}  // namespace cairn::coord
