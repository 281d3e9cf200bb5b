// Micro-benchmark of the HTTP/2 server codec: what one worker pays to parse
// a batch of requests and frame their responses, without sockets. The
// requests are 100 GETs a real client codec encoded (HPACK with a warm
// dynamic table after the first), fed to a fresh server codec either in one
// read or one read per frame; the application answers each request on its
// head with a small response, as the proxy does for a local reply.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sidecar/codec/http2/http2_codec.h"

namespace cairn::sidecar {
namespace {

constexpr int kRequests = 100;

class NullClient : public ClientCodecCallbacks {
 public:
  void OnResponseHead(StreamId, ResponseHead&&, bool) override {}
  void OnResponseData(StreamId, std::string_view, bool) override {}
  void OnResponseTrailers(StreamId, HeaderList&&) override {}
  void OnStreamReset(StreamId, ResetReason) override {}
};

// The client's bytes: preface, SETTINGS, then kRequests HEADERS frames.
// `frame_ends` receives the offset just past each one.
std::string ClientBytes(std::vector<size_t>& frame_ends) {
  NullClient app;
  auto client = NewHttp2ClientCodec(app, CodecLimits{}, Http2Options{});
  std::string out;
  client->Flush(out);
  frame_ends.push_back(out.size());
  for (int i = 0; i < kRequests; ++i) {
    RequestHead head{"GET",
                     "/api/v1/items?page=" + std::to_string(i),
                     "backend.local",
                     "http",
                     {{"accept", "application/json"}, {"user-agent", "bench/1.0"}}};
    client->EncodeRequestHead(head, true, out);
    frame_ends.push_back(out.size());
  }
  return out;
}

class AnsweringServer : public ServerCodecCallbacks {
 public:
  void OnRequestHead(StreamId id, RequestHead&&, bool) override {
    codec->EncodeResponseHead(id, ResponseHead{200, {{"content-type", "text/plain"}}}, false, *out);
    codec->EncodeResponseData(id, "hello", true, *out);
    ++answered;
  }
  void OnRequestData(StreamId, std::string_view, bool) override {}
  void OnRequestTrailers(StreamId, HeaderList&&) override {}
  void OnStreamReset(StreamId, ResetReason) override {}

  ServerCodec* codec = nullptr;
  std::string* out = nullptr;
  int answered = 0;
};

// range(0): 0 = every request in one read, 1 = one read per frame.
void BM_ServerRequests(benchmark::State& state) {
  std::vector<size_t> ends;
  const std::string bytes = ClientBytes(ends);
  const bool per_frame = state.range(0) != 0;
  std::string out;
  out.reserve(1 << 16);
  for (auto _ : state) {
    AnsweringServer app;
    auto server = NewHttp2ServerCodec(app, CodecLimits{});
    out.clear();
    app.codec = server.get();
    app.out = &out;
    if (per_frame) {
      size_t from = 0;
      for (size_t end : ends) {
        (void)server->OnIngress(std::string_view(bytes).substr(from, end - from), out);
        from = end;
      }
    } else {
      (void)server->OnIngress(bytes, out);
    }
    if (app.answered != kRequests) state.SkipWithError("not every request was answered");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * kRequests);
}
BENCHMARK(BM_ServerRequests)->Arg(0)->Arg(1);

}  // namespace
}  // namespace cairn::sidecar

BENCHMARK_MAIN();
