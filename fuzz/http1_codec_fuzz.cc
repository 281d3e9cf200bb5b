// libFuzzer target for the HTTP/1 codecs (sidecar/codec/http1).
//
// Input layout: byte 0 selects the mode (bit 0: server / client), the
// fragment size (bits 1-6) and small or default limits (bit 7). Client mode
// uses byte 1 to pick the request kind (GET, HEAD, POST with content-length,
// POST chunked). The rest is what the peer sends.
//
// Beyond crashes and sanitizer reports it traps when:
//  - parsing the bytes in one piece and in fragments gives different events,
//    status, bytes owed to the peer, or close decision (framing must not
//    depend on TCP segmentation);
//  - an event breaks the codec contract (ids not 1,2,3..., events after the
//    end or reset of a stream, hop-by-hop or upper-case header names,
//    unterminated paths, bodies over the limit, non-sticky errors);
//  - a parsed request, re-encoded by the client codec and parsed again by a
//    second server codec, means something else (the proxy would forward a
//    different request than it received).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sidecar/codec/http1/http1_codec.h"

namespace {

using namespace cairn::sidecar;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

CodecLimits SmallLimits() {
  CodecLimits limits;
  limits.max_header_bytes = 256;
  limits.max_headers = 8;
  limits.max_body_bytes = 512;
  return limits;
}

CodecLimits HugeLimits() {
  CodecLimits limits;
  limits.max_header_bytes = 1 << 20;
  limits.max_headers = 1 << 16;
  limits.max_body_bytes = 0;
  return limits;
}

// Host is only lifted out of requests (into RequestHead.authority).
bool IsAllowedHeader(const std::string& name, const std::string& value, bool request) {
  if (name.empty()) return false;
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  static const char* const kHopByHop[] = {"connection", "keep-alive", "proxy-connection",
                                          "transfer-encoding", "upgrade"};
  for (const char* hop : kHopByHop) {
    if (name == hop) return false;
  }
  if (request && name == "host") return false;
  return name != "te" || value == "trailers";
}

void CheckHeaders(const HeaderList& headers, bool request) {
  for (const auto& [name, value] : headers) Check(IsAllowedHeader(name, value, request));
}

std::string Serialize(const HeaderList& headers) {
  std::string s;
  for (const auto& [name, value] : headers) s += name + ":" + value + ";";
  return s;
}

// ------------------------------------------------------------------ server

struct Request {
  StreamId id = 0;
  RequestHead head;
  bool head_end = false;
  std::string body;
  HeaderList trailers;
  bool has_trailers = false;
  bool ended = false;
  bool reset = false;
};

class ServerSide : public ServerCodecCallbacks {
 public:
  explicit ServerSide(const CodecLimits& limits)
      : limits_(limits), codec_(NewHttp1ServerCodec(*this, limits)) {}

  void OnRequestHead(StreamId stream, RequestHead&& head, bool end_stream) override {
    Check(stream == requests_.size() + 1);
    Check(!head.method.empty() && !head.path.empty() && head.path[0] == '/');
    CheckHeaders(head.headers, /*request=*/true);
    Request request;
    request.id = stream;
    request.head = std::move(head);
    request.head_end = end_stream;
    requests_.push_back(std::move(request));
    if (end_stream) Ended(requests_.back());
  }
  void OnRequestData(StreamId stream, std::string_view data, bool end_stream) override {
    Request& request = Open(stream);
    request.body.append(data);
    Check(limits_.max_body_bytes == 0 || request.body.size() <= limits_.max_body_bytes);
    if (end_stream) Ended(request);
  }
  void OnRequestTrailers(StreamId stream, HeaderList&& trailers) override {
    Request& request = Open(stream);
    Check(!trailers.empty());
    CheckHeaders(trailers, /*request=*/true);
    request.trailers = std::move(trailers);
    request.has_trailers = true;
    Ended(request);
  }
  void OnStreamReset(StreamId stream, ResetReason) override {
    Check(stream >= 1 && stream <= requests_.size());
    Request& request = requests_[stream - 1];
    Check(!request.reset);
    request.reset = true;
  }

  // Feeds `input` in pieces of `chunk` bytes; returns a summary of everything
  // observable.
  std::string Run(std::string_view input, size_t chunk) {
    absl::Status status;
    while (!input.empty() && status.ok()) {
      const std::string_view piece = input.substr(0, chunk);
      input.remove_prefix(piece.size());
      status = codec_->OnIngress(piece, out_);
    }
    if (!status.ok()) {
      Check(status.code() == absl::StatusCode::kInvalidArgument ||
            status.code() == absl::StatusCode::kResourceExhausted ||
            status.code() == absl::StatusCode::kUnimplemented);
      Check(codec_->WantsClose());
      std::string more;
      Check(codec_->OnIngress("GET / HTTP/1.1\r\nHost: a\r\n\r\n", more).code() == status.code());
      Check(more.empty());
    }
    Check(out_.empty() || out_.rfind("HTTP/1.1 ", 0) == 0);
    std::string summary = std::to_string(static_cast<int>(status.code())) + "|" + out_ + "|" +
                          (codec_->WantsClose() ? "close" : "keep") + "\n";
    for (const Request& r : requests_) {
      summary += std::to_string(r.id) + " " + r.head.method + " " + r.head.path + " " +
                 r.head.authority + " " + r.head.scheme + " " + Serialize(r.head.headers) + " " +
                 std::to_string(r.head_end) + " [" + r.body + "] " + Serialize(r.trailers) + " " +
                 std::to_string(r.ended) + std::to_string(r.reset) + "\n";
    }
    return summary;
  }

 private:
  Request& Open(StreamId stream) {
    Check(stream >= 1 && stream <= requests_.size());
    Request& request = requests_[stream - 1];
    Check(!request.ended && !request.reset);
    return request;
  }

  void Ended(Request& request) {
    Check(!request.ended && !request.reset);
    request.ended = true;
    CheckRoundTrip(request);
    // Answer every request as it completes (in order, since requests
    // complete in order), exercising the encoders and pipelining.
    ResponseHead head;
    head.status = 200 + static_cast<int>(request.body.size() % 7);
    head.headers = {{"x-id", std::to_string(request.id)}};
    codec_->EncodeResponseHead(request.id, head, request.body.empty(), out_);
    if (!request.body.empty()) {
      codec_->EncodeResponseData(request.id, request.body, false, out_);
      codec_->EncodeResponseTrailers(request.id, {{"x-len", std::to_string(request.body.size())}},
                                     out_);
    }
  }

  // The client codec re-encodes what was parsed; a second server codec must
  // parse the same request out of it.
  static void CheckRoundTrip(const Request& original);

  CodecLimits limits_;
  std::unique_ptr<ServerCodec> codec_;
  std::vector<Request> requests_;
  std::string out_;
};

class NullClientCallbacks : public ClientCodecCallbacks {
 public:
  void OnResponseHead(StreamId, ResponseHead&&, bool) override {}
  void OnResponseData(StreamId, std::string_view, bool) override {}
  void OnResponseTrailers(StreamId, HeaderList&&) override {}
  void OnStreamReset(StreamId, ResetReason) override {}
};

class CollectingServer : public ServerCodecCallbacks {
 public:
  void OnRequestHead(StreamId, RequestHead&& head, bool end_stream) override {
    ++heads;
    this->head = std::move(head);
    ended = end_stream;
  }
  void OnRequestData(StreamId, std::string_view data, bool end_stream) override {
    body.append(data);
    ended = end_stream;
  }
  void OnRequestTrailers(StreamId, HeaderList&& trailers) override {
    this->trailers = std::move(trailers);
    ended = true;
  }
  void OnStreamReset(StreamId, ResetReason) override { Check(false); }
  int heads = 0;
  RequestHead head;
  std::string body;
  HeaderList trailers;
  bool ended = false;
};

void ServerSide::CheckRoundTrip(const Request& original) {
  NullClientCallbacks null_callbacks;
  auto client = NewHttp1ClientCodec(null_callbacks, HugeLimits());
  std::string wire;
  const StreamId id = client->EncodeRequestHead(original.head, original.head_end, wire);
  Check(id == 1);
  if (!original.head_end) {
    client->EncodeRequestData(id, original.body, !original.has_trailers, wire);
    if (original.has_trailers) client->EncodeRequestTrailers(id, original.trailers, wire);
  }
  CollectingServer collected;
  auto server = NewHttp1ServerCodec(collected, HugeLimits());
  std::string out;
  Check(server->OnIngress(wire, out).ok());
  Check(collected.heads == 1 && collected.ended);
  Check(collected.head.method == original.head.method);
  Check(collected.head.path == original.head.path);
  Check(collected.head.authority == original.head.authority);
  Check(collected.head.headers == original.head.headers);
  Check(collected.body == original.body);
  Check(collected.trailers == original.trailers);
}

// ------------------------------------------------------------------ client

class ClientSide : public ClientCodecCallbacks {
 public:
  ClientSide(const CodecLimits& limits, uint8_t kind)
      : limits_(limits), kind_(kind), codec_(NewHttp1ClientCodec(*this, limits)) {}

  void OnResponseHead(StreamId stream, ResponseHead&& head, bool end_stream) override {
    Check(stream == current_ && !in_response_);
    Check(head.status >= 200 && head.status <= 599);
    CheckHeaders(head.headers, /*request=*/false);
    log_ += "H" + std::to_string(stream) + " " + std::to_string(head.status) + " " +
            Serialize(head.headers) + "\n";
    body_size_ = 0;
    in_response_ = true;
    if (end_stream) End();
  }
  void OnResponseData(StreamId stream, std::string_view data, bool end_stream) override {
    Check(stream == current_ && in_response_);
    body_size_ += data.size();
    Check(limits_.max_body_bytes == 0 || body_size_ <= limits_.max_body_bytes);
    log_.append(data);
    if (end_stream) End();
  }
  void OnResponseTrailers(StreamId stream, HeaderList&& trailers) override {
    Check(stream == current_ && in_response_);
    CheckHeaders(trailers, /*request=*/true);
    log_ += "\nT" + Serialize(trailers);
    End();
  }
  void OnStreamReset(StreamId stream, ResetReason reason) override {
    Check(stream == current_ && !reset_);
    reset_ = true;
    log_ += "\nR" + std::to_string(static_cast<int>(reason));
  }

  std::string Run(std::string_view input, size_t chunk) {
    StartRequest();
    absl::Status status;
    while (!input.empty() && status.ok()) {
      const std::string_view piece = input.substr(0, chunk);
      input.remove_prefix(piece.size());
      status = codec_->OnIngress(piece, out_);
    }
    if (!status.ok()) {
      Check(status.code() == absl::StatusCode::kInvalidArgument ||
            status.code() == absl::StatusCode::kResourceExhausted);
      Check(codec_->WantsClose() && !codec_->CanStartStream());
      Check(codec_->OnIngress("x", out_).code() == status.code());
    } else {
      codec_->OnUpstreamClosed();
      Check(!codec_->CanStartStream());
    }
    return std::to_string(static_cast<int>(status.code())) + "|" + log_ + "|" +
           std::to_string(codec_->WantsClose());
  }

 private:
  void End() {
    Check(in_response_);
    in_response_ = false;
    log_ += "\nE\n";
    // Reuse the connection when allowed, as the connection pool would.
    if (codec_->CanStartStream() && current_ < 3) StartRequest();
  }

  void StartRequest() {
    RequestHead head;
    head.method = kind_ % 4 == 1 ? "HEAD" : (kind_ % 4 >= 2 ? "POST" : "GET");
    head.path = "/r";
    head.authority = "up.local";
    std::string request;
    if (kind_ % 4 == 2) head.headers = {{"content-length", "3"}};
    const bool has_body = kind_ % 4 >= 2;
    const StreamId id = codec_->EncodeRequestHead(head, !has_body, request);
    Check(id == current_ + 1);
    current_ = id;
    reset_ = false;
    if (has_body) codec_->EncodeRequestData(id, "abc", true, request);
    Check(!codec_->CanStartStream());
    // What we send must parse back to the same request.
    CollectingServer collected;
    auto server = NewHttp1ServerCodec(collected, CodecLimits{});
    std::string unused;
    Check(server->OnIngress(request, unused).ok());
    Check(collected.heads == 1 && collected.ended && collected.head.method == head.method &&
          collected.head.authority == head.authority && collected.body == (has_body ? "abc" : ""));
  }

  CodecLimits limits_;
  uint8_t kind_;
  std::unique_ptr<ClientCodec> codec_;
  StreamId current_ = 0;
  bool in_response_ = false;
  bool reset_ = false;
  size_t body_size_ = 0;
  std::string log_;
  std::string out_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t control = data[0];
  const bool server = (control & 1) == 0;
  const size_t chunk = static_cast<size_t>((control >> 1) & 63) + 1;
  const CodecLimits limits = (control & 128) != 0 ? SmallLimits() : CodecLimits{};
  if (server) {
    const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
    ServerSide whole(limits);
    ServerSide fragmented(limits);
    Check(whole.Run(input, input.size()) == fragmented.Run(input, chunk));
  } else {
    const uint8_t kind = data[1];
    const std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
    ClientSide whole(limits, kind);
    ClientSide fragmented(limits, kind);
    Check(whole.Run(input, input.size() + 1) == fragmented.Run(input, chunk));
  }
  return 0;
}
