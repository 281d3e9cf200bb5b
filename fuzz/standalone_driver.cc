// A driver for libFuzzer-style targets when the compiler has no libFuzzer
// (g++): it runs the target on every input of the corpus given (files, or
// directories of files such as fuzz/corpus/<target>), then on a bounded number
// of pseudo-random mutations of them. CI runs it as a smoke test; the real,
// coverage-guided fuzzing runs with clang via scripts/fuzz, whose finds are
// committed to fuzz/corpus/ and so replayed here first.
//
// The mutations differ from run to run: the random seed is taken from
// --seed, else from the environment variable CAIRN_FUZZ_SEED, else from the
// clock. It is printed first, so a failure is replayed exactly with
//   CAIRN_FUZZ_SEED=<seed> ctest -R <target>_smoke      (or the same command)
// and a failing input is also printed in hex, with its iteration number.
//
//   driver [--iterations N] [--max-seconds S] [--seed N] [FILE|DIR...]
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// The input being run and where it came from, printed if the target traps or
// crashes, so that a CI failure can be reproduced from its log. Written
// before the signal handlers are set, or only from the main thread.
const std::string* g_current = nullptr;
char g_origin[128] = "";

void WriteAll(const char* text) { (void)!write(2, text, std::strlen(text)); }

void DumpCurrentInput(int signal) {
  static const char kHex[] = "0123456789abcdef";
  WriteAll("\nfuzz smoke: target failed on ");
  WriteAll(g_origin);
  WriteAll(", input (hex): ");
  if (g_current != nullptr) {
    for (unsigned char c : *g_current) {
      char pair[2] = {kHex[c >> 4], kHex[c & 15]};
      (void)!write(2, pair, 2);
    }
  }
  WriteAll("\n");
  ::signal(signal, SIG_DFL);
  ::raise(signal);
}

void Run(const std::string& input) {
  g_current = &input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  g_current = nullptr;
}

std::string Mutate(std::string input, std::mt19937_64& rng, const std::vector<std::string>& seeds) {
  int edits = 1 + static_cast<int>(rng() % 8);
  for (int i = 0; i < edits; ++i) {
    switch (rng() % 7) {
      case 0:  // flip a bit
        if (!input.empty()) input[rng() % input.size()] ^= static_cast<char>(1 << (rng() % 8));
        break;
      case 1:  // random byte
        if (!input.empty()) input[rng() % input.size()] = static_cast<char>(rng());
        break;
      case 2:  // insert bytes
        input.insert(input.empty() ? 0 : rng() % input.size(),
                     std::string(1 + rng() % 4, static_cast<char>(rng())));
        break;
      case 3:  // truncate
        if (!input.empty()) input.resize(rng() % input.size());
        break;
      case 4:  // splice another seed
        if (!seeds.empty()) {
          const std::string& other = seeds[rng() % seeds.size()];
          input += other.substr(rng() % (other.size() + 1));
        }
        break;
      case 5:  // duplicate a slice
        if (!input.empty()) {
          size_t at = rng() % input.size();
          input.insert(at, input.substr(at, 1 + rng() % 16));
        }
        break;
      case 6:  // an interesting value (lengths, counts) over one to four bytes
        if (!input.empty()) {
          static const uint32_t kValues[] = {0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0xffffffff};
          uint32_t value = kValues[rng() % (sizeof(kValues) / sizeof(kValues[0]))];
          size_t at = rng() % input.size();
          size_t width = std::min<size_t>(1 + rng() % 4, input.size() - at);
          for (size_t b = 0; b < width; ++b) input[at + b] = static_cast<char>(value >> (8 * b));
        }
        break;
    }
  }
  if (input.size() > 4096) input.resize(4096);
  return input;
}

bool ReadFile(const std::filesystem::path& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

// Adds `arg` (a file, or every regular file of a directory, in name order so
// that a run is repeatable) to `seeds`. False if it cannot be read.
bool AddCorpus(const char* arg, std::vector<std::string>& seeds) {
  std::error_code error;
  std::filesystem::path path(arg);
  if (!std::filesystem::is_directory(path, error)) {
    std::string content;
    if (!ReadFile(path, content)) return false;
    seeds.push_back(std::move(content));
    return true;
  }
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(path, error)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  if (error) return false;
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    std::string content;
    if (!ReadFile(file, content)) return false;
    seeds.push_back(std::move(content));
  }
  return true;
}

bool ParseNumber(const char* text, uint64_t& out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0') return false;
  out = value;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t iterations = 20000;
  uint64_t max_seconds = 0;  // 0: no time bound beyond the iteration count
  uint64_t seed = 0;
  bool have_seed = false;
  std::vector<std::string> seeds;
  for (int i = 1; i < argc; ++i) {
    const char* flag = argv[i];
    uint64_t* target = std::strcmp(flag, "--iterations") == 0    ? &iterations
                       : std::strcmp(flag, "--max-seconds") == 0 ? &max_seconds
                       : std::strcmp(flag, "--seed") == 0        ? &seed
                                                                 : nullptr;
    if (target != nullptr) {
      if (i + 1 >= argc || !ParseNumber(argv[++i], *target)) {
        std::cerr << "fuzz smoke: " << flag << " needs a non-negative number\n";
        return 2;
      }
      have_seed = have_seed || target == &seed;
      continue;
    }
    if (!AddCorpus(flag, seeds)) {
      std::cerr << "fuzz smoke: cannot read corpus " << flag << "\n";
      return 2;
    }
  }
  if (!have_seed) {
    const char* env = std::getenv("CAIRN_FUZZ_SEED");
    if (env != nullptr && *env != '\0') {
      if (!ParseNumber(env, seed)) {
        std::cerr << "fuzz smoke: CAIRN_FUZZ_SEED must be a non-negative number\n";
        return 2;
      }
    } else {
      seed = std::random_device{}() ^
             static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
      seed %= 1000000000000ULL;  // short enough to copy from a log
    }
  }
  std::cout << "fuzz smoke: seed " << seed << " (replay: CAIRN_FUZZ_SEED=" << seed << " " << argv[0]
            << " ...)" << std::endl;
  if (seeds.empty()) seeds.push_back("");
  for (int sig : {SIGILL, SIGSEGV, SIGABRT, SIGFPE, SIGBUS}) ::signal(sig, DumpCurrentInput);

  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < seeds.size(); ++i) {
    std::snprintf(g_origin, sizeof(g_origin), "corpus input %zu (seed %llu)", i,
                  static_cast<unsigned long long>(seed));
    Run(seeds[i]);
  }
  std::mt19937_64 rng(seed);
  uint64_t done = 0;
  for (; done < iterations; ++done) {
    if (max_seconds != 0 && done % 64 == 0 &&
        std::chrono::steady_clock::now() - start >= std::chrono::seconds(max_seconds)) {
      break;
    }
    std::string input = Mutate(seeds[rng() % seeds.size()], rng, seeds);
    std::snprintf(g_origin, sizeof(g_origin), "mutation %llu of seed %llu",
                  static_cast<unsigned long long>(done), static_cast<unsigned long long>(seed));
    Run(input);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "fuzz smoke: seed " << seed << ", " << seeds.size() << " corpus inputs, " << done
            << " mutated inputs in " << seconds << " s"
            << (done < iterations ? " (time bound reached)" : "") << ", no failure\n";
  return 0;
}
