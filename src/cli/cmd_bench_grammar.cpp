// `flatline bench grammar VOCAB.gguf...`: the cost of the structured-output
// token mask per generated token, without a model: random logits stand in
// for the model's, the mask picks among the allowed tokens, until the
// grammar's text is complete. Reports the trie build, the first (cold) mask
// and the mean mask time per token with its cache-hit share.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "gguf/gguf.h"
#include "runtime/grammar_constraint.h"
#include "runtime/json_schema.h"
#include "util/error.h"

namespace flatline::cli {

namespace {

// The schema of the structured-output tests (tests/structured_output_test.cpp).
const char* kDefaultSchema = R"({"type":"object","properties":{
  "name":{"type":"string","minLength":1,"maxLength":16},
  "age":{"type":"integer","minimum":0,"maximum":120},
  "pets":{"type":"array","items":{"enum":["cat","dog","bee"]},"minItems":1,"maxItems":3},
  "home":{"type":"object","properties":{"city":{"type":"string","maxLength":10},"zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["city","zip"]},
  "nick":{"anyOf":[{"type":"string","maxLength":8},{"type":"null"}]},
  "kind":{"const":"person"},
  "born":{"type":"string","format":"date"}},
  "required":["name","age","pets","home","nick","kind","born"],"additionalProperties":false})";

struct BenchGrammarOptions {
  std::vector<std::string> vocabs;
  std::string schema_file;
  std::string grammar_file;
  int runs = 5;
  int64_t budget = 200;
};

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("bench grammar: cannot read " + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void bench_one(const std::string& path, const std::shared_ptr<const Grammar>& grammar, const BenchGrammarOptions& o) {
  auto tok = Tokenizer::from_gguf(gguf::File::open(path));
  auto t0 = std::chrono::steady_clock::now();
  auto trie = std::make_shared<const VocabTrie>(*tok);
  const double trie_ms = ms_since(t0);
  std::mt19937 rng(42);
  double first_ms = 0, total_ms = 0;
  uint64_t tokens = 0, masks = 0, hits = 0, nodes = 0;
  int complete = 0;
  for (int run = 0; run < o.runs; ++run) {
    GrammarConstraintOptions go;
    go.budget = o.budget;
    GrammarConstraint c(grammar, *tok, trie, go);
    std::vector<float> logits(static_cast<size_t>(tok->n_vocab()));
    for (int64_t step = 0; step < o.budget; ++step) {
      for (float& l : logits) l = std::uniform_real_distribution<float>(-4, 4)(rng);
      const uint64_t before = c.stats().mask_ns;
      if (!c.apply(logits)) break;
      if (run == 0 && step == 0) first_ms = static_cast<double>(c.stats().mask_ns - before) / 1e6;
      int32_t best = 0;
      for (size_t i = 1; i < logits.size(); ++i)
        if (logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
      c.accept(best);
      ++tokens;
      if (tok->is_end_of_generation(best)) break;
    }
    complete += c.complete() ? 1 : 0;
    total_ms += static_cast<double>(c.stats().mask_ns) / 1e6;
    masks += c.stats().masks;
    hits += c.stats().cache_hits;
    nodes += c.stats().nodes_visited;
  }
  std::printf("%s\n  vocabulary %d tokens, trie %zu nodes built in %.1f ms\n", path.c_str(), tok->n_vocab(), trie->nodes(),
              trie_ms);
  std::printf("  %d runs, %llu tokens, %d complete texts; first mask %.2f ms; mean %.3f ms per token "
              "(%.0f%% from the per-state cache, %.0f trie nodes walked per token)\n",
              o.runs, static_cast<unsigned long long>(tokens), complete, first_ms, tokens ? total_ms / tokens : 0.0,
              masks ? 100.0 * hits / masks : 0.0, tokens ? static_cast<double>(nodes) / tokens : 0.0);
}

}  // namespace

void register_bench_grammar(CLI::App& bench) {
  auto o = std::make_shared<BenchGrammarOptions>();
  auto* sub = bench.add_subcommand("grammar", "Structured-output mask cost per token (random logits, no model needed)");
  sub->add_option("vocabs", o->vocabs, "GGUF files whose tokenizer to use (a model or a vocab-only GGUF)")->required();
  sub->add_option("--schema", o->schema_file, "JSON Schema file (default: the structured-output test's person schema)");
  sub->add_option("--grammar", o->grammar_file, "GBNF file instead of a schema");
  bounded(sub->add_option("--runs", o->runs, "Generations per vocabulary")->capture_default_str(), 1, 10000);
  bounded(sub->add_option("--budget", o->budget, "Token budget of each generation")->capture_default_str(), 1, 1 << 20);
  sub->callback([o] {
    std::shared_ptr<const Grammar> grammar;
    if (!o->grammar_file.empty()) {
      grammar = Grammar::parse(read_file(o->grammar_file));
    } else {
      const std::string text = o->schema_file.empty() ? kDefaultSchema : read_file(o->schema_file);
      nlohmann::ordered_json schema;
      try {
        schema = nlohmann::ordered_json::parse(text);
      } catch (const std::exception& e) {
        throw Error("bench grammar: the schema is not JSON: " + std::string(e.what()));
      }
      grammar = Grammar::parse(json_schema_to_gbnf(schema));
    }
    for (const auto& v : o->vocabs) bench_one(v, grammar, *o);
  });
}

}  // namespace flatline::cli
