#include "sidecar/discovery/local_json.h"

#include <optional>

#include "absl/strings/str_cat.h"

namespace cairn::sidecar::discovery {
namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  absl::StatusOr<JsonObject> Document() {
    JsonObject out;
    SkipSpace();
    if (!Eat('{')) return Error("expected a JSON object");
    SkipSpace();
    if (Eat('}')) return Finish(std::move(out));
    while (true) {
      SkipSpace();
      auto key = String();
      if (!key) return Error("expected a member name (a string)");
      if (out.scalars.count(*key) > 0 || out.objects.count(*key) > 0) {
        return Error(absl::StrCat("member '", *key, "' appears twice"));
      }
      SkipSpace();
      if (!Eat(':')) return Error("expected ':'");
      SkipSpace();
      if (Peek() == '{') {
        ++pos_;
        auto members = FlatObject();
        if (!members.ok()) return members.status();
        out.objects[*key] = std::move(*members);
      } else {
        auto value = Scalar();
        if (!value.ok()) return value.status();
        if (*value) out.scalars[*key] = std::move(**value);
      }
      SkipSpace();
      if (Eat(',')) continue;
      if (Eat('}')) return Finish(std::move(out));
      return Error("expected ',' or '}'");
    }
  }

 private:
  absl::StatusOr<JsonObject> Finish(JsonObject out) {
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected bytes after the object");
    return out;
  }

  // After '{': members that must be scalars.
  absl::StatusOr<std::map<std::string, std::string>> FlatObject() {
    std::map<std::string, std::string> out;
    SkipSpace();
    if (Eat('}')) return out;
    while (true) {
      SkipSpace();
      auto key = String();
      if (!key) return Error("expected a member name (a string)");
      if (out.count(*key) > 0) return Error(absl::StrCat("member '", *key, "' appears twice"));
      SkipSpace();
      if (!Eat(':')) return Error("expected ':'");
      SkipSpace();
      auto value = Scalar();
      if (!value.ok()) return value.status();
      if (*value) out[*key] = std::move(**value);
      SkipSpace();
      if (Eat(',')) continue;
      if (Eat('}')) return out;
      return Error("expected ',' or '}'");
    }
  }

  // A string, number, true or false; nullopt for null.
  absl::StatusOr<std::optional<std::string>> Scalar() {
    char c = Peek();
    if (c == '"') {
      auto s = String();
      if (!s) return Error("bad string");
      return std::optional<std::string>(std::move(*s));
    }
    for (const char* word : {"true", "false", "null"}) {
      std::string_view w(word);
      if (text_.substr(pos_, w.size()) == w) {
        pos_ += w.size();
        if (w == "null") return std::optional<std::string>();
        return std::optional<std::string>(std::string(w));
      }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      std::string number = Number();
      if (number.find_first_of("0123456789") == std::string::npos) return Error("bad number");
      return std::optional<std::string>(std::move(number));
    }
    if (c == '{' || c == '[') return Error("nested objects and arrays are not accepted here");
    return Error("expected a value");
  }

  std::string Number() {
    size_t start = pos_;
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
        ++pos_;
      } else {
        break;
      }
    }
    return std::string(text_.substr(start, pos_ - start));
  }

  std::optional<std::string> String() {
    if (!Eat('"')) return std::nullopt;
    std::string out;
    while (pos_ < text_.size()) {
      char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) return std::nullopt;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) return std::nullopt;
      char e = text_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          auto cp = Hex4();
          if (!cp) return std::nullopt;
          uint32_t code = *cp;
          if (code >= 0xd800 && code < 0xdc00) {  // a high surrogate: a low one must follow
            if (!Eat('\\') || !Eat('u')) return std::nullopt;
            auto low = Hex4();
            if (!low || *low < 0xdc00 || *low >= 0xe000) return std::nullopt;
            code = 0x10000 + ((code - 0xd800) << 10) + (*low - 0xdc00);
          } else if (code >= 0xdc00 && code < 0xe000) {
            return std::nullopt;
          }
          AppendUtf8(out, code);
          break;
        }
        default:
          return std::nullopt;
      }
    }
    return std::nullopt;
  }

  std::optional<uint32_t> Hex4() {
    if (pos_ + 4 > text_.size()) return std::nullopt;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<uint32_t>(c - 'A' + 10);
      else
        return std::nullopt;
    }
    return v;
  }

  static void AppendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  char Peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool Eat(char c) {
    if (Peek() != c || pos_ >= text_.size()) return false;
    ++pos_;
    return true;
  }
  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("bad JSON at byte ", pos_, ": ", std::string(what)));
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<JsonObject> ParseJsonObject(std::string_view text) {
  return Parser(text).Document();
}

}  // namespace cairn::sidecar::discovery
