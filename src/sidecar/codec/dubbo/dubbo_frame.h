// Dubbo 2 framing (the "dubbo" protocol of Apache Dubbo's exchange layer): a
// frame decoder for a byte stream, the few hessian2 strings a proxy reads to
// route a request, encoders for the frames the sidecar writes itself, and the
// request id rewrite a multiplexing proxy needs. No I/O; arguments,
// attachments and results stay opaque.
//
// Wire format (16-byte header, integers big-endian):
//
//   0-1   magic 0xda 0xbb
//   2     flag: 0x80 request (else response), 0x40 two-way (requests),
//         0x20 event (heartbeat), low 5 bits the serialization id (2 hessian2)
//   3     status (responses; 20 is OK)
//   4-11  request id (a Java long)
//   12-15 body length (a Java int; negative is malformed)
//
// A hessian2 request body is five strings (dubbo version, service path,
// service version, method, parameter types), the arguments and an
// attachments map. A heartbeat's body is the serialized null ('N' in
// hessian2); a non-OK response's body is the error message as a string.
//
// Thread-safety: DubboDecoder is not thread-safe (one per connection, on its
// worker thread). The free functions are thread-compatible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sidecar/codec/frame_assembler.h"

namespace cairn::sidecar::dubbo {

inline constexpr size_t kHeaderBytes = 16;
inline constexpr uint8_t kMagic0 = 0xda;
inline constexpr uint8_t kMagic1 = 0xbb;

// Bits of the flag byte.
inline constexpr uint8_t kFlagRequest = 0x80;
inline constexpr uint8_t kFlagTwoWay = 0x40;
inline constexpr uint8_t kFlagEvent = 0x20;
inline constexpr uint8_t kSerializationMask = 0x1f;

// The only serialization whose bodies we read; others are carried opaquely.
inline constexpr uint8_t kSerializationHessian2 = 2;

// Response status byte. Values outside this list are carried through as is.
enum class DubboStatus : uint8_t {
  kOk = 20,
  kClientTimeout = 30,
  kServerTimeout = 31,
  kChannelInactive = 35,
  kBadRequest = 40,
  kBadResponse = 50,
  kServiceNotFound = 60,
  kServiceError = 70,
  kServerError = 80,
  kClientError = 90,
  kServerThreadpoolExhausted = 100,
};

// "OK", "SERVICE_NOT_FOUND", ... (Dubbo's constant names); "UNRECOGNIZED"
// for any other byte.
std::string_view DubboStatusName(uint8_t status);

// The hessian2 body of an event: null.
inline constexpr char kHessian2Null = 'N';

// Decoder limits. Exceeding one is RESOURCE_EXHAUSTED.
struct DubboLimits {
  // The whole frame (16 + body length), checked as soon as the header is in,
  // before the body is buffered.
  size_t max_frame_bytes = 16 * 1024 * 1024;
};

// The head of a hessian2 request body: its first four strings. Views point
// into the body.
struct DubboRequestHead {
  std::string_view dubbo_version;
  std::string_view service_path;
  std::string_view service_version;
  std::string_view method;
};

// A decoded frame. Every view points into `raw` (the caller's input or the
// decoder's buffer): valid until the next DubboDecoder::Next() call and, when
// it points into the caller's input, while that input is alive.
struct DubboFrameView {
  uint8_t flag = 0;
  uint8_t status = 0;  // as sent; meaningful for responses only
  uint64_t request_id = 0;
  std::string_view body;
  std::string_view raw;  // header + body
  // Non-event hessian2 requests whose first four body strings are each one
  // chunk (or null): true, and `head` holds them. Otherwise false and `head`
  // is empty: the request is forwarded all the same, it just names no
  // service (the body is the provider's business, not a framing error).
  bool has_head = false;
  DubboRequestHead head;

  bool is_request() const { return (flag & kFlagRequest) != 0; }
  bool is_response() const { return !is_request(); }
  bool is_two_way() const { return (flag & kFlagTwoWay) != 0; }
  bool is_event() const { return (flag & kFlagEvent) != 0; }
  uint8_t serialization() const { return flag & kSerializationMask; }
};

// Reads the hessian2 string at `in[pos]` as a view into `in`, when it is
// null ('N', read as "") or one final chunk (short, medium or 'S' form).
// Walks the UTF-8 bytes, counting UTF-16 code units as the length does (a
// 4-byte sequence is two; Java's own encoder writes a surrogate pair as two
// 3-byte sequences, one each). On success advances `pos` past the string.
// False, `pos` unchanged, when the bytes there are anything else: another
// type, a chunked ('R') string, invalid UTF-8, or a string that would end
// past `in`. Never reads outside `in`.
bool ReadHessian2String(std::string_view in, size_t& pos, std::string_view& out);

// Reads the first four strings of a hessian2 request body (see
// ReadHessian2String). False, `head` cleared, when any of them cannot be read.
bool ParseRequestHead(std::string_view body, DubboRequestHead& head);

// Incremental frame decoder (pull model):
//
//   std::string_view input = bytes_read;
//   for (;;) {
//     absl::StatusOr<const DubboFrameView*> next = decoder.Next(input);
//     if (!next.ok()) { close the connection; break; }
//     if (*next == nullptr) break;       // all input consumed, need more
//     forward((*next)->raw); ...
//   }
//
// A frame that lies whole in `input` is returned without copying (views into
// `input`); only a frame split across calls is assembled in the decoder's
// buffer, reserved once to the declared size when the header is in.
//
// Errors: INVALID_ARGUMENT for a bad magic (checked byte by byte as it
// arrives) or a negative body length, RESOURCE_EXHAUSTED for a frame over
// max_frame_bytes; the message names the field. After an error the decoder is
// poisoned: every later call returns the same status without reading input.
class DubboDecoder {
 public:
  explicit DubboDecoder(const DubboLimits& limits = DubboLimits{});

  // Consumes bytes from the front of `input` until one frame is complete
  // (returns it; the rest of `input` is left for the next call) or `input` is
  // empty (returns nullptr).
  absl::StatusOr<const DubboFrameView*> Next(std::string_view& input);

  // Bytes of an incomplete frame held by the decoder.
  size_t buffered_bytes() const { return assembler_.buffered_bytes(); }
  const absl::Status& status() const { return status_; }

 private:
  absl::Status Fail(absl::Status status);

  DubboLimits limits_;
  absl::Status status_;
  FrameAssembler assembler_;  // frame_ may point into its buffer until the next call
  DubboFrameView frame_;
};

// Rewrites the request id (bytes 4-11) of one complete frame in place. All
// 64 bits are written as given (an id above 2^63-1 is a negative Java long).
// INVALID_ARGUMENT, frame unchanged, when `frame` does not start with the
// magic or is not exactly one frame (16 + its body length).
absl::Status RewriteRequestId(std::span<char> frame, uint64_t request_id);
absl::Status RewriteRequestId(std::string& frame, uint64_t request_id);

// Appends `ascii` as a hessian2 string in its shortest form (short up to 31
// bytes, medium up to 1023, then 'S'; 'R' chunks of 65535 before the final
// one above that). REQUIRES: every byte < 0x80 (then the UTF-16 length is the
// byte length).
void AppendHessian2AsciiString(std::string_view ascii, std::string& out);

// Appends one frame: the header (magic, `flag`, `status`, `request_id`,
// body.size()) and `body`. REQUIRES: body.size() <= 2^31-1.
void EncodeFrame(uint8_t flag, uint8_t status, uint64_t request_id, std::string_view body,
                 std::string& out);

// A two-way heartbeat request: request, two-way and event bits,
// `serialization`, body 'N'.
void EncodeHeartbeat(uint64_t request_id, std::string& out,
                     uint8_t serialization = kSerializationHessian2);

// The answer to a heartbeat: response with the event bit, status OK, body
// `null_body` (the serialization's null; 'N' for hessian2).
void EncodeHeartbeatAck(uint64_t request_id, uint8_t serialization, std::string& out,
                        std::string_view null_body = std::string_view(&kHessian2Null, 1));

// The longest error message EncodeErrorResponse sends.
inline constexpr size_t kMaxErrorMessageBytes = 4096;

// An error response: response (no event bit), `serialization`, `status`,
// body = `message` as a hessian2 string, cut to kMaxErrorMessageBytes and with
// every byte outside printable ASCII (0x20-0x7e) replaced by '?' (it may quote
// client input; and ASCII keeps the UTF-16 length equal to the byte length).
void EncodeErrorResponse(uint8_t serialization, uint64_t request_id, uint8_t status,
                         std::string_view message, std::string& out);

}  // namespace cairn::sidecar::dubbo
