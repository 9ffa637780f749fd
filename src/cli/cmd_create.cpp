// `flatline create NAME [-f Modelfile] [--models DIR]`: Ollama's `create`,
// written straight into the models directory (a running server sees the new
// name at its next request). FROM paths are relative to the Modelfile's
// folder, as Ollama's CLI reads them, and must name a file in the models
// directory (server/model_create.h).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/common.h"
#include "server/model_create.h"
#include "util/error.h"

namespace flatline::cli {

namespace {

std::string read_modelfile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error(path + ": no such Modelfile");
  if (std::filesystem::file_size(path, ec) > kMaxModelfileBytes)
    throw Error(path + ": larger than " + std::to_string(kMaxModelfileBytes) + " bytes; not a Modelfile");
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void create(const std::string& name, const std::string& modelfile_path, const std::string& models_dir) {
  const Modelfile mf = parse_modelfile(read_modelfile(modelfile_path));
  ModelCatalog catalog(models_dir);
  const std::string base_dir = std::filesystem::absolute(modelfile_path).parent_path().string();
  server::CreatePlan plan = server::plan_create_from_modelfile(catalog, name, mf, base_dir);
  for (const std::string& step : plan.steps) std::fprintf(stderr, "%s\n", step.c_str());
  server::carry_out(catalog, plan);
  std::fprintf(stderr, "writing manifest\nsuccess\n");
  std::printf("%s -> %s (in %s)\n", ModelCatalog::display_name(plan.manifest.name).c_str(), plan.manifest.from.c_str(),
              models_dir.c_str());
}

}  // namespace

void register_create(CLI::App& app) {
  struct Options {
    std::string name, modelfile = "Modelfile", models_dir;
  };
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("create", "Create a named model (an alias with its own defaults) from a Modelfile");
  sub->add_option("name", o->name, "Model name, e.g. rwkv7:2.9b")->required();
  sub->add_option("-f,--file", o->modelfile, "The Modelfile (default ./Modelfile)");
  sub->add_option("--models", o->models_dir, "Models directory (default $FLATLINE_MODELS, else the bundled models/)");
  sub->callback([o] { create(o->name, o->modelfile, o->models_dir.empty() ? default_models_dir() : o->models_dir); });
}

}  // namespace flatline::cli
