#include "util/system_info.h"

#include <unistd.h>

#include <algorithm>
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
  std::optional<std::string> v2, v1_memory;
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
    while (std::getline(list, c, ','))
      if (c == "memory") out.v1_memory = path;
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
void read_cgroup_mounts(const std::string& root, CgroupMount& v2, CgroupMount& v1_memory) {
  std::ifstream in(root + "proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream head(line.substr(0, dash)), tail(line.substr(dash + 3));
    std::string id, parent, dev, mount_root, point, fstype, source, options;
    head >> id >> parent >> dev >> mount_root >> point;
    tail >> fstype >> source >> options;
    bool memory = false;
    std::stringstream opts(options);
    for (std::string o; std::getline(opts, o, ',');) memory = memory || o == "memory";
    if (fstype == "cgroup2" && v2.point.empty()) v2 = {point, mount_root};
    if (fstype == "cgroup" && memory && v1_memory.point.empty()) v1_memory = {point, mount_root};
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

}  // namespace flatline
