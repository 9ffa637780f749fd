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

// The default number of compute threads (-t 0) and why: one per physical
// core this process may run on (its CPU affinity, /proc/self/status
// Cpus_allowed_list; SMT siblings count once, from sysfs topology), only the
// performance cores on a hybrid Intel CPU (/sys/devices/cpu_core/cpus),
// and no more than the cgroup CPU quota allows (v2 cpu.max, v1
// cpu.cfs_quota_us / cpu.cfs_period_us, rounded up). Paths are read under
// `root` ("/" normally; tests point it at a fake tree). >= 1.
struct ThreadDefault {
  int threads = 1;
  std::string reason;  // "4 physical cores of 8 allowed CPUs", "6 performance cores ...", "cgroup cpu.max ..."
};
ThreadDefault default_thread_count(const std::string& root = "/");

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
