#include "util/system_info.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace flatline {

namespace {

// Reads "Key:   123 kB" style lines from a /proc file.
uint64_t read_kb_field(const char* path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0 && line.size() > key.size() && line[key.size()] == ':') {
      std::istringstream fields(line.substr(key.size() + 1));
      uint64_t kb = 0;
      fields >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

// A file holding one number ("max" and missing files give nullopt).
std::optional<uint64_t> read_number_file(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return std::nullopt;
  try {
    size_t used = 0;
    uint64_t v = std::stoull(text, &used);
    if (used != text.size()) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

// "key value" lines of a cgroup memory.stat file.
uint64_t read_stat_field(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return 0;
}

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

// This process's cgroup paths from /proc/self/cgroup: the v2 one ("0::/a/b")
// and the v1 memory controller's ("7:memory:/a/b").
struct CgroupPaths {
  std::optional<std::string> v2, v1_memory, v1_cpu;
};

CgroupPaths read_cgroup_paths(const std::string& root) {
  CgroupPaths out;
  std::ifstream in(root + "proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find(':');
    const size_t b = a == std::string::npos ? std::string::npos : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    if (line.compare(0, a, "0") == 0 && controllers.empty()) {
      out.v2 = path;
      continue;
    }
    std::stringstream list(controllers);
    std::string c;
    while (std::getline(list, c, ',')) {
      if (c == "memory") out.v1_memory = path;
      if (c == "cpu") out.v1_cpu = path;
    }
  }
  return out;
}

// Where a cgroup hierarchy is mounted: the mount point and the cgroup path
// at its root (not "/" when a container sees only its own subtree).
struct CgroupMount {
  std::string point = "";  // "" = not found
  std::string root = "/";
};

// From /proc/self/mountinfo: "36 25 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory".
void read_cgroup_mounts(const std::string& root, CgroupMount& v2, CgroupMount& v1_memory,
                        CgroupMount* v1_cpu = nullptr) {
  std::ifstream in(root + "proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream head(line.substr(0, dash)), tail(line.substr(dash + 3));
    std::string id, parent, dev, mount_root, point, fstype, source, options;
    head >> id >> parent >> dev >> mount_root >> point;
    tail >> fstype >> source >> options;
    bool memory = false, cpu = false;
    std::stringstream opts(options);
    for (std::string o; std::getline(opts, o, ',');) {
      memory = memory || o == "memory";
      cpu = cpu || o == "cpu";
    }
    if (fstype == "cgroup2" && v2.point.empty()) v2 = {point, mount_root};
    if (fstype == "cgroup" && memory && v1_memory.point.empty()) v1_memory = {point, mount_root};
    if (fstype == "cgroup" && cpu && v1_cpu && v1_cpu->point.empty()) *v1_cpu = {point, mount_root};
  }
}

// Walks from the group's directory up to the mount point. When the group's
// directory is not visible (a container without its own cgroup namespace
// sees the host's path), starts at the mount point, which is then the
// container's own group.
std::vector<std::string> group_dirs(const std::string& root, const CgroupMount& mount, const std::string& group_path) {
  namespace fs = std::filesystem;
  std::vector<std::string> dirs;
  std::error_code ec;
  const fs::path top = (fs::path(root) / fs::path(mount.point).relative_path()).lexically_normal();
  std::string relative = group_path;
  if (mount.root != "/" && relative.rfind(mount.root, 0) == 0) relative = relative.substr(mount.root.size());
  fs::path p = top / fs::path(relative).relative_path();
  if (!fs::is_directory(p, ec)) p = top;
  for (fs::path d = p.lexically_normal();; d = d.parent_path()) {
    dirs.push_back(d.string());
    if (d == top || d == d.parent_path() || d.string().size() <= top.string().size()) break;
  }
  return dirs;
}

struct Candidate {
  uint64_t bytes;
  std::string source;
};

void cgroup_candidates(const std::string& root, std::vector<Candidate>& out) {
  const CgroupPaths paths = read_cgroup_paths(root);
  CgroupMount v2{"/sys/fs/cgroup", "/"}, v1{"/sys/fs/cgroup/memory", "/"};  // the usual places
  CgroupMount found_v2, found_v1;
  read_cgroup_mounts(root, found_v2, found_v1);
  if (!found_v2.point.empty()) v2 = found_v2;
  if (!found_v1.point.empty()) v1 = found_v1;
  if (paths.v2) {
    for (const std::string& dir : group_dirs(root, v2, *paths.v2)) {
      auto limit = read_number_file(dir + "/memory.max");
      if (!limit) continue;
      const uint64_t usage = read_number_file(dir + "/memory.current").value_or(0);
      const uint64_t reclaimable = std::min(usage, read_stat_field(dir + "/memory.stat", "inactive_file"));
      const uint64_t used = usage - reclaimable;
      out.push_back({*limit > used ? *limit - used : 0,
                     "cgroup v2 " + dir.substr(root.size() - 1) + " (memory.max " + mib(*limit) + ", " + mib(used) +
                         " in use)"});
    }
  }
  if (paths.v1_memory) {
    for (const std::string& dir : group_dirs(root, v1, *paths.v1_memory)) {
      auto limit = read_number_file(dir + "/memory.limit_in_bytes");
      // v1 reports "no limit" as a huge page-aligned number.
      if (!limit || *limit >= (uint64_t{1} << 62)) continue;
      const uint64_t usage = read_number_file(dir + "/memory.usage_in_bytes").value_or(0);
      const uint64_t reclaimable = std::min(usage, read_stat_field(dir + "/memory.stat", "total_inactive_file"));
      const uint64_t used = usage - reclaimable;
      out.push_back({*limit > used ? *limit - used : 0,
                     "cgroup v1 " + dir.substr(root.size() - 1) + " (memory.limit_in_bytes " + mib(*limit) + ", " +
                         mib(used) + " in use)"});
    }
  }
}

}  // namespace

MemoryAvailability available_memory(const std::string& root_in) {
  const std::string root = root_in.empty() || root_in.back() != '/' ? root_in + "/" : root_in;
  std::vector<Candidate> candidates;
  const uint64_t mem_available = read_kb_field((root + "proc/meminfo").c_str(), "MemAvailable");
  if (mem_available > 0) candidates.push_back({mem_available, "MemAvailable in /proc/meminfo"});
  cgroup_candidates(root, candidates);
  MemoryAvailability best;
  for (const Candidate& c : candidates)
    if (best.source.empty() || c.bytes < best.bytes) best = {c.bytes, c.source};
  if (best.source.empty()) best.source = "unknown (no /proc/meminfo)";
  return best;
}

uint64_t total_memory_bytes() { return read_kb_field("/proc/meminfo", "MemTotal"); }

uint64_t available_memory_bytes() { return available_memory().bytes; }

uint64_t current_rss_bytes() { return read_kb_field("/proc/self/status", "VmRSS"); }
uint64_t peak_rss_bytes() { return read_kb_field("/proc/self/status", "VmHWM"); }

int physical_core_count() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  std::set<std::pair<int, int>> cores;
  int physical_id = 0;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    int value = 0;
    try {
      value = std::stoi(line.substr(colon + 1));
    } catch (...) {
      continue;
    }
    if (key == "physical id") physical_id = value;
    if (key == "core id") cores.insert({physical_id, value});
  }
  if (!cores.empty()) return static_cast<int>(cores.size());
  unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}


namespace {

// A kernel CPU list ("0-3,8,10-11") as CPU numbers; bad parts are skipped.
std::set<int> parse_cpu_list(const std::string& text) {
  std::set<int> cpus;
  std::stringstream parts(text);
  for (std::string part; std::getline(parts, part, ',');) {
    int first = 0;
    std::istringstream in(part);
    if (!(in >> first)) continue;
    int last = first;  // "N" alone, or "N-M"
    char dash = 0;
    if (in >> dash && (dash != '-' || !(in >> last))) continue;
    if (first < 0 || last < first || last - first > 65536) continue;
    for (int c = first; c <= last; ++c) cpus.insert(c);
  }
  return cpus;
}

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::set<int> allowed_cpus(const std::string& root) {
  std::ifstream in(root + "proc/self/status");
  const std::string key = "Cpus_allowed_list:";
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) return parse_cpu_list(line.substr(key.size()));
  return {};
}

// Physical cores among `cpus`: SMT siblings share (package, core id).
int count_physical_cores(const std::string& root, const std::set<int>& cpus) {
  std::set<std::pair<std::string, std::string>> cores;
  for (int c : cpus) {
    const std::string topo = root + "sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
    const std::string core = read_first_line(topo + "core_id");
    if (core.empty()) return static_cast<int>(cpus.size());  // no topology: count CPUs
    cores.insert({read_first_line(topo + "physical_package_id"), core});
  }
  return static_cast<int>(cores.size());
}

// The CPU quota of this process's cgroups in whole CPUs (rounded up), if any.
std::optional<std::pair<int, std::string>> cpu_quota(const std::string& root) {
  const CgroupPaths paths = read_cgroup_paths(root);
  CgroupMount v2{"/sys/fs/cgroup", "/"}, v1_cpu{"/sys/fs/cgroup/cpu,cpuacct", "/"};
  CgroupMount found_v2, found_v1_memory, found_v1_cpu;
  read_cgroup_mounts(root, found_v2, found_v1_memory, &found_v1_cpu);
  if (!found_v2.point.empty()) v2 = found_v2;
  if (!found_v1_cpu.point.empty()) v1_cpu = found_v1_cpu;
  std::optional<std::pair<int, std::string>> best;
  auto consider = [&](double quota, double period, const std::string& what) {
    if (quota <= 0 || period <= 0) return;
    const int cpus = std::max(1, static_cast<int>(std::ceil(quota / period)));
    if (!best || cpus < best->first) best = {{cpus, what}};
  };
  if (paths.v2) {
    for (const std::string& dir : group_dirs(root, v2, *paths.v2)) {
      std::istringstream in(read_first_line(dir + "/cpu.max"));
      std::string quota;
      double period = 0;
      if (!(in >> quota >> period) || quota == "max") continue;
      try {
        consider(std::stod(quota), period, "cgroup v2 " + dir.substr(root.size() - 1) + " cpu.max " + quota + " " +
                                               std::to_string(static_cast<int64_t>(period)));
      } catch (...) {
      }
    }
  }
  if (paths.v1_cpu) {
    for (const std::string& dir : group_dirs(root, v1_cpu, *paths.v1_cpu)) {
      const std::string quota = read_first_line(dir + "/cpu.cfs_quota_us");
      const auto period = read_number_file(dir + "/cpu.cfs_period_us");
      if (quota.empty() || quota[0] == '-' || !period) continue;  // -1: no quota
      try {
        consider(std::stod(quota), static_cast<double>(*period),
                 "cgroup v1 " + dir.substr(root.size() - 1) + " cpu.cfs_quota_us " + quota);
      } catch (...) {
      }
    }
  }
  return best;
}

}  // namespace

ThreadDefault default_thread_count(const std::string& root_in) {
  const std::string root = root_in.empty() || root_in.back() != '/' ? root_in + "/" : root_in;
  std::set<int> cpus = allowed_cpus(root);
  if (cpus.empty()) {
    ThreadDefault d;
    d.threads = std::max(1, physical_core_count());
    d.reason = std::to_string(d.threads) + " physical cores (/proc/cpuinfo)";
    return d;
  }
  const size_t allowed = cpus.size();
  std::string kind = "physical cores";
  // Intel hybrid CPUs list their performance cores here; efficiency cores
  // would hold every barrier of a parallel matmul back.
  const std::set<int> performance = parse_cpu_list(read_first_line(root + "sys/devices/cpu_core/cpus"));
  std::set<int> both;
  std::set_intersection(cpus.begin(), cpus.end(), performance.begin(), performance.end(),
                        std::inserter(both, both.begin()));
  if (!both.empty() && both.size() < cpus.size()) {
    cpus = both;
    kind = "performance cores";
  }
  ThreadDefault d;
  d.threads = std::max(1, count_physical_cores(root, cpus));
  d.reason = std::to_string(d.threads) + " " + kind + " of " + std::to_string(allowed) + " allowed CPUs";
  if (auto quota = cpu_quota(root); quota && quota->first < d.threads) {
    d.threads = quota->first;
    d.reason = std::to_string(d.threads) + " CPUs of quota (" + quota->second + ")";
  }
  return d;
}

}  // namespace flatline
