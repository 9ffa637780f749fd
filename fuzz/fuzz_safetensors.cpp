// The safetensors reader on arbitrary bytes: refuse with flatline::Error, or
// every tensor's byte range lies inside the buffer and matches its shape.
#include <span>

#include "fuzz_target.h"
#include "safetensors/safetensors.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flatline::safetensors;
  try {
    auto file = File::parse(std::span<const uint8_t>(data, size), "fuzz.safetensors");
    for (const auto& tensor : file.tensors()) {
      FUZZ_CHECK(tensor.begin <= tensor.end, "byte range is ordered");
      FUZZ_CHECK(tensor.data >= data && tensor.data + tensor.n_bytes() <= data + size, "tensor inside the buffer");
      uint64_t elements = 1;
      for (int64_t d : tensor.shape) elements *= static_cast<uint64_t>(d);
      FUZZ_CHECK(elements * element_size(tensor.dtype) == tensor.n_bytes(), "bytes match the shape");
      FUZZ_CHECK(file.find(tensor.name) != nullptr, "every tensor can be found by name");
    }
  } catch (const flatline::Error&) {
  }
  return 0;
}
