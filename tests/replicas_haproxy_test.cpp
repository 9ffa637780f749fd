// Three `flatline serve` replicas on loopback sharing one --state-dir behind
// HAProxy (Debian's haproxy, with deploy/haproxy/flatline.cfg): a 10-turn
// conversation resending its whole history lands on different replicas and
// still evaluates only each turn's new tokens; a replica killed mid-way
// changes nothing; concurrent conversations get the replies a single
// in-process server gives. Skips when haproxy is not installed.
//
// Short by default (CI); the full run is
//   FLATLINE_HA_CONVERSATIONS=16 FLATLINE_HA_SECONDS=60 ./build/tests/flatline_tests --gtest_filter='Replicas*'
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "server_raw_support.h"
#include "server_test_support.h"
#include "server_turns_support.h"
#include "util/log.h"

namespace flatline {
namespace {

using test::json;

std::string find_haproxy() {
  for (const char* p : {"/usr/sbin/haproxy", "/usr/bin/haproxy", "/usr/local/sbin/haproxy"})
    if (::access(p, X_OK) == 0) return p;
  return "";
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

// deploy/haproxy/flatline.cfg with its listen port and server lines pointed
// at this test's ports (the file is what docs/DEPLOY.md tells users to run).
std::string haproxy_config(int lb_port, const std::vector<int>& replica_ports) {
  std::ifstream in(test::source_dir() + "/deploy/haproxy/flatline.cfg");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string cfg = ss.str();
  cfg = std::regex_replace(cfg, std::regex("bind 127\\.0\\.0\\.1:11434"), "bind 127.0.0.1:" + std::to_string(lb_port));
  for (size_t i = 0; i < replica_ports.size(); ++i)
    cfg = std::regex_replace(cfg, std::regex("127\\.0\\.0\\.1:" + std::to_string(11435 + i) + " check"),
                             "127.0.0.1:" + std::to_string(replica_ports[i]) + " check");
  return cfg;
}

class HaproxyProcess {
 public:
  HaproxyProcess(const std::string& binary, const std::string& config_path) {
    std::vector<std::string> argv_s = {binary, "-db", "-f", config_path};
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    log_path_ = test::temp_path("haproxy.log");
    const int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(log, 1);
      ::dup2(log, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(log);
  }
  ~HaproxyProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  std::string log() const {
    auto b = test::read_file(log_path_);
    return std::string(b.begin(), b.end());
  }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

struct Reply {
  int status = 0;
  std::string content;
  std::string replica;
  int64_t prompt_eval_count = -1;
  std::string error;
};

Reply chat(int port, const std::string& model, const std::vector<std::pair<std::string, std::string>>& history) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  json messages = json::array();
  for (const auto& [role, content] : history) messages.push_back(json{{"role", role}, {"content", content}});
  const json body = {{"model", model},
                     {"messages", messages},
                     {"stream", false},
                     {"options", {{"temperature", 0}, {"num_predict", 12}}}};
  Reply out;
  auto r = c.Post("/api/chat", body.dump(), "application/json");
  if (!r) {
    out.error = httplib::to_string(r.error());
    return out;
  }
  out.status = r->status;
  out.replica = r->get_header_value("X-Flatline-Replica");
  if (r->status != 200) {
    out.error = r->body;
    return out;
  }
  const json j = json::parse(r->body);
  out.content = j["message"]["content"];
  out.prompt_eval_count = j["prompt_eval_count"];
  return out;
}

bool wait_until(const std::function<bool()>& ready, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

class ReplicasBehindHaproxy : public ::testing::Test {
 protected:
  void SetUp() override {
    haproxy_ = find_haproxy();
    if (haproxy_.empty())
      GTEST_SKIP() << "haproxy not found (Debian: apt-get install haproxy, tools/install-deps.sh); "
                      "skipping the replicas test";
    set_log_level(LogLevel::Warn);
    test::write_random_rwkv7(models_.file("random.gguf"), 1);
    for (int i = 0; i < 3; ++i) start_replica(i);
    for (int i = 0; i < 3; ++i) ASSERT_GT(ports_[i], 0) << replicas_[i]->stderr_text();
    lb_port_ = free_port();
    const std::string cfg_path = config_dir_.file("haproxy.cfg");
    std::ofstream(cfg_path) << haproxy_config(lb_port_, ports_);
    lb_ = std::make_unique<HaproxyProcess>(haproxy_, cfg_path);
    // All three replicas up in HAProxy's eyes: three requests, three names.
    ASSERT_TRUE(wait_until(
        [&] {
          std::set<std::string> seen;
          for (int i = 0; i < 3; ++i) {
            httplib::Client c("127.0.0.1", lb_port_);
            auto r = c.Get("/health");
            if (!r || r->status != 200) return false;
            seen.insert(r->get_header_value("X-Flatline-Replica"));
          }
          return seen.size() == 3;
        },
        20000))
        << lb_->log();
    // The single-replica reference: in process, no state directory.
    reference_ = std::make_unique<test::TestServer>(test::test_server_options(models_.path()));
  }
  void TearDown() override { set_log_level(LogLevel::Info); }

  void start_replica(int i) {
    replicas_[i] = std::make_unique<test::ServeProcess>(std::vector<std::string>{
        "--host", "127.0.0.1", "--port", "0", "--models", models_.path(), "--state-dir", states_.path(),
        "--threads", "1", "--max-memory", "256M"});
    ports_[i] = replicas_[i]->wait_listening();
  }

  std::string haproxy_;
  test::TempDir models_{"replicas-models"}, states_{"replicas-states"}, config_dir_{"replicas-haproxy"};
  std::unique_ptr<test::ServeProcess> replicas_[3];
  std::vector<int> ports_ = std::vector<int>(3, 0);
  int lb_port_ = 0;
  std::unique_ptr<HaproxyProcess> lb_;
  std::unique_ptr<test::TestServer> reference_;
};

TEST_F(ReplicasBehindHaproxy, AConversationMovesBetweenReplicasProcessingOnlyNewTokensAndSurvivesAKill) {
  // Reference replies: the same conversation on one server.
  std::vector<std::pair<std::string, std::string>> history;
  std::vector<std::string> reference;
  for (const std::string& q : test::kBeekeepingQuestions) {
    history.push_back({"user", q});
    Reply r = chat(reference_->port(), "random", history);
    ASSERT_EQ(r.status, 200) << r.error;
    reference.push_back(r.content);
    history.push_back({"assistant", r.content});
  }

  history.clear();
  test::ExpectedCache expected;  // one token per byte: the exact count
  std::set<std::string> replicas_used;
  std::string previous_replica;
  int moves = 0;
  std::string route;  // replica:prompt_eval_count per turn
  for (size_t turn = 0; turn < test::kBeekeepingQuestions.size(); ++turn) {
    if (turn == 5) {
      // Kill the replica that served the last turn; the next turn goes to
      // another one (HAProxy redispatches when the connection fails).
      for (int i = 0; i < 3; ++i)
        if ("replica" + std::to_string(i + 1) == previous_replica) ::kill(replicas_[i]->pid(), SIGKILL);
    }
    history.push_back({"user", test::kBeekeepingQuestions[turn]});
    const std::string prompt = test::rwkv_render(history);
    const int64_t want = expected.expected_eval(prompt);
    Reply r = chat(lb_port_, "random", history);
    ASSERT_EQ(r.status, 200) << "turn " << turn + 1 << ": " << r.error << "\n" << lb_->log();
    EXPECT_EQ(r.content, reference[turn]) << "turn " << turn + 1 << " on " << r.replica;
    EXPECT_EQ(r.prompt_eval_count, want) << "turn " << turn + 1 << " on " << r.replica << " (whole prompt "
                                         << prompt.size() << ")";
    if (turn == 5) {
      EXPECT_NE(r.replica, previous_replica) << "the killed replica answered";
    }
    if (!previous_replica.empty() && r.replica != previous_replica) ++moves;
    replicas_used.insert(r.replica);
    route += (route.empty() ? "" : " ") + r.replica + ":" + std::to_string(r.prompt_eval_count);
    previous_replica = r.replica;
    expected.after_turn(prompt, r.content, "length");
    history.push_back({"assistant", r.content});
  }
  std::cout << "[ replicas ] " << route << "\n";
  EXPECT_EQ(replicas_used.size(), 3u);
  EXPECT_GE(moves, 5) << "round robin should move the conversation most turns";
}

TEST_F(ReplicasBehindHaproxy, ConcurrentConversationsGetTheSingleReplicaReplies) {
  const int conversations = env_int("FLATLINE_HA_CONVERSATIONS", 4);
  const int seconds = env_int("FLATLINE_HA_SECONDS", 15);
  std::atomic<int> requests{0}, errors{0}, mismatches{0};
  std::mutex log_mutex;
  std::string first_problem;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  auto worker = [&](int id) {
    for (int round = 0; std::chrono::steady_clock::now() < deadline; ++round) {
      // A fresh conversation every 10 turns, different for every worker.
      std::vector<std::pair<std::string, std::string>> history;
      for (size_t turn = 0; turn < test::kBeekeepingQuestions.size() && std::chrono::steady_clock::now() < deadline;
           ++turn) {
        history.push_back({"user", "[" + std::to_string(id) + "." + std::to_string(round) + "] " +
                                       test::kBeekeepingQuestions[turn]});
        Reply r = chat(lb_port_, "random", history);
        Reply want = chat(reference_->port(), "random", history);
        ++requests;
        if (r.status != 200 || want.status != 200) {
          ++errors;
          std::lock_guard<std::mutex> lock(log_mutex);
          if (first_problem.empty()) first_problem = "status " + std::to_string(r.status) + ": " + r.error;
          return;
        }
        if (r.content != want.content) {
          ++mismatches;
          std::lock_guard<std::mutex> lock(log_mutex);
          if (first_problem.empty()) first_problem = "reply differs on " + r.replica + ": " + r.content + " vs " + want.content;
        }
        history.push_back({"assistant", r.content});
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < conversations; ++i) threads.emplace_back(worker, i);
  for (auto& t : threads) t.join();
  std::cout << "[ replicas ] " << conversations << " conversations for " << seconds << " s: " << requests
            << " requests through HAProxy, " << errors << " errors, " << mismatches << " replies differing\n";
  EXPECT_GT(requests.load(), conversations);
  EXPECT_EQ(errors.load(), 0) << first_problem;
  EXPECT_EQ(mismatches.load(), 0) << first_problem;
}

}  // namespace
}  // namespace flatline
