#!/usr/bin/env bash
# Client compatibility tests against a real `flatline serve` process:
#   python  a stdlib-only client posting the growing history (python_history_client.py)
#   node    the npm packages `ollama`, `openai`, `@anthropic-ai/sdk` (node_clients.mjs),
#           structured output through them and LangChain / the AI SDK (node_structured.mjs),
#           a diffusion model through `ollama` (node_diffusion.mjs), installed
#           into a temp dir; skipped (exit 77) when npm or the registry is unavailable
# usage: run_client_tests.sh FLATLINE_BINARY python|node
set -uo pipefail

bin=${1:?usage: run_client_tests.sh FLATLINE_BINARY python|node}
mode=${2:-python}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
server_pid=""

cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ "$mode" = node ]; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "SKIP: node/npm not installed; the ollama/openai npm client tests did not run"
    exit 77
  fi
  if ! (cd "$work" && timeout 300 npm install --no-audit --no-fund --loglevel=error ollama openai @anthropic-ai/sdk \
      @langchain/ollama @langchain/openai @langchain/core ai ollama-ai-provider-v2 @ai-sdk/openai-compatible zod \
      >"$work/npm.log" 2>&1); then
    echo "SKIP: could not install the npm client packages (ollama, openai, @anthropic-ai/sdk, LangChain, AI SDK; no access to the npm registry?)"
    tail -5 "$work/npm.log"
    exit 77
  fi
fi

mkdir -p "$work/models"
python3 "$here/make_random_rwkv7.py" "$work/models/random.gguf" 7 || exit 1
# The random-weight LLaDA of ../shared (FLATLINE_SHARED_DIR) for the diffusion check.
shared=${FLATLINE_SHARED_DIR:-$here/../../../shared}
llada="$shared/models/random/llada.gguf"
if [ "$mode" = node ] && [ -f "$llada" ]; then cp "$llada" "$work/models/llada.gguf"; fi
# ... and its random-weight Gemma 3 (SentencePiece, a transformer) for structured output.
gemma="$shared/models/random/gemma3.gguf"
if [ "$mode" = node ] && [ -f "$gemma" ]; then cp "$gemma" "$work/models/gemma3.gguf"; fi

# Starts the server (on the same state directory each time); sets $url.
start_server() {
  : >"$work/serve.out"
  "$bin" serve --models "$work/models" --port 0 -t 1 --max-memory 1G --cache-memory 64M --state-dir "$work/states" \
    >"$work/serve.out" 2>>"$work/serve.err" &
  server_pid=$!
  url=""
  for _ in $(seq 1 200); do
    url=$(sed -n 's/^listening on //p' "$work/serve.out")
    [ -n "$url" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$url" ]; then
    echo "flatline serve did not start:"
    cat "$work/serve.err"
    exit 1
  fi
}

stop_server() {
  kill "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  server_pid=""
}

start_server
echo "flatline serve at $url"

status=0
case "$mode" in
  python) python3 "$here/python_history_client.py" "$url" random || status=$? ;;
  node)
    # ESM resolves packages from the script's own directory: run it from $work.
    cp "$here/node_clients.mjs" "$work/" && node "$work/node_clients.mjs" "$url" random "$work/response_id" || status=$?
    if [ "$status" -eq 0 ]; then
      # A restart on the same --state-dir: the stored response and its state survive.
      stop_server
      start_server
      echo "flatline serve restarted at $url"
      node "$work/node_clients.mjs" "$url" random "$work/response_id" --after-restart || status=$?
    fi
    if [ "$status" -eq 0 ]; then
      cp "$here/node_structured.mjs" "$work/" && node "$work/node_structured.mjs" "$url" random || status=$?
      if [ "$status" -eq 0 ] && [ -f "$work/models/gemma3.gguf" ]; then
        node "$work/node_structured.mjs" "$url" gemma3 || status=$?
      fi
    fi
    if [ "$status" -eq 0 ]; then
      if [ -f "$work/models/llada.gguf" ]; then
        cp "$here/node_diffusion.mjs" "$work/" && node "$work/node_diffusion.mjs" "$url" llada || status=$?
      else
        echo "note: $llada not found (set FLATLINE_SHARED_DIR); the diffusion streaming check did not run"
      fi
    fi
    ;;
  *) echo "unknown mode $mode (python|node)"; exit 2 ;;
esac
if [ "$status" -ne 0 ]; then
  echo "--- server log ---"
  tail -30 "$work/serve.err"
fi
exit "$status"
