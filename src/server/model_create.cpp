#include "server/model_create.h"

#include <filesystem>

#include "runtime/chat_template.h"
#include "server/request_options.h"
#include "util/log.h"

namespace flatline::server {

namespace fs = std::filesystem;

namespace {

// "Modelfile line N: ..." when the value came from a Modelfile line.
[[noreturn]] void refuse(int status, int line, const std::string& message) {
  throw HttpError(status, line > 0 ? "Modelfile line " + std::to_string(line) + ": " + message : message);
}

struct Base {
  std::string file_name;
  ModelDefaults inherited;
};

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// FROM as a model the directory offers, or nullopt.
std::optional<CatalogEntry> from_model_name(ModelCatalog& catalog, const std::string& text) {
  try {
    checked_model_name(text);
  } catch (const Error&) {
    return std::nullopt;  // not a name; maybe a path
  }
  return catalog.find(text);
}

bool same_directory(const fs::path& a, const fs::path& b) {
  std::error_code ec1, ec2;
  const fs::path ca = fs::canonical(a, ec1), cb = fs::canonical(b, ec2);
  return !ec1 && !ec2 && ca == cb;
}

// FROM as a path: a .gguf file directly in the models directory.
std::string from_path(ModelCatalog& catalog, const std::string& text, const std::string& base_dir, int line) {
  fs::path p(text);
  if (p.is_relative()) p = fs::path(base_dir) / p;
  p = p.lexically_normal();
  std::error_code ec;
  if (!fs::exists(p, ec))
    refuse(404, line, "FROM " + quoted(text) + ": no model has that name and there is no such file" +
                          " (flatline does not download models; put the .gguf file into the models directory)");
  const fs::path parent = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (!same_directory(parent, catalog.directory()))
    refuse(400, line, "FROM " + quoted(text) +
                          ": the file is outside the models directory; flatline serves only the files in that "
                          "directory, so copy or link the .gguf file there and name it in FROM");
  if (!fs::is_regular_file(p, ec) || p.extension() != ".gguf")
    refuse(400, line, "FROM " + quoted(text) +
                          ": not a .gguf file (flatline creates models from one GGUF file; a Hugging Face "
                          "directory can be converted with `flatline convert`)");
  const std::string file_name = p.filename().string();
  for (const CatalogEntry& e : catalog.list())
    if (!e.alias && fs::path(e.path).filename() == file_name) return file_name;
  refuse(400, line, "FROM " + quoted(text) + ": the file is not a GGUF model flatline can read (the server log says why)");
}

Base resolve_from(ModelCatalog& catalog, const std::string& text, const std::string& base_dir, int line,
                  std::vector<std::string>& steps) {
  if (text.empty()) refuse(400, line, "FROM needs a model name or a .gguf file");
  Base b;
  if (auto entry = from_model_name(catalog, text)) {
    b.file_name = fs::path(entry->path).filename().string();
    b.inherited = entry->defaults;
    steps.push_back("using existing layer sha256:" + entry->summary.digest);
    return b;
  }
  b.file_name = from_path(catalog, text, base_dir, line);
  if (auto entry = catalog.find(fs::path(b.file_name).stem().string()))
    steps.push_back("using existing layer sha256:" + entry->summary.digest);
  return b;
}

// One option, checked with the request-time rules (type and range).
void check_parameter(const std::string& key, const json& value, int line) {
  try {
    ParsedOptions scratch;
    apply_options(json{{key, value}}, scratch);
  } catch (const HttpError& e) {
    refuse(400, line, e.what());
  }
}

json parameters_from_modelfile(const Modelfile& mf) {
  json out = json::object();
  for (const ModelfileParameter& p : mf.parameters) {
    json value;
    try {
      value = parameter_value(p.name, p.value);
    } catch (const Error& e) {
      refuse(400, p.line, e.what());
    }
    if (is_list_option(p.name)) {
      if (!out.contains(p.name)) out[p.name] = json::array();
      out[p.name].push_back(value);
      value = out[p.name];
    } else {
      out[p.name] = value;
    }
    check_parameter(p.name, value, p.line);
  }
  return out;
}

json parameters_from_json(const json& params) {
  if (!params.is_object()) throw HttpError(400, "\"parameters\" must be an object of option names and values");
  json out = json::object();
  for (const auto& [key, value] : params.items()) {
    if (!is_known_option(key)) throw HttpError(400, "unknown parameter " + quoted(key));
    json v = is_list_option(key) && value.is_string() ? json::array({value}) : value;
    check_parameter(key, v, 0);
    out[key] = std::move(v);
  }
  return out;
}

void check_template(const std::string& text, int line, std::vector<std::string>& steps) {
  std::string described;
  if (std::string why = ChatTemplate::check_override(text, &described); !why.empty())
    refuse(400, line, "TEMPLATE is " + why);
  steps.push_back("using template: " + described);
}

ChatMessage checked_message(const std::string& role, const std::string& content, int line) {
  if (role != "system" && role != "user" && role != "assistant")
    refuse(400, line, "message role must be one of \"system\", \"user\", or \"assistant\", found " + quoted(role));
  return ChatMessage{role, content};
}

// The new values over the inherited ones (parameters key by key).
ModelDefaults merged(ModelDefaults base, const ModelDefaults& over) {
  for (const auto& [key, value] : over.parameters.items()) base.parameters[key] = value;
  if (over.system) base.system = over.system;
  if (over.template_text) base.template_text = over.template_text;
  if (!over.messages.empty()) base.messages = over.messages;
  if (!over.licenses.empty()) base.licenses = over.licenses;
  return base;
}

std::string checked_name(const std::string& name) {
  if (name.empty()) throw HttpError(400, "model is required");
  try {
    return checked_model_name(name);
  } catch (const Error& e) {
    throw HttpError(400, e.what());
  }
}

ModelDefaults defaults_from_modelfile(const Modelfile& mf, std::vector<std::string>& steps) {
  if (!mf.adapters.empty())
    refuse(400, mf.adapters.front().line,
           "ADAPTER: flatline does not apply LoRA adapters; merge the adapter into the model first (llama.cpp's "
           "llama-export-lora) and FROM the merged GGUF");
  ModelDefaults d;
  d.parameters = parameters_from_modelfile(mf);
  if (mf.template_text) {
    check_template(mf.template_text->text, mf.template_text->line, steps);
    d.template_text = mf.template_text->text;
  }
  if (mf.system) d.system = mf.system->text;
  for (const ModelfileMessage& m : mf.messages) d.messages.push_back(checked_message(m.role, m.content, m.line));
  for (const ModelfileValue& l : mf.licenses) d.licenses.push_back(l.text);
  return d;
}

std::vector<std::string> string_list(const json& v, const char* field) {
  if (v.is_string()) return {v.get<std::string>()};
  std::vector<std::string> out;
  if (!v.is_array()) throw HttpError(400, std::string("\"") + field + "\" must be a string or an array of strings");
  for (const auto& s : v) {
    if (!s.is_string()) throw HttpError(400, std::string("\"") + field + "\" must be a string or an array of strings");
    out.push_back(s.get<std::string>());
  }
  return out;
}

ModelDefaults defaults_from_json(const FieldReader& f, std::vector<std::string>& steps) {
  if (const json* a = f.raw("adapters"); a && !a->empty())
    throw HttpError(400, "flatline does not apply LoRA adapters; merge the adapter into the model first (llama.cpp's "
                         "llama-export-lora) and create from the merged GGUF");
  ModelDefaults d;
  if (const json* p = f.raw("parameters")) d.parameters = parameters_from_json(*p);
  if (auto t = f.string("template"); t && !t->empty()) {
    check_template(*t, 0, steps);
    d.template_text = *t;
  }
  if (auto s = f.string("system")) d.system = *s;
  if (const json* msgs = f.array("messages")) {
    for (const auto& m : *msgs) {
      if (!m.is_object() || !m.value("role", json()).is_string() || !m.value("content", json()).is_string())
        throw HttpError(400, "each of \"messages\" needs a string \"role\" and \"content\"");
      d.messages.push_back(checked_message(m["role"].get<std::string>(), m["content"].get<std::string>(), 0));
    }
  }
  if (const json* l = f.raw("license")) d.licenses = string_list(*l, "license");
  return d;
}

// The JSON form's "files" ({"name.gguf": "sha256:..."}): the one GGUF file
// it names, which must already be in the models directory.
std::string from_files(const json& files) {
  if (!files.is_object()) throw HttpError(400, "\"files\" must be an object of file names and digests");
  if (files.size() != 1 || fs::path(files.begin().key()).extension() != ".gguf")
    throw HttpError(400, "flatline creates a model from one .gguf file; \"files\" names " + std::to_string(files.size()) +
                             " file(s)" + (files.empty() ? "" : ", the first " + quoted(files.begin().key())));
  return files.begin().key();
}

}  // namespace

CreatePlan plan_create_from_modelfile(ModelCatalog& catalog, const std::string& name, const Modelfile& mf,
                                      const std::string& base_dir) {
  CreatePlan plan;
  plan.manifest.name = checked_name(name);
  plan.steps.push_back("gathering model components");
  Base base = resolve_from(catalog, mf.from->text, base_dir, mf.from->line, plan.steps);
  plan.manifest.from = base.file_name;
  plan.manifest.defaults = merged(std::move(base.inherited), defaults_from_modelfile(mf, plan.steps));
  return plan;
}

CreatePlan plan_create(ModelCatalog& catalog, const json& body) {
  if (!body.is_object()) throw HttpError(400, "the request body must be a JSON object (Ollama's CreateRequest)");
  FieldReader f(body, "CreateRequest");
  std::string name = f.string("model").value_or("");
  if (name.empty()) name = f.string("name").value_or("");
  if (auto q = f.string("quantize"); q && !q->empty())
    throw HttpError(400, "flatline does not quantize while creating a model; run `flatline quantize IN.gguf OUT.gguf " +
                             *q + "` and create from the result");
  if (auto text = f.string("modelfile"); text && !text->empty()) {
    Modelfile mf;
    try {
      mf = parse_modelfile(*text);
    } catch (const ModelfileError& e) {
      throw HttpError(400, e.what());
    }
    CreatePlan plan = plan_create_from_modelfile(catalog, name, mf, catalog.directory());
    plan.steps.insert(plan.steps.begin(), "parsing modelfile");
    return plan;
  }
  CreatePlan plan;
  plan.manifest.name = checked_name(name);
  plan.steps.push_back("gathering model components");
  std::string from = f.string("from").value_or("");
  if (from.empty())
    if (const json* files = f.raw("files")) from = from_files(*files);
  if (from.empty()) throw HttpError(400, "neither 'from' nor 'files' was specified");
  Base base = resolve_from(catalog, from, catalog.directory(), 0, plan.steps);
  plan.manifest.from = base.file_name;
  plan.manifest.defaults = merged(std::move(base.inherited), defaults_from_json(f, plan.steps));
  return plan;
}

CreatePlan plan_copy(ModelCatalog& catalog, const std::string& source, const std::string& destination) {
  if (source.empty() || destination.empty()) throw HttpError(400, "source and destination are required");
  auto entry = catalog.find(source);
  if (!entry) throw HttpError(404, "model " + quoted(source) + " not found");
  CreatePlan plan;
  plan.manifest.name = checked_name(destination);
  plan.manifest.from = fs::path(entry->path).filename().string();
  plan.manifest.defaults = entry->defaults;
  return plan;
}

void carry_out(ModelCatalog& catalog, const CreatePlan& plan) {
  try {
    catalog.save_alias(plan.manifest);
  } catch (const HttpError&) {
    throw;
  } catch (const Error& e) {
    throw HttpError(400, e.what());
  }
  LOG_INFO("models: " << ModelCatalog::display_name(plan.manifest.name) << " -> " << plan.manifest.from
                      << (plan.manifest.defaults.empty() ? "" : " (with its own defaults)"));
}

}  // namespace flatline::server
