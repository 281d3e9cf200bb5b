// libFuzzer target for the HTTP/2 codecs (src/sidecar/codec/http2).
//
// The first input byte picks the set-up, the rest is what the peer sends:
//   bit 0     0: feed the server codec, 1: feed a client codec that has
//             started three requests (stream ids 1, 3, 5)
//   bit 1     0: prepend a valid preface (server: client magic; client: an
//             empty SETTINGS frame) so that the fuzzer reaches frame
//             parsing; 1: bytes as they are
//   bits 2-4  size of the pieces the input is fed in (TCP segmentation)
//   bit 5     manual flow control
//   bit 6     small limits, so that limit paths are reachable
// Beyond crashes and sanitizer reports it traps on broken contracts: the
// callback sequence of every stream (head, data, trailers, at most one
// reset, nothing after the end or a reset), whole frames in the output, and
// after a connection error a closed codec whose streams were all reset.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "sidecar/codec/http2/http2_codec.h"

namespace {

using namespace cairn::sidecar;  // NOLINT: a test driver

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// True when `bytes` is a whole number of frames (after the preface).
bool WholeFrames(std::string_view bytes) {
  if (bytes.substr(0, kHttp2ClientPreface.size()) == kHttp2ClientPreface) {
    bytes.remove_prefix(kHttp2ClientPreface.size());
  }
  while (!bytes.empty()) {
    if (bytes.size() < 9) return false;
    size_t len = (size_t{static_cast<uint8_t>(bytes[0])} << 16) |
                 (size_t{static_cast<uint8_t>(bytes[1])} << 8) | static_cast<uint8_t>(bytes[2]);
    if (len > 16384 || bytes.size() < 9 + len) return false;  // we never raise MAX_FRAME_SIZE
    bytes.remove_prefix(9 + len);
  }
  return true;
}

struct StreamState {
  bool head = false;
  bool ended = false;  // the peer finished its message
  bool reset = false;
  bool we_ended = false;  // the application finished its message
  uint64_t body = 0;
};

void CheckFields(const HeaderList& fields) {
  for (const auto& [name, value] : fields) {
    Check(!name.empty() && name[0] != ':');
    for (char c : name) Check(!(c >= 'A' && c <= 'Z'));
  }
}

class FuzzServerApp : public ServerCodecCallbacks {
 public:
  explicit FuzzServerApp(const CodecLimits& limits) : limits_(limits) {}
  void set_codec(ServerCodec* codec, std::string* out) {
    codec_ = codec;
    out_ = out;
  }

  void OnRequestHead(StreamId id, RequestHead&& head, bool end_stream) override {
    Check(id % 2 == 1);
    StreamState& s = streams[id];
    Check(!s.head && !s.reset);
    s.head = true;
    s.ended = end_stream;
    Check(!head.method.empty());
    CheckFields(head.headers);
    Check(head.headers.size() <= limits_.max_headers);
    // Vary how the application answers, re-entrantly from the callback.
    switch (id % 8) {
      case 1:
        codec_->EncodeResponseHead(id, ResponseHead{200, {{"x", "y"}}}, true, *out_);
        s.we_ended = true;
        break;
      case 3:
        codec_->EncodeResponseHead(id, ResponseHead{200, {}}, false, *out_);
        codec_->EncodeResponseData(id, std::string(70000, 'b'), false, *out_);
        codec_->EncodeResponseTrailers(id, {{"grpc-status", "0"}}, *out_);
        s.we_ended = true;
        break;
      case 5:
        codec_->ResetStream(id, *out_);
        s.reset = true;  // no callback is owed for our own reset
        break;
      default:
        later.push_back(id);  // answered outside callbacks
        break;
    }
  }
  void OnRequestData(StreamId id, std::string_view data, bool end_stream) override {
    StreamState& s = Known(id);
    Check(!s.ended);
    s.body += data.size();
    Check(limits_.max_body_bytes == 0 || s.body <= limits_.max_body_bytes);
    s.ended = end_stream;
  }
  void OnRequestTrailers(StreamId id, HeaderList&& trailers) override {
    StreamState& s = Known(id);
    Check(!s.ended);
    CheckFields(trailers);
    s.ended = true;
  }
  void OnStreamReset(StreamId id, ResetReason) override {
    StreamState& s = Known(id);
    s.reset = true;
  }

  std::map<StreamId, StreamState> streams;
  std::vector<StreamId> later;

 private:
  StreamState& Known(StreamId id) {
    auto it = streams.find(id);
    Check(it != streams.end() && it->second.head && !it->second.reset);
    return it->second;
  }

  CodecLimits limits_;
  ServerCodec* codec_ = nullptr;
  std::string* out_ = nullptr;
};

class FuzzClientApp : public ClientCodecCallbacks {
 public:
  void OnResponseHead(StreamId id, ResponseHead&& head, bool end_stream) override {
    StreamState& s = Known(id);
    Check(!s.head && head.status >= 200 && head.status <= 999);
    CheckFields(head.headers);
    s.head = true;
    s.ended = end_stream;
  }
  void OnResponseData(StreamId id, std::string_view, bool end_stream) override {
    StreamState& s = Known(id);
    Check(s.head && !s.ended);
    s.ended = end_stream;
  }
  void OnResponseTrailers(StreamId id, HeaderList&& trailers) override {
    StreamState& s = Known(id);
    Check(s.head && !s.ended);
    CheckFields(trailers);
    s.ended = true;
  }
  void OnStreamReset(StreamId id, ResetReason) override { Known(id).reset = true; }

  std::map<StreamId, StreamState> streams;

 private:
  StreamState& Known(StreamId id) {
    auto it = streams.find(id);
    Check(it != streams.end() && !it->second.reset);
    return it->second;
  }
};

constexpr size_t kPieces[8] = {1, 2, 3, 9, 17, 100, 1000, SIZE_MAX};

void FuzzServer(std::string_view input, size_t piece, const CodecLimits& limits,
                const Http2Options& options) {
  FuzzServerApp app(limits);
  std::unique_ptr<Http2ServerCodec> codec = NewHttp2ServerCodec(app, limits, options);
  std::string out;
  app.set_codec(codec.get(), &out);
  absl::Status status;
  while (!input.empty() && status.ok()) {
    std::string_view part = input.substr(0, piece);
    input.remove_prefix(part.size());
    status = codec->OnIngress(part, out);
    Check(WholeFrames(out));
    if (!status.ok()) break;
    for (StreamId id : app.later) {
      if (app.streams[id].reset) continue;
      codec->EncodeResponseHead(id, ResponseHead{404, {{"content-type", "text/plain"}}}, false,
                                out);
      codec->EncodeResponseData(id, "not found", true, out);
      app.streams[id].we_ended = true;
      if (options.manual_flow_control) codec->ConsumeRequestData(id, 1 << 20, out);
    }
    app.later.clear();
    Check(WholeFrames(out));
  }
  if (!status.ok()) {
    Check(status.code() == absl::StatusCode::kInvalidArgument ||
          status.code() == absl::StatusCode::kResourceExhausted);
    Check(codec->WantsClose());
    std::string more;
    Check(!codec->OnIngress("x", more).ok() && more.empty());
    // Every stream the application saw is finished or was reset.
    for (const auto& [id, s] : app.streams) Check(s.reset || (s.ended && s.we_ended));
  }
}

void FuzzClient(std::string_view input, size_t piece, const CodecLimits& limits,
                const Http2Options& options) {
  FuzzClientApp app;
  std::unique_ptr<Http2ClientCodec> codec = NewHttp2ClientCodec(app, limits, options);
  std::string out;
  RequestHead head{"GET", "/", "example.com", "http", {{"accept", "*/*"}}};
  StreamId a = codec->EncodeRequestHead(head, true, out);
  head.method = "POST";
  StreamId b = codec->EncodeRequestHead(head, false, out);
  StreamId c = codec->EncodeRequestHead(head, false, out);
  Check(a == 1 && b == 3 && c == 5);
  for (StreamId id : {a, b, c}) app.streams[id];
  codec->EncodeRequestData(b, "payload", false, out);
  codec->EncodeRequestTrailers(b, {{"x-t", "1"}}, out);
  codec->EncodeRequestData(c, std::string(100000, 'c'), true, out);  // beyond one window
  Check(WholeFrames(out));
  absl::Status status;
  while (!input.empty() && status.ok()) {
    std::string_view part = input.substr(0, piece);
    input.remove_prefix(part.size());
    status = codec->OnIngress(part, out);
    Check(WholeFrames(out));
    if (options.manual_flow_control) {
      for (StreamId id : {a, b, c}) codec->ConsumeResponseData(id, 1 << 20, out);
    }
  }
  if (status.ok()) codec->OnUpstreamClosed();
  Check(codec->WantsClose() && !codec->CanStartStream());
  // The contract on connection errors and EOF: every stream is finished or
  // was reset through the callbacks.
  for (const auto& [id, s] : app.streams) Check(s.reset || s.ended);
  Check(WholeFrames(out));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t mode = data[0];
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  bool client = (mode & 1) != 0;
  bool raw = (mode & 2) != 0;
  size_t piece = kPieces[(mode >> 2) & 7];
  Http2Options options;
  options.manual_flow_control = (mode & 0x20) != 0;
  CodecLimits limits;
  if ((mode & 0x40) != 0) {
    limits.max_header_bytes = 200;
    limits.max_headers = 4;
    limits.max_body_bytes = 100;
    limits.max_concurrent_streams = 2;
  }
  std::string input;
  if (!raw) {
    input = client ? std::string("\0\0\0\x04\0\0\0\0\0", 9) : std::string(kHttp2ClientPreface);
  }
  input.append(body);
  if (client) {
    FuzzClient(input, piece, limits, options);
  } else {
    FuzzServer(input, piece, limits, options);
  }
  return 0;
}
