// The GGUF reader on arbitrary bytes: it must either refuse the file with
// flatline::Error or return a File whose every tensor lies inside the buffer.
#include <span>

#include "fuzz_target.h"
#include "gguf/gguf.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto file = flatline::gguf::File::parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
    for (const auto& [key, value] : file.metadata()) (void)file.find(key);
    for (const auto& tensor : file.tensors()) {
      const uint8_t* begin = file.bytes().data();
      const uint8_t* end = begin + file.file_size();
      FUZZ_CHECK(tensor.data >= begin && tensor.data <= end, "tensor starts inside the file");
      FUZZ_CHECK(tensor.n_bytes <= static_cast<uint64_t>(end - tensor.data), "tensor ends inside the file");
      (void)tensor.shape_string();
    }
    (void)file.get_string("general.architecture", "");
  } catch (const flatline::Error&) {
  }
  return 0;
}
