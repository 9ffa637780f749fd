// Model management as Ollama's clients call it (docs/api.md "Create a
// Model", "Copy", "Delete", "Pull"): /api/create with a Modelfile or the JSON
// form, the alias's defaults applied to requests, copy, delete, pull, and
// hostile input. The outside truth for "the defaults apply" is the same
// request sent to the plain file model with those options and that system
// prompt written out: the replies must be identical (greedy).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/chat_template.h"
#include "server_test_support.h"
#include "util/log.h"

namespace flatline {
namespace {

using test::json;
using test::TestServer;
namespace fs = std::filesystem;

class ServerModelsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    set_log_level(LogLevel::Warn);
    dir_ = new test::TempDir("server-models");
    outside_ = new test::TempDir("server-models-outside");
    fs::create_directories(dir_->path() + "/models");
    test::write_random_rwkv7(models() + "/random.gguf", 1);
    test::write_random_rwkv7(models() + "/random2.gguf", 2);
    test::write_random_rwkv7(outside_->file("elsewhere.gguf"), 3);
    server_ = new TestServer(test::test_server_options(models()));
  }
  static void TearDownTestSuite() {
    delete server_;
    delete outside_;
    delete dir_;
    set_log_level(LogLevel::Info);
  }
  static std::string models() { return dir_->path() + "/models"; }
  static const TestServer& srv() { return *server_; }

  static test::HttpReply create(const json& body) { return test::post(srv(), "/api/create", body); }
  static test::HttpReply create_modelfile(const std::string& name, const std::string& modelfile, bool stream = false) {
    return create(json{{"model", name}, {"modelfile", modelfile}, {"stream", stream}});
  }
  static test::HttpReply del(const std::string& name) {
    auto c = srv().client();
    auto r = c->Delete("/api/delete", json{{"model", name}}.dump(), "application/json");
    test::HttpReply out;
    if (r) {
      out.status = r->status;
      out.body = r->body;
    }
    return out;
  }
  static std::vector<std::string> tag_names() {
    std::vector<std::string> names;
    const json tags = test::get(srv(), "/api/tags").js();
    for (const auto& m : tags["models"]) names.push_back(m["name"].get<std::string>());
    return names;
  }
  static bool listed(const std::string& name) {
    auto names = tag_names();
    return std::find(names.begin(), names.end(), name) != names.end();
  }
  static json chat(const std::string& model, json messages, json options = json::object()) {
    json body{{"model", model}, {"messages", std::move(messages)}, {"stream", false}};
    if (!options.empty()) body["options"] = std::move(options);
    auto r = test::post(srv(), "/api/chat", body);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.js();
  }
  static json user(const std::string& text) { return json::array({json{{"role", "user"}, {"content", text}}}); }

  static test::TempDir* dir_;
  static test::TempDir* outside_;
  static TestServer* server_;
};
test::TempDir* ServerModelsTest::dir_ = nullptr;
test::TempDir* ServerModelsTest::outside_ = nullptr;
TestServer* ServerModelsTest::server_ = nullptr;

std::vector<json> ndjson_lines(const std::string& body) {
  std::vector<json> out;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

TEST_F(ServerModelsTest, CreateFromAModelfileStreamsStatusLinesAndPersistsAManifest) {
  auto r = create_modelfile("rwkv7:test", "FROM ./random.gguf\nPARAMETER temperature 0\n", /*stream=*/true);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.content_type.find("application/x-ndjson"), std::string::npos);
  const auto lines = ndjson_lines(r.body);
  ASSERT_GE(lines.size(), 3u);
  for (const json& l : lines) EXPECT_TRUE(l["status"].is_string()) << l.dump();
  EXPECT_EQ(lines.front()["status"], "parsing modelfile");
  EXPECT_EQ(lines.back()["status"], "success");
  EXPECT_EQ(lines[lines.size() - 2]["status"], "writing manifest");
  EXPECT_TRUE(fs::exists(models() + "/rwkv7:test.alias.json"));
  EXPECT_TRUE(listed("rwkv7:test"));
  EXPECT_TRUE(listed("random:latest"));  // the file model is still there under its own name

  auto quiet = create_modelfile("rwkv7:quiet", "FROM random\n", /*stream=*/false);
  ASSERT_EQ(quiet.status, 200) << quiet.body;
  EXPECT_EQ(quiet.js(), json({{"status", "success"}}));
  EXPECT_EQ(del("rwkv7:quiet").status, 200);
}

TEST_F(ServerModelsTest, AnAliasCarriesItsParametersAndSystemPromptUnlessTheRequestOverrides) {
  ASSERT_EQ(create_modelfile("terse", "FROM ./random.gguf\nPARAMETER temperature 0\nPARAMETER num_predict 5\n"
                                      "SYSTEM You are terse.\n").status,
            200);
  const json alias = chat("terse", user("What is beekeeping?"));
  const json reference = chat("random",
                              json::array({json{{"role", "system"}, {"content", "You are terse."}},
                                           json{{"role", "user"}, {"content", "What is beekeeping?"}}}),
                              json{{"temperature", 0}, {"num_predict", 5}});
  EXPECT_EQ(alias["eval_count"], 5);
  EXPECT_EQ(alias["message"]["content"], reference["message"]["content"]);
  EXPECT_EQ(alias["model"], "terse");

  // The request's own options and system message win.
  const json shorter = chat("terse", user("What is beekeeping?"), json{{"num_predict", 2}});
  EXPECT_EQ(shorter["eval_count"], 2);
  const json own_system = chat("terse",
                               json::array({json{{"role", "system"}, {"content", "Be long."}},
                                            json{{"role", "user"}, {"content", "Hi"}}}));
  const json own_reference = chat("random",
                                  json::array({json{{"role", "system"}, {"content", "Be long."}},
                                               json{{"role", "user"}, {"content", "Hi"}}}),
                                  json{{"temperature", 0}, {"num_predict", 5}});
  EXPECT_EQ(own_system["message"]["content"], own_reference["message"]["content"]);

  // /api/show describes the alias.
  const json show = test::post(srv(), "/api/show", json{{"model", "terse"}}).js();
  EXPECT_EQ(show["system"], "You are terse.");
  EXPECT_NE(show["parameters"].get<std::string>().find("num_predict 5"), std::string::npos) << show["parameters"];
  EXPECT_NE(show["modelfile"].get<std::string>().find("SYSTEM \"You are terse.\""), std::string::npos);
  EXPECT_EQ(del("terse").status, 200);
}

TEST_F(ServerModelsTest, TheJsonFormAndOpenAiRequestsUseTheDefaultsToo) {
  auto r = create(json{{"model", "jsonform"},
                       {"from", "random"},
                       {"parameters", {{"temperature", 0}, {"num_predict", 4}, {"stop", "zz"}}},
                       {"system", "S"},
                       {"stream", false}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json reference = chat("random",
                              json::array({json{{"role", "system"}, {"content", "S"}}, json{{"role", "user"}, {"content", "Hi"}}}),
                              json{{"temperature", 0}, {"num_predict", 4}, {"stop", {"zz"}}});
  auto oa = test::post(srv(), "/v1/chat/completions",
                       json{{"model", "jsonform"}, {"messages", user("Hi")}});
  ASSERT_EQ(oa.status, 200) << oa.body;
  EXPECT_EQ(oa.js()["choices"][0]["message"]["content"], reference["message"]["content"]);
  EXPECT_LE(oa.js()["usage"]["completion_tokens"].get<int>(), 4);
  EXPECT_EQ(del("jsonform").status, 200);
}

TEST_F(ServerModelsTest, ATemplateReplacesTheModelsChatFormat) {
  // The random model's vocabulary is one token per byte, so the prompt's
  // token count is its byte count: ChatML's rendering, not RWKV World's.
  const std::string go_template =
      "TEMPLATE \"\"\"{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
      "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n\"\"\"\n";
  int round = 0;
  for (const std::string& tmpl : {std::string("TEMPLATE chatml\n"), go_template}) {
    SCOPED_TRACE(tmpl);
    // A new text each round: the state cache would otherwise hold the prompt.
    const std::string text = "Hello there, round " + std::to_string(++round);
    const std::vector<ChatMessage> msgs{{"user", text}};
    const size_t chatml = ChatTemplate(ChatFormat::ChatMl).render(msgs).size();
    ASSERT_NE(chatml, ChatTemplate(ChatFormat::RwkvWorld).render(msgs).size());
    auto r = create_modelfile("chatml-alias", "FROM random2\nPARAMETER num_predict 1\n" + tmpl);
    ASSERT_EQ(r.status, 200) << r.body;
    const json reply = chat("chatml-alias", user(text));
    EXPECT_EQ(reply["prompt_eval_count"].get<size_t>(), chatml) << reply.dump();
    ASSERT_EQ(del("chatml-alias").status, 200);
  }
  const std::vector<ChatMessage> msgs{{"user", "Hello there"}};
  const size_t rwkv = ChatTemplate(ChatFormat::RwkvWorld).render(msgs).size();
  // The file model itself still renders its own format.
  const json plain = chat("random2", user("Hello there"), json{{"num_predict", 1}});
  EXPECT_EQ(plain["prompt_eval_count"].get<size_t>(), rwkv);
}

TEST_F(ServerModelsTest, CopyMakesAnotherAliasWithTheSameDefaults) {
  ASSERT_EQ(create_modelfile("src-alias", "FROM random\nPARAMETER num_predict 3\nPARAMETER temperature 0\n").status, 200);
  auto r = test::post(srv(), "/api/copy", json{{"source", "src-alias"}, {"destination", "team/copy:v1"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(listed("team/copy:v1"));
  EXPECT_TRUE(fs::exists(models() + "/team%2Fcopy:v1.alias.json"));
  EXPECT_EQ(chat("team/copy:v1", user("Hi"))["eval_count"], 3);
  auto file_copy = test::post(srv(), "/api/copy", json{{"source", "random"}, {"destination", "random-copy"}});
  EXPECT_EQ(file_copy.status, 200) << file_copy.body;
  EXPECT_TRUE(listed("random-copy:latest"));
  EXPECT_EQ(test::post(srv(), "/api/copy", json{{"source", "nope"}, {"destination", "x"}}).status, 404);
  EXPECT_EQ(test::post(srv(), "/api/copy", json{{"source", "random"}, {"destination", "random2"}}).status, 400);
  for (const char* n : {"src-alias", "team/copy:v1", "random-copy"}) EXPECT_EQ(del(n).status, 200) << n;
}

TEST_F(ServerModelsTest, DeleteRemovesAliasesButNeverTheUsersFile) {
  ASSERT_EQ(create_modelfile("doomed", "FROM random\n").status, 200);
  EXPECT_EQ(del("doomed:latest").status, 200);
  EXPECT_FALSE(listed("doomed:latest"));
  EXPECT_FALSE(fs::exists(models() + "/doomed.alias.json"));
  auto file = del("random");
  EXPECT_EQ(file.status, 403) << file.body;
  EXPECT_NE(file.body.find("--allow-delete-files"), std::string::npos) << file.body;
  EXPECT_TRUE(fs::exists(models() + "/random.gguf"));
  EXPECT_TRUE(listed("random:latest"));
  EXPECT_EQ(del("doomed").status, 404);
}

TEST_F(ServerModelsTest, PullSucceedsForPresentModelsAndSaysItDoesNotDownload) {
  auto r = test::post(srv(), "/api/pull", json{{"model", "random"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const auto lines = ndjson_lines(r.body);
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines.front()["status"], "pulling manifest");
  EXPECT_EQ(lines.back()["status"], "success");
  EXPECT_EQ(test::post(srv(), "/api/pull", json{{"model", "random"}, {"stream", false}}).js(), json({{"status", "success"}}));
  auto missing = test::post(srv(), "/api/pull", json{{"model", "llama3.2"}});
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.body.find("flatline does not download models"), std::string::npos) << missing.body;
}

struct Refusal {
  std::string name, modelfile;
  int status;
  std::string says;
};

TEST_F(ServerModelsTest, HostileOrMalformedCreatesAreRefusedWithReasons) {
  const std::string outside_abs = outside_->file("elsewhere.gguf");
  const std::string outside_rel = "../../" + fs::path(outside_->path()).filename().string() + "/elsewhere.gguf";
  const Refusal cases[] = {
      {"../evil", "FROM random\n", 400, "invalid model name"},
      {"a/../../b", "FROM random\n", 400, "invalid model name"},
      {".hidden", "FROM random\n", 400, "invalid model name"},
      {"", "FROM random\n", 400, "model is required"},
      {"ok", "FROM " + outside_abs + "\n", 400, "outside the models directory"},
      {"ok", "FROM " + outside_rel + "\n", 400, "outside the models directory"},
      {"ok", "FROM ../../../../../../../../etc/passwd\n", 400, "outside the models directory"},
      {"ok", "FROM ./no-such.gguf\n", 404, "no such file"},
      {"ok", "FROM random\nPARAMETER temperature 0\nTEMPERATURE 1\n", 400, "Modelfile line 3: unknown instruction"},
      {"ok", "FROM random\n\nPARAMETER wibble 1\n", 400, "Modelfile line 3: unknown parameter \"wibble\""},
      {"ok", "FROM random\nPARAMETER top_k many\n", 400, "Modelfile line 2: PARAMETER top_k: \"many\" is not an integer"},
      {"ok", "FROM random\nPARAMETER temperature 1e9\n", 400, "Modelfile line 2: option \"temperature\""},
      {"ok", "FROM random\nADAPTER ./lora.gguf\n", 400, "Modelfile line 2: ADAPTER: flatline does not apply LoRA"},
      {"ok", "FROM random\nTEMPLATE \"\"\"{{ .Prompt }}\"\"\"\n", 400, "Modelfile line 2: TEMPLATE is an Ollama Go template"},
      {"ok", "FROM random\nTEMPLATE {% if %}\n", 400, "Modelfile line 2: TEMPLATE is not a valid Jinja template"},
      {"ok", "FROM random\nMESSAGE tool hi\n", 400, "Modelfile line 2: MESSAGE role"},
      {"random", "FROM random2\n", 400, "is the model file random.gguf"},
      {"ok", "SYSTEM hi\n", 400, "no FROM line"},
  };
  for (const Refusal& c : cases) {
    SCOPED_TRACE(c.name + " | " + c.modelfile);
    auto r = create_modelfile(c.name, c.modelfile);
    EXPECT_EQ(r.status, c.status) << r.body;
    ASSERT_FALSE(r.body.empty());
    EXPECT_NE(r.js()["error"].get<std::string>().find(c.says), std::string::npos) << r.body;
  }
  EXPECT_FALSE(listed("ok:latest"));
  EXPECT_TRUE(fs::exists(models() + "/random.gguf"));
  // The JSON form's refusals.
  EXPECT_EQ(create(json{{"model", "q"}, {"from", "random"}, {"quantize", "q4_K_M"}}).status, 400);
  EXPECT_EQ(create(json{{"model", "q"}, {"from", "random"}, {"adapters", {{"a.gguf", "sha256:00"}}}}).status, 400);
  EXPECT_EQ(create(json{{"model", "q"}, {"from", "random"}, {"parameters", {{"nope", 1}}}}).status, 400);
  EXPECT_EQ(create(json{{"model", "q"}, {"from", "random"}, {"parameters", {{"temperature", "hot"}}}}).status, 400);
  EXPECT_EQ(create(json{{"model", "q"}}).status, 400);
  EXPECT_EQ(create(json{{"model", "q"}, {"files", {{"a.safetensors", "sha256:00"}}}}).status, 400);
  // "files" naming a GGUF already in the directory works (the digest is not checked).
  EXPECT_EQ(create(json{{"model", "q"}, {"files", {{"random.gguf", "sha256:00"}}}, {"stream", false}}).status, 200);
  EXPECT_EQ(del("q").status, 200);
}

TEST_F(ServerModelsTest, AManifestWrittenByHandOrBrokenIsListedOrSkipped) {
  // A manifest naming a file that is gone, and one that is not JSON: neither
  // is listed, and listing still works.
  {
    std::ofstream(models() + "/gone.alias.json") << R"({"flatline_alias": 1, "name": "gone", "from": "missing.gguf"})";
    std::ofstream(models() + "/junk.alias.json") << "{not json";
    std::ofstream(models() + "/byhand.alias.json")
        << R"({"flatline_alias": 1, "name": "byhand", "from": "random.gguf", "parameters": {"num_predict": 2}})";
  }
  EXPECT_FALSE(listed("gone:latest"));
  EXPECT_FALSE(listed("junk:latest"));
  EXPECT_TRUE(listed("byhand:latest"));
  EXPECT_EQ(chat("byhand", user("Hi"))["eval_count"], 2);
  for (const char* f : {"gone", "junk"}) fs::remove(models() + "/" + f + ".alias.json");
  EXPECT_EQ(del("byhand").status, 200);
}

TEST(ServerModelsDeleteFiles, WithTheFlagDeletingAFileModelRemovesItAndItsAliases) {
  test::TempDir dir("server-models-delete");
  test::write_random_rwkv7(dir.file("victim.gguf"), 4);
  test::write_random_rwkv7(dir.file("keeper.gguf"), 5);
  server::ServerOptions o = test::test_server_options(dir.path());
  o.allow_delete_files = true;
  TestServer srv(std::move(o));
  ASSERT_EQ(test::post(srv, "/api/create", json{{"model", "v2"}, {"from", "victim"}}).status, 200);
  auto c = srv.client();
  auto r = c->Delete("/api/delete", json{{"model", "victim"}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_FALSE(fs::exists(dir.file("victim.gguf")));
  EXPECT_FALSE(fs::exists(dir.file("v2.alias.json")));
  EXPECT_TRUE(fs::exists(dir.file("keeper.gguf")));
}

}  // namespace
}  // namespace flatline
