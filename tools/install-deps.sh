#!/bin/sh
# Installs what building and testing flatline needs, from Debian 12 packages
# only (see "Dependencies" in README.md for why each one). Safe to re-run.
set -eu
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
PACKAGES="build-essential cmake ninja-build pkg-config git \
  libcpp-httplib-dev nlohmann-json3-dev libcli11-dev libgtest-dev libbenchmark-dev python3 \
  python3-jinja2 python3-jsonschema chromium chromium-driver python3-selenium haproxy"
# python3-jinja2: the outside truth of the Jinja chat-template tests (tests/jinja/).
# python3-jsonschema: the outside truth of the structured-output tests (every constrained
# output is validated by it against its schema).
# chromium, chromium-driver, python3-selenium: the chat page's browser test
# (tests/browser/), headless; it skips when they are missing.
# haproxy: the load balancer of the replicas test (tests/replicas_haproxy_test.cpp, deploy/).
# Node.js + npm run the client-compatibility tests (npm packages `ollama`, `openai`).
if ! command -v npm >/dev/null 2>&1; then PACKAGES="$PACKAGES nodejs npm"; fi
missing=""
for p in $PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
