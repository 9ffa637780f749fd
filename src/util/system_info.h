// Facts about the machine and this process: memory and cores.
#pragma once

#include <cstdint>
#include <string>

namespace flatline {

uint64_t total_memory_bytes();      // MemTotal
uint64_t available_memory_bytes();  // MemAvailable (what can be allocated without swapping)
uint64_t current_rss_bytes();       // VmRSS of this process
uint64_t peak_rss_bytes();          // VmHWM of this process
int physical_core_count();          // distinct (package, core) pairs; >= 1

// How much memory this process can still allocate, and which limit says so.
struct MemoryAvailability {
  uint64_t bytes = 0;
  std::string source;  // "MemAvailable in /proc/meminfo", "cgroup v2 /sys/fs/cgroup/x (memory.max ...)", ...
};

// The tightest of: MemAvailable (/proc/meminfo); for every cgroup v2 level
// on this process's path (/proc/self/cgroup, walking up to the root)
// memory.max minus what the group uses; the same for cgroup v1
// (memory.limit_in_bytes, memory.usage_in_bytes). A group's usage counts
// its page cache, so the inactive file pages (memory.stat inactive_file /
// total_inactive_file), which the kernel reclaims before it kills, are not
// counted as used. Every path is read under `root` ("/" normally; tests
// point it at a fake tree).
MemoryAvailability available_memory(const std::string& root = "/");

}  // namespace flatline
