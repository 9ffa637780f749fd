// The chat page's files (web/ in the source tree), embedded in the binary at
// build time by cmake/embed_web.cmake: the generated web_assets.cpp defines
// web_assets().
#pragma once

#include <cstddef>
#include <span>

namespace flatline::server {

struct WebAsset {
  const char* name;          // file name under web/, served as /ui/<name>
  const char* content_type;
  const unsigned char* data;
  size_t size;
  const char* etag;          // quoted, from the file's SHA-256
};

std::span<const WebAsset> web_assets();

}  // namespace flatline::server
