// Bounds and limits outside the HTTP routes (issue 20): the memory guard
// reading container limits (fake cgroup trees built here), numeric
// command-line options, a server whose threads the system refuses, SIGTERM
// during a generation, and the server honouring its own context limit.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "runtime/memory_budget.h"
#include "util/system_info.h"
#include "server_raw_support.h"
#include "server_test_support.h"
#include "util/log.h"
#include "util/system_info.h"

namespace flatline {
namespace {

namespace fs = std::filesystem;
using test::json;

// ---------------------------------------------------------------------------
// Container memory limits

class FakeSystem {
 public:
  FakeSystem() : dir_("fake-root") { write("proc/meminfo", "MemTotal:       32000000 kB\nMemAvailable:   20000000 kB\n"); }
  void write(const std::string& relative, const std::string& text) {
    const fs::path p = fs::path(dir_.path()) / relative;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  std::string root() const { return dir_.path() + "/"; }

 private:
  test::TempDir dir_;
};

constexpr uint64_t MiB = 1024 * 1024;

TEST(MemoryGuard, ItNoLongerIgnoresACgroupV2LimitOnTheProcessPath) {
  FakeSystem sys;
  sys.write("proc/self/cgroup", "0::/system.slice/flatline.service\n");
  sys.write("sys/fs/cgroup/system.slice/flatline.service/memory.max", "209715200\n");  // 200 MiB
  sys.write("sys/fs/cgroup/system.slice/flatline.service/memory.current", "52428800\n");
  sys.write("sys/fs/cgroup/system.slice/flatline.service/memory.stat", "anon 1000\ninactive_file 10485760\n");
  MemoryAvailability a = available_memory(sys.root());
  // 200 MiB - (50 MiB used - 10 MiB reclaimable page cache)
  EXPECT_EQ(a.bytes, 160 * MiB);
  EXPECT_EQ(a.source, "cgroup v2 /sys/fs/cgroup/system.slice/flatline.service (memory.max 200.00 MiB, 40.00 MiB in use)");
}

TEST(MemoryGuard, ATighterParentCgroupWins) {
  FakeSystem sys;
  sys.write("proc/self/cgroup", "0::/user.slice/app\n");
  sys.write("sys/fs/cgroup/user.slice/app/memory.max", "max\n");
  sys.write("sys/fs/cgroup/user.slice/app/memory.current", "1000\n");
  sys.write("sys/fs/cgroup/user.slice/memory.max", "104857600\n");
  sys.write("sys/fs/cgroup/user.slice/memory.current", "20971520\n");
  MemoryAvailability a = available_memory(sys.root());
  EXPECT_EQ(a.bytes, 80 * MiB);
  EXPECT_EQ(a.source, "cgroup v2 /sys/fs/cgroup/user.slice (memory.max 100.00 MiB, 20.00 MiB in use)");
}

TEST(MemoryGuard, ACgroupV1LimitAsDockerSetsIt) {
  FakeSystem sys;
  sys.write("proc/self/cgroup", "12:pids:/docker/abc\n4:memory:/docker/abc\n0::/\n");
  sys.write("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "209715200\n");
  sys.write("sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes", "31457280\n");
  sys.write("sys/fs/cgroup/memory/docker/abc/memory.stat", "cache 5\ntotal_inactive_file 10485760\n");
  sys.write("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");  // v1's "no limit"
  MemoryAvailability a = available_memory(sys.root());
  EXPECT_EQ(a.bytes, 180 * MiB);
  EXPECT_EQ(a.source, "cgroup v1 /sys/fs/cgroup/memory/docker/abc (memory.limit_in_bytes 200.00 MiB, 20.00 MiB in use)");
}

TEST(MemoryGuard, InsideAContainerTheMountRootIsTheContainersGroup) {
  // Without a cgroup namespace the container sees the host's path, which
  // does not exist under its own /sys/fs/cgroup/memory: the mount root is
  // its group.
  FakeSystem sys;
  sys.write("proc/self/cgroup", "4:memory:/docker/0123456789\n");
  sys.write("sys/fs/cgroup/memory/memory.limit_in_bytes", "209715200\n");
  sys.write("sys/fs/cgroup/memory/memory.usage_in_bytes", "0\n");
  EXPECT_EQ(available_memory(sys.root()).bytes, 200 * MiB);
  // Mount points come from mountinfo when it names them.
  FakeSystem moved;
  moved.write("proc/self/cgroup", "0::/box\n");
  moved.write("proc/self/mountinfo", "30 23 0:26 / /cg2 rw,nosuid - cgroup2 cgroup2 rw\n");
  moved.write("cg2/box/memory.max", "104857600\n");
  moved.write("cg2/box/memory.current", "0\n");
  EXPECT_EQ(available_memory(moved.root()).bytes, 100 * MiB);
  EXPECT_EQ(available_memory(moved.root()).source, "cgroup v2 /cg2/box (memory.max 100.00 MiB, 0.00 MiB in use)");
}

TEST(MemoryGuard, WithoutCgroupLimitsMemAvailableDecides) {
  FakeSystem sys;
  sys.write("proc/self/cgroup", "0::/user.slice\n");
  sys.write("sys/fs/cgroup/user.slice/memory.max", "max\n");
  MemoryAvailability a = available_memory(sys.root());
  EXPECT_EQ(a.bytes, 20000000ull * 1024);
  EXPECT_EQ(a.source, "MemAvailable in /proc/meminfo");
  // And this machine's real answer names its source.
  EXPECT_FALSE(available_memory().source.empty());
  EXPECT_NE(MemoryBudget().source().find("available ("), std::string::npos) << MemoryBudget().source();
  EXPECT_EQ(MemoryBudget(1 << 30).source(), "set with --max-memory");
}

// The default -t (#19): physical cores the process may use, performance
// cores only on a hybrid CPU, bounded by a cgroup CPU quota.
void write_topology(FakeSystem& sys, int cpu, int package, int core) {
  const std::string dir = "sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
  sys.write(dir + "physical_package_id", std::to_string(package) + "\n");
  sys.write(dir + "core_id", std::to_string(core) + "\n");
}

TEST(ThreadDefault, SmtSiblingsCountOnce) {
  FakeSystem sys;
  sys.write("proc/self/status", "Name:\tflatline\nCpus_allowed_list:\t0-7\n");
  for (int c = 0; c < 8; ++c) write_topology(sys, c, 0, c % 4);  // 4 cores x 2 threads
  const ThreadDefault d = default_thread_count(sys.root());
  EXPECT_EQ(d.threads, 4);
  EXPECT_EQ(d.reason, "4 physical cores of 8 allowed CPUs");
}

TEST(ThreadDefault, OnlyTheCpusTheAffinityAllowsCount) {
  // docker run --cpuset-cpus=2,3 on an 8-core host.
  FakeSystem sys;
  sys.write("proc/self/status", "Cpus_allowed_list:\t2-3\n");
  for (int c = 0; c < 8; ++c) write_topology(sys, c, 0, c);
  EXPECT_EQ(default_thread_count(sys.root()).threads, 2);
}

TEST(ThreadDefault, AHybridCpuUsesItsPerformanceCores) {
  // An i5-12400-like part: 4 P-cores with SMT (CPUs 0-7) and 4 E-cores (8-11).
  FakeSystem sys;
  sys.write("proc/self/status", "Cpus_allowed_list:\t0-11\n");
  for (int c = 0; c < 8; ++c) write_topology(sys, c, 0, c / 2);
  for (int c = 8; c < 12; ++c) write_topology(sys, c, 0, 8 + c);
  sys.write("sys/devices/cpu_core/cpus", "0-7\n");
  sys.write("sys/devices/cpu_atom/cpus", "8-11\n");
  const ThreadDefault d = default_thread_count(sys.root());
  EXPECT_EQ(d.threads, 4);
  EXPECT_EQ(d.reason, "4 performance cores of 12 allowed CPUs");
}

TEST(ThreadDefault, ACgroupCpuQuotaCapsIt) {
  FakeSystem sys;
  sys.write("proc/self/status", "Cpus_allowed_list:\t0-15\n");
  for (int c = 0; c < 16; ++c) write_topology(sys, c, c / 8, c % 8);
  sys.write("proc/self/cgroup", "0::/app\n");
  sys.write("sys/fs/cgroup/app/cpu.max", "250000 100000\n");  // docker --cpus=2.5
  sys.write("sys/fs/cgroup/cpu.max", "max 100000\n");
  const ThreadDefault d = default_thread_count(sys.root());
  EXPECT_EQ(d.threads, 3);
  EXPECT_EQ(d.reason, "3 CPUs of quota (cgroup v2 /sys/fs/cgroup/app cpu.max 250000 100000)");
  // cgroup v1, as older docker sets it.
  FakeSystem v1;
  v1.write("proc/self/status", "Cpus_allowed_list:\t0-15\n");
  for (int c = 0; c < 16; ++c) write_topology(v1, c, 0, c);
  v1.write("proc/self/cgroup", "5:cpu,cpuacct:/docker/abc\n0::/\n");
  v1.write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "100000\n");
  v1.write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  v1.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  v1.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(default_thread_count(v1.root()).threads, 1);
}

TEST(ThreadDefault, MissingOrGarbledFilesStillGiveAtLeastOne) {
  FakeSystem sys;
  sys.write("proc/self/status", "Cpus_allowed_list:\tgarbage,-5,7-3\n");
  EXPECT_GE(default_thread_count(sys.root()).threads, 1);
  FakeSystem bare;  // no status, no topology: /proc/cpuinfo of this machine
  EXPECT_GE(default_thread_count(bare.root()).threads, 1);
  FakeSystem no_topology;
  no_topology.write("proc/self/status", "Cpus_allowed_list:\t0-2\n");
  EXPECT_EQ(default_thread_count(no_topology.root()).threads, 3);  // each CPU its own core
}

TEST(MemoryGuard, AbsurdMemorySizesAreRefused) {
  EXPECT_EQ(parse_byte_size("1.5G"), 1610612736u);
  try {
    parse_byte_size("99999999999T", "--max-memory");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "--max-memory: '99999999999T' is larger than the largest size accepted (1 PiB)");
  }
  try {
    parse_byte_size("1.2.3G", "--cache-memory");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "--cache-memory: cannot read a memory size from '1.2.3G' (examples: 6G, 512M, 1.5GiB)");
  }
}

// ---------------------------------------------------------------------------
// The command line

struct CommandResult {
  int status;
  std::string output;
};

CommandResult shell(const std::string& command) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  CommandResult r{-1, ""};
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

std::string demo_model() { return test::source_dir() + "/models/flatline-demo-kjv.gguf"; }

TEST(CommandLine, AbsurdNumbersAreRefusedNamingTheOptionValueAndRange) {
  const std::string bin = test::flatline_binary();
  const std::string model = demo_model();
  struct Case {
    std::string args, expected;
  };
  const Case cases[] = {
      {"run " + model + " -p hi -t 100000", "--threads: must be between 0 and 256 (got 100000)"},
      {"run " + model + " -p hi -t -3", "--threads: must be between 0 and 256 (got -3)"},
      {"run " + model + " -p hi -n -5", "--num-predict: must be -1 (no limit) or between 0 and 16777216 (got -5)"},
      {"run " + model + " -p hi --temp nan", "--temp: must be between 0 and 100 (got nan)"},
      {"run " + model + " -p hi --temp -1", "--temp: must be between 0 and 100 (got -1)"},
      {"run " + model + " -p hi --top-p 1.5", "--top-p: must be between 0 and 1 (got 1.5)"},
      {"run " + model + " -p hi -c 0", "--ctx: must be between 1 and 16777216 (got 0)"},
      {"run " + model + " -p hi -b 100000", "--batch: must be between 1 and 4096 (got 100000)"},
      {"serve --port 84976", "--port: must be between 0 and 65535 (got 84976)"},
      {"serve --http-threads 100000", "--http-threads: must be between 4 and 1024 (got 100000)"},
      {"serve --max-queue 0", "--max-queue: must be between 1 and 1024 (got 0)"},
      {"serve --max-body 10", "--max-body must be between 1K and 1G (got 10)"},
      {"serve --max-memory 1e9", "--max-memory: unknown memory unit 'E9' in '1e9' (use K, M, G or T)"},
  };
  for (const Case& c : cases) {
    CommandResult r = shell(bin + " " + c.args + " </dev/null");
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.output.find(c.expected), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_EQ(r.output.find("listening"), std::string::npos) << c.args;
  }
}

TEST(CommandLine, ServeFailsWithAMessageWhenTheSystemRefusesItsThreads) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer reserves terabytes of shadow memory, which an address-space limit forbids";
#endif
  test::TempDir dir("refused-threads");
  test::write_random_rwkv7(dir.file("random.gguf"), 1);
  // 1000 thread stacks of 8 MiB do not fit in 1 GiB of address space.
  CommandResult r = shell("ulimit -v 1048576 && " + test::flatline_binary() + " serve --port 0 --models " + dir.path() +
                          " -t 1 --max-memory 64M --cache-memory 8M --http-threads 1000 </dev/null");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("cannot start 1000 HTTP worker threads (the system refused after"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("lower --http-threads"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("listening"), std::string::npos) << "it must not claim to listen:\n" << r.output;
}

TEST(CommandLine, SigtermDuringAGenerationStopsPromptlyAndExitsZero) {
  test::TempDir dir("sigterm");
  test::write_random_rwkv7(dir.file("random.gguf"), 1);
  test::ServeProcess p({"--port", "0", "--models", dir.path(), "-t", "1", "--max-memory", "256M", "--cache-memory", "16M"});
  const int port = p.wait_listening();
  ASSERT_GT(port, 0) << p.stderr_text();
  std::atomic<bool> streaming{false};
  std::thread client([&] {
    test::RawConnection c(port);
    json body = {{"model", "random"},
                 {"messages", json::array({json{{"role", "user"}, {"content", "go on"}}})},
                 {"options", {{"num_predict", 1000000}, {"num_ctx", 1000000}}}};
    const std::string text = body.dump();
    c.send("POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + std::to_string(text.size()) + "\r\n\r\n" + text);
    c.read(60000, [&](const std::string& got) {
      if (got.size() > 500) streaming = true;
      return false;  // read until the server closes
    });
  });
  for (int i = 0; i < 1000 && !streaming; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(streaming) << p.stderr_text();
  ::kill(p.pid(), SIGTERM);
  const int status = p.wait_exit(20000);  // a generation of a million tokens would take far longer
  client.join();
  EXPECT_EQ(status, 0) << p.stderr_text();
  EXPECT_NE(p.stderr_text().find("signal 15: shutting down"), std::string::npos) << p.stderr_text();
}

// ---------------------------------------------------------------------------
// The server's context limit

TEST(ServerContextLimit, TheServerNoLongerIgnoresItsOwnContextLimit) {
  REQUIRE_SHARED_MODEL(stories, "stories260K/stories260K.gguf");
  set_log_level(LogLevel::Error);
  test::TempDir dir("context-limit");
  // stories260K with a trained context of 16M tokens, so num_ctx 10M is not
  // cut to the trained length first.
  test::copy_gguf(stories, dir.file("long.gguf"), [](gguf::Writer& w, const std::string& key) {
    if (key == "llama.context_length") return w.add_uint32(key, 1u << 24), true;
    return false;
  });
  server::ServerOptions o = test::test_server_options(dir.path());
  o.models.max_memory = 12u << 20;
  o.cache.memory_limit = 2u << 20;
  test::TestServer s(o);
  auto chat = [&](const std::string& text, int64_t num_ctx) {
    return test::post(s, "/api/chat",
                      json{{"model", "long"},
                           {"messages", json::array({json{{"role", "user"}, {"content", text}}})},
                           {"stream", false},
                           {"options", {{"temperature", 0}, {"num_predict", 4}, {"num_ctx", num_ctx}}}});
  };
  auto r = chat("Once upon a time", 10000000);
  ASSERT_EQ(r.status, 200) << r.body;
  auto ps = test::get(s, "/api/ps").js()["models"][0];
  const int64_t n_ctx = ps["context_length"];
  EXPECT_GT(n_ctx, 0);
  EXPECT_LT(n_ctx, 10000000) << "/api/ps must show the context really reserved";
  EXPECT_LE(ps["size"].get<uint64_t>(), o.models.max_memory - o.cache.memory_limit)
      << "the reservation must fit the budget";
  // A prompt longer than that context is refused with the Engine's message.
  std::string long_text;
  while (static_cast<int64_t>(long_text.size()) < 4 * n_ctx) long_text += "the dog ran far away. ";
  r = chat(long_text, 10000000);
  EXPECT_EQ(r.status, 400) << r.body.substr(0, 300);
  const std::string error = r.js()["error"];
  EXPECT_NE(error.find("but the context holds " + std::to_string(n_ctx)), std::string::npos) << error;
  set_log_level(LogLevel::Info);
}

}  // namespace
}  // namespace flatline
