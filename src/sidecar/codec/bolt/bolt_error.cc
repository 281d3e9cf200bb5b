#include "sidecar/codec/bolt/bolt_error.h"

#include <algorithm>

namespace cairn::sidecar::bolt {
namespace {

constexpr size_t kMaxMessageBytes = 4096;

// Hessian 2 ints: one byte for -16..47, two for -2048..2047 (all we need:
// small counts and lengths).
void PutInt(std::string& out, int value) {
  if (value >= -16 && value <= 47) {
    out.push_back(static_cast<char>(0x90 + value));
  } else {
    out.push_back(static_cast<char>(0xc8 + (value >> 8)));
    out.push_back(static_cast<char>(value & 0xff));
  }
}

// A string of ASCII characters (so its length in chars is its length in
// bytes): one chunk, compact up to 31 chars, else 'S' u16 length.
void PutAsciiString(std::string& out, std::string_view text) {
  if (text.size() <= 31) {
    out.push_back(static_cast<char>(text.size()));
  } else {
    out.push_back('S');
    out.push_back(static_cast<char>(text.size() >> 8));
    out.push_back(static_cast<char>(text.size() & 0xff));
  }
  out.append(text);
}

}  // namespace

std::string HessianRpcServerException(std::string_view message) {
  std::string text(message.substr(0, kMaxMessageBytes));
  std::replace_if(
      text.begin(), text.end(),
      [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e;
      },
      '?');
  std::string out;
  out.reserve(128 + text.size());
  // Class definition: 'O', the type's length and chars, the field names.
  out.push_back('O');
  PutInt(out, static_cast<int>(kRpcServerExceptionClass.size()));
  out.append(kRpcServerExceptionClass);
  PutInt(out, 3);
  PutAsciiString(out, "detailMessage");
  PutAsciiString(out, "cause");
  PutAsciiString(out, "stackTrace");
  // The instance of definition 0, its fields in that order.
  out.push_back('o');
  PutInt(out, 0);
  PutAsciiString(out, text);
  out.push_back('N');  // cause: null
  // stackTrace: an empty StackTraceElement[] ('V' type, 'n' length, 'z').
  constexpr std::string_view kTraceType = "[java.lang.StackTraceElement";
  out.push_back('V');
  out.push_back('t');
  out.push_back(0);
  out.push_back(static_cast<char>(kTraceType.size()));
  out.append(kTraceType);
  out.push_back('n');
  out.push_back(0);
  out.push_back('z');
  return out;
}

void EncodeSidecarError(const BoltFraming& framing, uint32_t request_id, BoltStatus status,
                        std::string_view message, std::string& out) {
  if (framing.codec != kCodecHessian2) {
    EncodeErrorResponse(framing, request_id, status, message, out);
    return;
  }
  const std::string content = HessianRpcServerException(message);
  BoltResponseParams params;
  params.framing = framing;
  params.request_id = request_id;
  params.status = status;
  params.class_name = kRpcServerExceptionClass;
  params.content = content;
  // Cannot fail: the class name and <= 4.2 KiB of content fit their fields.
  (void)EncodeResponse(params, out);
}

}  // namespace cairn::sidecar::bolt
