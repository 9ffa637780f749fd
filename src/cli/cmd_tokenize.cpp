// `flatline tokenize MODEL TEXT`: the token ids as one JSON array.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace flatline::cli {

void register_tokenize(CLI::App& app) {
  struct Options {
    std::string model, text;
    bool parse_special = false;
    bool no_bos = false;
    bool pieces = false;
  };
  auto opts = std::make_shared<Options>();
  auto* sub = app.add_subcommand("tokenize", "Print the token ids of TEXT as a JSON array (works on vocab-only GGUFs)");
  sub->add_option("model", opts->model, "GGUF file with a tokenizer")->required();
  sub->add_option("text", opts->text, "Text to tokenize")->required();
  sub->add_flag("--parse-special", opts->parse_special, "Map special-token strings like <|im_start|> to their ids");
  sub->add_flag("--no-bos", opts->no_bos, "Never add BOS, even if the model asks for it");
  sub->add_flag("--pieces", opts->pieces, "Print [id, \"piece\"] pairs instead of ids");
  sub->callback([opts] {
    gguf::File file = gguf::File::open(opts->model);
    auto tok = Tokenizer::from_gguf(file);
    std::vector<int32_t> ids;
    if (tok->add_bos() && tok->bos_id() >= 0 && !opts->no_bos) ids.push_back(tok->bos_id());
    auto body = tok->encode(opts->text, opts->parse_special);
    ids.insert(ids.end(), body.begin(), body.end());
    std::string out = "[";
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) out += ", ";
      if (opts->pieces) {
        nlohmann::json piece = tok->token_bytes(ids[i], true);
        std::string s;
        try {
          s = piece.dump();
        } catch (...) {
          s = "\"<invalid utf-8>\"";
        }
        out += "[" + std::to_string(ids[i]) + ", " + s + "]";
      } else {
        out += std::to_string(ids[i]);
      }
    }
    std::printf("%s]\n", out.c_str());
  });
}

}  // namespace flatline::cli
