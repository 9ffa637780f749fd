// JSON schemas from requests (format / response_format): any JSON value is
// either refused with flatline::Error or becomes GBNF that the grammar parser
// accepts -- a schema must never produce a grammar flatline cannot load.
#include <nlohmann/json.hpp>

#include "fuzz_target.h"
#include "runtime/grammar.h"
#include "runtime/json_schema.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto schema = nlohmann::ordered_json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) return 0;
  std::string gbnf;
  try {
    gbnf = flatline::json_schema_to_gbnf(schema);
  } catch (const flatline::Error&) {
    return 0;
  }
  try {
    flatline::Grammar::parse(gbnf);
  } catch (const flatline::Error& e) {
    std::fprintf(stderr, "schema produced a grammar that does not parse: %s\n%s\n", e.what(), gbnf.c_str());
    FUZZ_CHECK(false, "the grammar of an accepted schema parses");
  }
  return 0;
}
