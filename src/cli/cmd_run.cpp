// `flatline run`: one completion (-p), one chat turn (-m), or an interactive
// multi-turn chat that keeps the model state between turns.
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>

#include "cli/common.h"
#include "runtime/diffusion.h"
#include "runtime/generator.h"
#include "runtime/chat_template.h"
#include "util/error.h"
#include "util/limits.h"
#include "util/system_info.h"

namespace flatline::cli {

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void on_sigint(int) { g_interrupted = 1; }

struct RunOptions {
  ModelOptions model;
  SamplingOptions sampling;
  std::string prompt;   // raw completion
  std::string message;  // one chat turn
  std::string system;
  std::string prompt_tokens;  // ids instead of text (checking against other engines)
  bool print_ids = false;
  DiffusionOptions diffusion;
  std::string algorithm;
  bool visualize = false;
  bool show_stats = false;
};

bool print_piece(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  return g_interrupted == 0;
}

void print_stats(const GenerateResult& r) {
  double gen_s = r.eval_ns / 1e9;
  double prompt_ms = r.prompt_eval_ns / 1e6;
  std::fprintf(stderr, "\n[%lld tokens, %.2f tok/s | prompt: %lld new tokens in %.1f ms | RSS %s]\n",
               static_cast<long long>(r.eval_count), gen_s > 0 ? r.eval_count / gen_s : 0.0,
               static_cast<long long>(r.prompt_eval_count), prompt_ms, format_bytes(current_rss_bytes()).c_str());
  if (r.loops_used.empty()) return;
  // Looped models: the loops each token used, prompt and reply apart.
  const size_t np = std::min(r.loops_used.size(), static_cast<size_t>(r.prompt_eval_count));
  auto mean = [&](size_t a, size_t b) {
    double sum = 0;
    for (size_t i = a; i < b; ++i) sum += r.loops_used[i];
    return b > a ? sum / static_cast<double>(b - a) : 0.0;
  };
  std::string reply;
  for (size_t i = np; i < r.loops_used.size(); ++i) reply += (i > np ? "," : "") + std::to_string(r.loops_used[i]);
  std::fprintf(stderr, "[loops per token: prompt %.2f, reply %.2f (%s)]\n", mean(0, np), mean(np, r.loops_used.size()),
               reply.c_str());
}

void print_ids(const std::vector<int32_t>& ids) {
  std::printf("[");
  for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? "," : "", ids[i]);
  std::printf("]\n");
}

GenerateOptions generate_options(const RunOptions& o) {
  GenerateOptions g;
  g.sampling = o.sampling.params;
  g.num_predict = o.sampling.num_predict;
  g.stop = o.sampling.stop;
  if (g.stop.size() > limits::kMaxStopStrings)
    throw Error("--stop: at most " + std::to_string(limits::kMaxStopStrings) + " stop strings are accepted (got " +
                std::to_string(g.stop.size()) + ")");
  g.should_stop = [] { return g_interrupted != 0; };
  g.diffusion = o.diffusion;
  if (!o.algorithm.empty()) g.diffusion.algorithm = parse_diffusion_algorithm(o.algorithm);
  g.diffusion.canvas_events = o.visualize && isatty(STDERR_FILENO);
  return g;
}

// --visualize: the canvas redrawn on stderr after every diffusion step, masks
// as a dim placeholder (only on a terminal; a pipe gets the plain text).
EventSink canvas_printer(Engine& engine, const EventSink& text_sink) {
  const Tokenizer& tok = engine.loaded().tokenizer();
  const int32_t mask = static_cast<int32_t>(engine.loaded().model().file().get_int("tokenizer.ggml.mask_token_id", -1));
  return [&tok, mask, text_sink](const GenerationEvent& e) {
    if (e.kind == GenerationEvent::Kind::Text) return text_sink ? text_sink(e) : true;
    std::string line = "\r\033[2K[" + std::to_string(e.step) + "/" + std::to_string(e.steps) + "] ";
    for (int32_t id : e.canvas) {
      if (id == mask) line += "\033[2m\u2591\033[0m";
      else {
        std::string t = tok.token_bytes(id);
        for (char& c : t)
          if (c == '\n' || c == '\r') c = ' ';
        line += t;
      }
    }
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
    return g_interrupted == 0;
  };
}

// --prompt-tokens: the ids go in as they are; --print-ids: the generated ids
// come out as one JSON array instead of text.
void run_ids(Engine& engine, const RunOptions& o) {
  Conversation conv = engine.new_conversation(engine.loaded().usable_context(o.model.ctx));
  GenerateOptions g = generate_options(o);
  g.use_template_stops = false;
  const std::vector<int32_t> ids = parse_token_list(o.prompt_tokens);
  EventSink sink;
  if (!o.print_ids) sink = [](const GenerationEvent& e) { return e.kind != GenerationEvent::Kind::Text || print_piece(e.text); };
  if (g.diffusion.canvas_events) sink = canvas_printer(engine, sink);
  auto r = make_generator(engine)->generate_from_ids(conv, ids, g, sink);
  if (g.diffusion.canvas_events) std::fputs("\n", stderr);
  if (o.print_ids) print_ids(r.generated);
  else std::printf("\n");
  if (o.show_stats) print_stats(r);
}

void run_completion(Engine& engine, const RunOptions& o) {
  Conversation conv = engine.new_conversation(engine.loaded().usable_context(o.model.ctx));
  GenerateOptions g = generate_options(o);
  g.use_template_stops = false;
  std::fwrite(o.prompt.data(), 1, o.prompt.size(), stdout);
  EventSink sink = [](const GenerationEvent& e) { return e.kind != GenerationEvent::Kind::Text || print_piece(e.text); };
  if (g.diffusion.canvas_events) sink = canvas_printer(engine, sink);
  auto r = make_generator(engine)->generate(conv, o.prompt, g, sink);
  std::printf("\n");
  if (o.show_stats) print_stats(r);
}

void run_chat(Engine& engine, const RunOptions& o, bool interactive) {
  const ChatTemplate& tmpl = engine.loaded().chat_template();
  std::vector<ChatMessage> messages;
  if (!o.system.empty()) messages.push_back({"system", o.system});
  Conversation conv = engine.new_conversation(engine.loaded().usable_context(o.model.ctx));
  GenerateOptions g = generate_options(o);
  // The state before the last reply: when a reply was cut short (Ctrl-C,
  // -n) its rendered form may not extend what the model consumed, and the
  // next turn continues from here instead (costing the reply's tokens once).
  Conversation before_reply = conv.clone();
  auto turn = [&](const std::string& user_text) {
    messages.push_back({"user", user_text});
    g_interrupted = 0;
    std::string prompt = tmpl.render(messages);
    if (prompt.compare(0, conv.fed_text.size(), conv.fed_text) != 0) conv = before_reply.clone();
    before_reply = conv.clone();
    auto r = engine.generate(conv, prompt, g, print_piece);
    std::printf("\n");
    if (r.done_reason == DoneReason::Cancelled) std::fprintf(stderr, "[stopped]\n");
    if (o.show_stats || interactive) print_stats(r);
    messages.push_back({"assistant", r.text});
  };
  if (!interactive) {
    turn(o.message);
    return;
  }
  std::fprintf(stderr, "Chat with %s (%s format). Ctrl-D ends, Ctrl-C stops a reply.\n",
               engine.loaded().info().name.c_str(), std::string(tmpl.name()).c_str());
  std::string line;
  for (;;) {
    std::fprintf(stderr, ">>> ");
    g_interrupted = 0;
    if (!std::getline(std::cin, line)) {
      if (g_interrupted) {  // Ctrl-C at the prompt (the read failed with EINTR): keep the chat
        std::cin.clear();
        clearerr(stdin);
        std::fprintf(stderr, "\n(use Ctrl-D to exit)\n");
        continue;
      }
      break;
    }
    if (line.empty()) continue;
    try {
      turn(line);
    } catch (const ContextOverflowError& e) {
      std::fprintf(stderr, "\nerror: %s\n", e.what());
      messages.pop_back();
    }
  }
  std::fprintf(stderr, "\n");
}

}  // namespace

void register_run(CLI::App& app) {
  auto opts = std::make_shared<RunOptions>();
  auto* sub = app.add_subcommand("run", "Generate text or chat (no MODEL: the bundled demo model)");
  opts->model.add_to(*sub, /*model_required=*/false);
  opts->sampling.add_to(*sub, -1);
  sub->add_option("-p,--prompt", opts->prompt, "Raw text to continue (no chat template)");
  sub->add_option("-m,--message", opts->message, "One chat message: print the reply and exit");
  sub->add_option("-s,--system", opts->system, "System prompt for chat");
  sub->add_flag("--stats", opts->show_stats, "Print speed and memory after the reply");
  sub->add_option("--prompt-tokens", opts->prompt_tokens,
                  "Comma-separated token ids to continue, fed as they are (no template, no BOS)");
  sub->add_flag("--print-ids", opts->print_ids, "Print the generated ids as one JSON array instead of text");
  // Diffusion models (LLaDA, Dream).
  bounded(sub->add_option("--steps", opts->diffusion.steps, "Diffusion: refinement steps in all (0: one per token)"), 0,
          1 << 20);
  bounded(sub->add_option("--gen-length", opts->diffusion.gen_length, "Diffusion: tokens to generate (0: -n, else 64)"),
          0, 1 << 20);
  bounded(sub->add_option("--block-length", opts->diffusion.block_length,
                          "Diffusion: block size (0: one timestep schedule, Dream's; default: the model's)"),
          -1, 1 << 20);
  bounded_real(sub->add_option("--eps", opts->diffusion.eps, "Diffusion: timestep schedule's final t"), 0.0, 1.0);
  sub->add_option("--algorithm", opts->algorithm,
                  "Diffusion: origin, entropy, margin, random or confidence (low-confidence)");
  bounded(sub->add_option("--diffusion-cache", opts->diffusion.cache_refresh,
                          "Diffusion: approximate caching, a full pass every N steps and at each block (0: exact)"),
          0, 1 << 20);
  sub->add_flag("--visualize", opts->visualize, "Diffusion: redraw the canvas as it is refined (on a terminal)");
  sub->callback([opts] {
    RunOptions& o = *opts;
    if (o.model.model_path.empty()) {
      o.model.model_path = default_model_path();
      if (o.model.model_path.empty())
        throw Error("no model given and the bundled demo model (models/flatline-demo-kjv.gguf) was not found");
      std::fprintf(stderr, "Using the bundled demo model %s\n", o.model.model_path.c_str());
    }
    if ((!o.prompt.empty() || !o.prompt_tokens.empty()) && o.sampling.num_predict < 0) o.sampling.num_predict = 256;
    if (o.print_ids && o.prompt_tokens.empty()) throw Error("--print-ids needs --prompt-tokens");
    MemoryBudget budget = o.model.budget();
    auto model = o.model.load(budget);
    Engine engine(*model);
    // No SA_RESTART: Ctrl-C at the ">>>" prompt interrupts the read (the chat
    // goes on, Ctrl-D ends it); during a reply it stops the reply.
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, nullptr);
    if (!o.prompt_tokens.empty()) run_ids(engine, o);
    else if (!o.prompt.empty()) run_completion(engine, o);
    else if (!o.message.empty()) run_chat(engine, o, false);
    else run_chat(engine, o, true);
  });
}

}  // namespace flatline::cli
