// A driver for libFuzzer-style targets when the compiler has no libFuzzer
// (g++): it runs the target on every file given as an argument (a seed
// corpus), then on a bounded number of pseudo-random mutations of those seeds
// (fixed seed: the run is repeatable). CI uses it as a smoke test; the real,
// coverage-guided fuzzing runs with clang via scripts/fuzz.
//
//   driver [--iterations N] [FILE...]
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// The input being run, dumped in hex if the target traps or crashes, so that
// a CI failure can be reproduced from its log.
const std::string* g_current = nullptr;

void DumpCurrentInput(int signal) {
  static const char kHex[] = "0123456789abcdef";
  const char header[] = "\nfuzz smoke: target failed on input (hex): ";
  (void)!write(2, header, sizeof(header) - 1);
  if (g_current != nullptr) {
    for (unsigned char c : *g_current) {
      char pair[2] = {kHex[c >> 4], kHex[c & 15]};
      (void)!write(2, pair, 2);
    }
  }
  (void)!write(2, "\n", 1);
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
    switch (rng() % 6) {
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
    }
  }
  if (input.size() > 4096) input.resize(4096);
  return input;
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = 20000;
  std::vector<std::string> seeds;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
      iterations = std::atol(argv[++i]);
      continue;
    }
    std::ifstream in(argv[i], std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    seeds.push_back(ss.str());
  }
  if (seeds.empty()) seeds.push_back("");
  for (int sig : {SIGILL, SIGSEGV, SIGABRT, SIGFPE, SIGBUS}) ::signal(sig, DumpCurrentInput);
  for (const std::string& seed : seeds) Run(seed);
  std::mt19937_64 rng(20261126);
  for (long i = 0; i < iterations; ++i) {
    std::string input = Mutate(seeds[rng() % seeds.size()], rng, seeds);
    Run(input);
  }
  std::cout << "fuzz smoke: " << seeds.size() << " seeds, " << iterations
            << " mutated inputs, no failure\n";
  return 0;
}
