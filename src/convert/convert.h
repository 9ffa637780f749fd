// `flatline convert`: a Hugging Face model directory (config.json,
// safetensors weights, tokenizer files) -> one GGUF file laid out as
// llama.cpp's convert_hf_to_gguf.py writes it, optionally quantized with
// llama-quantize's rules. Architectures: LlamaForCausalLM ("llama"),
// OuroForCausalLM ("ouro", docs/GGUF-OURO.md), RWKV7ForCausalLM from fla-hub
// ("rwkv7").
//
// Everything is checked before the output file is created (config, every
// tensor's shape, dtype, the tokenizer); the file is then written to a
// temporary name, one tensor at a time, in pieces of a few MiB straight from
// the memory-mapped checkpoint (source pages are released once read), and
// renamed at the end. On any error the temporary file is
// removed and nothing is left under the output name.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace flatline::convert {

struct ConvertProgress {
  size_t tensor = 0;   // 0-based index of the tensor being written
  size_t tensors = 0;  // how many there are
  std::string name;    // its GGUF name
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  bool starts_tensor = false;  // the first report for this tensor (later ones follow its pieces)
};

struct ConvertOptions {
  std::string type = "auto";  // see output_type_names()
  std::string name;           // general.name ("" = the directory's name)
  int threads = 0;            // rows of a tensor are converted in parallel; 0 = physical cores
  std::function<void(const ConvertProgress&)> progress;  // before each tensor, after each piece, once at the end
  const std::atomic<bool>* cancel = nullptr;             // set to stop; the conversion then throws Error
};

struct ConvertSummary {
  std::string architecture;  // GGUF general.architecture
  std::string hf_architecture;
  size_t tensors = 0;
  uint64_t input_bytes = 0;
  uint64_t output_bytes = 0;  // tensor data written
  std::map<std::string, int> types;  // ggml type name -> tensor count
  std::vector<std::string> notes;    // decisions worth logging (pre-tokenizer, ...)
};

// Throws Error; on error no file named `out_path` is created.
ConvertSummary convert_hf_model(const std::string& hf_dir, const std::string& out_path, const ConvertOptions& options);

// The Hugging Face architectures convert_hf_model accepts.
std::vector<std::string> supported_hf_architectures();

// gguf-py's size label ("260K", "1.4B") for a parameter count.
std::string size_label(int64_t parameters);

}  // namespace flatline::convert
