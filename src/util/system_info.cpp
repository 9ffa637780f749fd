#include "util/system_info.h"

#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

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

uint64_t read_uint_file(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return 0;
  try {
    return std::stoull(text);
  } catch (...) {
    return 0;
  }
}

}  // namespace

uint64_t total_memory_bytes() { return read_kb_field("/proc/meminfo", "MemTotal"); }

uint64_t available_memory_bytes() {
  uint64_t available = read_kb_field("/proc/meminfo", "MemAvailable");
  uint64_t limit = cgroup_memory_limit_bytes();
  if (limit > 0) {
    uint64_t used = read_uint_file("/sys/fs/cgroup/memory.current");
    uint64_t cgroup_free = limit > used ? limit - used : 0;
    if (cgroup_free < available) available = cgroup_free;
  }
  return available;
}

uint64_t current_rss_bytes() { return read_kb_field("/proc/self/status", "VmRSS"); }
uint64_t peak_rss_bytes() { return read_kb_field("/proc/self/status", "VmHWM"); }

uint64_t cgroup_memory_limit_bytes() {
  uint64_t limit = read_uint_file("/sys/fs/cgroup/memory.max");
  if (limit == 0) limit = read_uint_file("/sys/fs/cgroup/memory/memory.limit_in_bytes");
  uint64_t total = total_memory_bytes();
  if (limit == 0 || (total > 0 && limit >= total)) return 0;
  return limit;
}

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
