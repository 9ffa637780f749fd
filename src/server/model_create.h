// Creating named models (aliases) the way Ollama's clients ask for them:
// /api/create (a Modelfile in "modelfile", or the JSON form "from", "files",
// "parameters", "template", "system", "messages", "license"), /api/copy and
// `flatline create NAME -f Modelfile`. Everything is checked before anything
// is written; the result is one manifest in the models directory
// (runtime/model_alias.h).
//
// FROM is either the name of a model the directory already offers (a file
// stem or an alias, whose defaults are inherited and then overridden) or a
// path to a .gguf file. A path must name a file that is directly in the
// models directory (relative paths are relative to the models directory for
// the server, to the Modelfile's folder for the CLI; symbolic links placed in
// the directory count as in it): flatline serves only that directory, so a
// request cannot make it open /etc/passwd or another user's files.
#pragma once

#include <string>
#include <vector>

#include "runtime/model_catalog.h"
#include "runtime/modelfile.h"
#include "server/json_io.h"

namespace flatline::server {

struct CreatePlan {
  AliasManifest manifest;
  std::vector<std::string> steps;  // Ollama-style status lines, before "writing manifest"
};

// The body of /api/create. Throws HttpError: 400 for anything malformed or
// refused (with the Modelfile line when it came from one), 404 when FROM
// names no model and no file.
CreatePlan plan_create(ModelCatalog& catalog, const json& body);
// `flatline create`: `base_dir` resolves relative FROM paths.
CreatePlan plan_create_from_modelfile(ModelCatalog& catalog, const std::string& name, const Modelfile& modelfile,
                                      const std::string& base_dir);
// /api/copy: `destination` becomes an alias of the file `source` names,
// with source's defaults. HttpError 404 for an unknown source.
CreatePlan plan_copy(ModelCatalog& catalog, const std::string& source, const std::string& destination);
// Writes the manifest (HttpError 400 when the name belongs to a model file
// or to models.json).
void carry_out(ModelCatalog& catalog, const CreatePlan& plan);

}  // namespace flatline::server
