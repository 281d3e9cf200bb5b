// Recording callbacks shared by the HTTP/1 codec tests.
//
// Thread-safety: test-only, single-threaded. Ownership: recorders own copies
// of everything the codec reported.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sidecar/codec/codec.h"

namespace cairn::sidecar::http1_test {

// What the server codec appends before closing on a parse error.
inline std::string ErrorResponse(std::string_view status_line) {
  return "HTTP/1.1 " + std::string(status_line) +
         "\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
}

struct ServerRequest {
  StreamId id = 0;
  RequestHead head;
  bool head_end = false;
  std::string body;
  int data_events = 0;
  int end_events = 0;
  HeaderList trailers;
  bool has_trailers = false;
};

class ServerRecorder : public ServerCodecCallbacks {
 public:
  void OnRequestHead(StreamId stream, RequestHead&& head, bool end_stream) override {
    ServerRequest request;
    request.id = stream;
    request.head = std::move(head);
    request.head_end = end_stream;
    request.end_events = end_stream ? 1 : 0;
    requests.push_back(std::move(request));
    if (end_stream && on_end) on_end(stream);
  }
  void OnRequestData(StreamId stream, std::string_view data, bool end_stream) override {
    ServerRequest& request = Find(stream);
    request.body.append(data);
    ++request.data_events;
    if (end_stream) {
      ++request.end_events;
      if (on_end) on_end(stream);
    }
  }
  void OnRequestTrailers(StreamId stream, HeaderList&& trailers) override {
    ServerRequest& request = Find(stream);
    request.trailers = std::move(trailers);
    request.has_trailers = true;
    ++request.end_events;
    if (on_end) on_end(stream);
  }
  void OnStreamReset(StreamId stream, ResetReason reason) override {
    resets.emplace_back(stream, reason);
  }

  ServerRequest& Find(StreamId stream) {
    for (ServerRequest& request : requests) {
      if (request.id == stream) return request;
    }
    ADD_FAILURE() << "event for unknown stream " << stream;
    static ServerRequest dummy;
    return dummy;
  }

  std::vector<ServerRequest> requests;
  std::vector<std::pair<StreamId, ResetReason>> resets;
  std::function<void(StreamId)> on_end;
};

struct ClientResponse {
  StreamId id = 0;
  ResponseHead head;
  bool head_end = false;
  std::string body;
  int end_events = 0;
  HeaderList trailers;
  bool has_trailers = false;
};

class ClientRecorder : public ClientCodecCallbacks {
 public:
  void OnResponseHead(StreamId stream, ResponseHead&& head, bool end_stream) override {
    ClientResponse response;
    response.id = stream;
    response.head = std::move(head);
    response.head_end = end_stream;
    response.end_events = end_stream ? 1 : 0;
    responses.push_back(std::move(response));
  }
  void OnResponseData(StreamId stream, std::string_view data, bool end_stream) override {
    ASSERT_FALSE(responses.empty());
    EXPECT_EQ(responses.back().id, stream);
    responses.back().body.append(data);
    if (end_stream) ++responses.back().end_events;
  }
  void OnResponseTrailers(StreamId stream, HeaderList&& trailers) override {
    ASSERT_FALSE(responses.empty());
    EXPECT_EQ(responses.back().id, stream);
    responses.back().trailers = std::move(trailers);
    responses.back().has_trailers = true;
    ++responses.back().end_events;
  }
  void OnStreamReset(StreamId stream, ResetReason reason) override {
    resets.emplace_back(stream, reason);
  }
  std::vector<ClientResponse> responses;
  std::vector<std::pair<StreamId, ResetReason>> resets;
};

}  // namespace cairn::sidecar::http1_test
