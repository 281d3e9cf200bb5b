// The ServerCodec / ClientCodec faces of Http2Connection, and the factories.
#include "sidecar/codec/http2/http2_codec.h"

#include <algorithm>
#include <memory>

#include "sidecar/codec/http2/http2_connection.h"

namespace cairn::sidecar {
namespace {

using http2_internal::Http2Connection;

class Http2ServerCodecImpl final : public Http2ServerCodec {
 public:
  Http2ServerCodecImpl(ServerCodecCallbacks& callbacks, const CodecLimits& limits,
                       const Http2Options& options)
      : conn_(&callbacks, nullptr, limits, options) {}

  absl::Status OnIngress(std::string_view bytes, std::string& out) override {
    return conn_.Ingress(bytes, out);
  }
  void EncodeResponseHead(StreamId stream, const ResponseHead& head, bool end_stream,
                          std::string& out) override {
    conn_.SubmitResponseHead(stream, head, end_stream, out);
  }
  void EncodeResponseData(StreamId stream, std::string_view data, bool end_stream,
                          std::string& out) override {
    conn_.SubmitData(stream, data, end_stream, out);
  }
  void EncodeResponseTrailers(StreamId stream, const HeaderList& trailers,
                              std::string& out) override {
    conn_.SubmitTrailers(stream, trailers, out);
  }
  bool ResetStream(StreamId stream, std::string& out) override {
    conn_.Reset(stream, out);
    return true;  // HTTP/2 can always reset a single stream
  }
  void Flush(std::string& out) override { conn_.Flush(out); }
  bool WantsClose() const override { return conn_.WantsClose(); }
  bool SupportsMultiplexing() const override { return true; }
  bool ReadingRequestHead() const override { return conn_.ReadingRequestHead(); }

  void ConsumeRequestData(StreamId stream, size_t bytes, std::string& out) override {
    conn_.Consume(stream, bytes, out);
  }
  void Shutdown(std::string& out) override { conn_.Shutdown(out); }

 private:
  Http2Connection conn_;
};

class Http2ClientCodecImpl final : public Http2ClientCodec {
 public:
  Http2ClientCodecImpl(ClientCodecCallbacks& callbacks, const CodecLimits& limits,
                       const Http2Options& options)
      : conn_(nullptr, &callbacks, limits, options) {}

  StreamId EncodeRequestHead(const RequestHead& head, bool end_stream, std::string& out) override {
    return conn_.SubmitRequestHead(head, end_stream, out);
  }
  void EncodeRequestData(StreamId stream, std::string_view data, bool end_stream,
                         std::string& out) override {
    conn_.SubmitData(stream, data, end_stream, out);
  }
  void EncodeRequestTrailers(StreamId stream, const HeaderList& trailers,
                             std::string& out) override {
    conn_.SubmitTrailers(stream, trailers, out);
  }
  bool ResetStream(StreamId stream, std::string& out) override {
    conn_.Reset(stream, out);
    return true;
  }
  absl::Status OnIngress(std::string_view bytes, std::string& out) override {
    return conn_.Ingress(bytes, out);
  }
  void OnUpstreamClosed() override { conn_.PeerClosed(); }
  void Flush(std::string& out) override { conn_.Flush(out); }
  bool CanStartStream() const override { return conn_.CanStartStream(); }
  bool WantsClose() const override { return conn_.WantsClose(); }
  bool SupportsMultiplexing() const override { return true; }

  void ConsumeResponseData(StreamId stream, size_t bytes, std::string& out) override {
    conn_.Consume(stream, bytes, out);
  }

 private:
  Http2Connection conn_;
};

}  // namespace

bool LooksLikeHttp2Preface(std::string_view first_bytes) {
  size_t n = std::min(first_bytes.size(), kHttp2ClientPreface.size());
  return first_bytes.substr(0, n) == kHttp2ClientPreface.substr(0, n);
}

std::unique_ptr<ServerCodec> NewHttp2ServerCodec(ServerCodecCallbacks& callbacks,
                                                 const CodecLimits& limits) {
  return std::make_unique<Http2ServerCodecImpl>(callbacks, limits, Http2Options{});
}

std::unique_ptr<Http2ServerCodec> NewHttp2ServerCodec(ServerCodecCallbacks& callbacks,
                                                      const CodecLimits& limits,
                                                      const Http2Options& options) {
  return std::make_unique<Http2ServerCodecImpl>(callbacks, limits, options);
}

std::unique_ptr<ClientCodec> NewHttp2ClientCodec(ClientCodecCallbacks& callbacks,
                                                 const CodecLimits& limits) {
  return std::make_unique<Http2ClientCodecImpl>(callbacks, limits, Http2Options{});
}

std::unique_ptr<Http2ClientCodec> NewHttp2ClientCodec(ClientCodecCallbacks& callbacks,
                                                      const CodecLimits& limits,
                                                      const Http2Options& options) {
  return std::make_unique<Http2ClientCodecImpl>(callbacks, limits, options);
}

}  // namespace cairn::sidecar
