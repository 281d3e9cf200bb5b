// Fuzz target for the registry's xDS server (src/registry/xds/): what it
// makes of publisher data (URLs and attributes come from any client) and of
// the DiscoveryRequests a stream sends.
//
// Byte 0 picks the mode, the rest is the input:
//   even: publishers, one per line: "zone|weight|health|url url ...". The
//         assignment built from them must parse; every endpoint is an IP
//         literal with a port in 1..65535, appears once, has a weight in
//         1..1000; each locality is one zone whose weight is the sum of its
//         endpoints'; xDS names map to dataInfoIds and back.
//   odd:  a sequence of requests, each "<type digit><nonce digit><flags>
//         <name,name,...>\n", replayed on an XdsServer (fake stream, a real
//         LocalDataServer with a few services) with publishes between them.
//         It must not crash; every response parses, holds only names the
//         stream asked for (or, for a wildcard, that exist), and its nonce
//         is new; a stream the server closes gets INVALID_ARGUMENT.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "registry/data/local_data_server.h"
#include "registry/xds/xds_server.h"

namespace {

using namespace cairn;  // NOLINT: a fuzz target's own file
using namespace cairn::xds;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(sep, start);
    if (end == std::string_view::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF):
// what protobuf requires of proto3 strings, so the only zones a registry
// ever accepts (a Publish with another fails to decode).
bool ValidUtf8(std::string_view s) {
  static const uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = 0;  // continuation bytes
    if (c >= 0x80) {
      if ((c >> 5) == 6) {
        n = 1;
      } else if ((c >> 4) == 14) {
        n = 2;
      } else if ((c >> 3) == 30) {
        n = 3;
      } else {
        return false;
      }
    }
    if (i + n >= s.size() && n > 0) return false;
    uint32_t cp = n == 0 ? c : c & (0x3f >> n);
    for (size_t k = 1; k <= n; ++k) {
      unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 2) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

std::shared_ptr<PublisherRecord> Record(const std::string& data_id, int n) {
  pb::DataInfoKey key;
  key.set_data_id(data_id);
  auto r = std::make_shared<PublisherRecord>();
  r->datum = MakeDatumId(NormalizeKey(key));
  r->registration_id = "r" + std::to_string(n);
  r->version = 1;
  r->owner = std::make_shared<const OwnerRef>(OwnerRef{"local", 1, "", ""});
  return r;
}

void FuzzPublishers(std::string_view input) {
  DatumSnapshot snapshot;
  int n = 0;
  for (std::string_view line : Split(input, '\n')) {
    auto fields = Split(line, '|');
    if (fields.size() < 4 || !ValidUtf8(fields[0])) continue;
    auto r = Record("svc", n++);
    r->zone = std::string(fields[0]);
    r->attributes["weight"] = std::string(fields[1]);
    r->attributes["health"] = std::string(fields[2]);
    for (auto url : Split(fields[3], ' ')) r->data.emplace_back(url);
    snapshot.publishers.push_back(std::move(r));
  }
  ResourceOptions options;
  envoy::config::endpoint::v3::ClusterLoadAssignment cla;
  Check(cla.ParseFromString(BuildClusterLoadAssignment("svc", snapshot, options)));
  Check(cla.cluster_name() == "svc");
  std::set<std::pair<std::string, uint32_t>> seen;
  std::set<std::string> zones;
  for (const auto& locality : cla.endpoints()) {
    Check(zones.insert(locality.locality().zone()).second);
    uint64_t sum = 0;
    for (const auto& lb : locality.lb_endpoints()) {
      const auto& sa = lb.endpoint().address().socket_address();
      unsigned char buffer[16];
      Check(inet_pton(AF_INET, sa.address().c_str(), buffer) == 1 ||
            inet_pton(AF_INET6, sa.address().c_str(), buffer) == 1);
      Check(sa.port_value() >= 1 && sa.port_value() <= 65535);
      Check(seen.emplace(sa.address(), sa.port_value()).second);
      uint32_t weight = lb.load_balancing_weight().value();
      Check(weight >= 1 && weight <= 1000);
      sum += weight;
    }
    Check(locality.load_balancing_weight().value() == sum);
  }
  for (std::string_view line : Split(input, '\n')) {
    auto id = DataInfoIdOfName(line);
    if (id) Check(DataInfoIdOfName(NameOfDataInfoId(*id)) == id);
  }
}

class FakeStream : public XdsStream {
 public:
  bool Send(EncodedResponse&& encoded) override {
    if (closed) return false;
    DiscoveryResponse response;
    Check(response.ParseFromString(encoded.Flatten()));
    sent.push_back(std::move(response));
    return true;
  }
  void Close(const absl::Status& status) override {
    Check(status.code() == absl::StatusCode::kInvalidArgument ||
          status.code() == absl::StatusCode::kUnavailable);
    closed = true;
  }
  void RequestHandled() override {}
  std::vector<DiscoveryResponse> sent;
  bool closed = false;
};

void FuzzRequests(std::string_view input) {
  static const char* const kServices[] = {"a", "b", "c"};
  EventLoop loop("fuzz");
  LocalDataServer data(4, *VersionClock::Open(nullptr));
  prometheus::Registry registry;
  XdsMetrics metrics(registry);
  XdsServerOptions options;
  options.max_resources_per_stream = 8;
  XdsServer server(loop, data, metrics, options);
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = server.OnConnect("fuzz", stream);
  std::set<std::string> nonces;
  std::set<std::string> asked;
  int publishes = 0;
  bool first = true;
  for (std::string_view line : Split(input, '\n')) {
    if (stream->closed || line.size() < 3) break;
    DiscoveryRequest request;
    if (first || (line[2] & 1)) request.mutable_node()->set_id((line[2] & 2) ? "" : "node");
    first = false;
    int type = (line[0] - '0') % 6;
    if (type >= 0 && type < kResourceTypes) {
      request.set_type_url(std::string(TypeUrl(static_cast<ResourceType>(type))));
    } else {
      request.set_type_url("type.googleapis.com/unknown");
    }
    // The nonce: the latest response's, an older one, or none.
    if (!stream->sent.empty() && (line[1] & 1)) {
      size_t back = static_cast<size_t>(line[1] & 6) / 2;
      size_t index = stream->sent.size() > back ? stream->sent.size() - 1 - back : 0;
      request.set_response_nonce(stream->sent[index].nonce());
      request.set_version_info(stream->sent[index].version_info());
      if (line[1] & 8) request.mutable_error_detail()->set_message("rejected");
    }
    for (auto name : Split(line.substr(3), ',')) {
      if (name.empty()) continue;
      request.add_resource_names(std::string(name));
      asked.insert(std::string(name));
    }
    server.OnRequest(id, std::move(request));
    loop.PollForTest();
    // A change between requests.
    auto r = Record(kServices[publishes % 3], publishes);
    r->data = {"grpc://127.0.0.1:" + std::to_string(1000 + publishes)};
    ++publishes;
    data.Publish(r, [](absl::StatusOr<uint64_t>) {});
    loop.PollForTest();
  }
  for (const auto& response : stream->sent) {
    Check(nonces.insert(response.nonce()).second);
    for (const auto& any : response.resources()) {
      Check(any.type_url() == response.type_url());
      if (response.type_url() == TypeUrl(ResourceType::kEndpoint)) {
        envoy::config::endpoint::v3::ClusterLoadAssignment cla;
        Check(cla.ParseFromString(any.value()));
        Check(asked.count(cla.cluster_name()) == 1);  // only names the stream asked for
      }
    }
  }
  server.OnDisconnect(id);
  Check(server.stream_count() == 0);
  // Every gauge comes back to zero: none drifted on the way.
  Check(metrics.streams.Value() == 0);
  for (int t = 0; t < kResourceTypes; ++t) Check(metrics.resources[t]->Value() == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    FuzzPublishers(input);
  } else {
    FuzzRequests(input);
  }
  return 0;
}
