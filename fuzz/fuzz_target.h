// One fuzz target = one LLVMFuzzerTestOneInput. The same source links either
// with libFuzzer (clang, -DFLATLINE_LIBFUZZER=ON) to search for new inputs, or
// with replay_main.cpp (any compiler) to run a corpus as a regression test.
// A target may throw flatline::Error (that is the clean refusal of bad input);
// anything else -- a crash, a sanitizer report, another exception type, a
// broken invariant checked with FUZZ_CHECK -- is a finding.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstddef>

#define FUZZ_CHECK(condition, what)                                              \
  do {                                                                           \
    if (!(condition)) {                                                          \
      std::fprintf(stderr, "fuzz invariant broken: %s (%s:%d)\n", what, __FILE__, \
                   __LINE__);                                                    \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
