#!/usr/bin/env python3
"""A stdlib-only client (urllib) that chats the way simple scripts do: it
posts the whole growing history to /api/chat with "stream": false, turn after
turn, and reads eval_count / eval_duration / prompt_eval_count.

Checks: every metric is present and sane, and from the second turn on the
server evaluates no more than the last exchange (previous reply + new
question + some template text), not the whole history: it resumed the
conversation's state instead of re-reading it. (The model's vocabulary has
one token per byte, so byte counts bound token counts.)
usage: python_history_client.py BASE_URL MODEL [TURNS]
"""
import json
import sys
import urllib.error
import urllib.request

QUESTIONS = [
    "What is beekeeping?",
    "What are Layens hives?",
    "How do you harvest honey?",
    "What is the newspaper method for combining colonies?",
    "How do you treat varroa mites naturally?",
]

# Role labels and separators around one exchange ("\n\nUser: ...\n\nAssistant:").
TEMPLATE_SLACK = 64


def post(base, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def main():
    base, model = sys.argv[1], sys.argv[2]
    turns = int(sys.argv[3]) if len(sys.argv) > 3 else len(QUESTIONS)
    history, failures, checks = [], 0, 0

    def check(cond, what):
        nonlocal failures, checks
        checks += 1
        if not cond:
            failures += 1
            print("FAIL - " + what)

    for i in range(turns):
        history.append({"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]})
        r = post(base, "/api/chat", {"model": model, "messages": history, "stream": False,
                                     "options": {"temperature": 0, "num_predict": 16}})
        for key in ("eval_count", "eval_duration", "prompt_eval_count", "prompt_eval_duration", "total_duration"):
            check(isinstance(r.get(key), int) and r[key] >= 0, "turn %d: %s = %r" % (i + 1, key, r.get(key)))
        check(r["done"] is True and r["message"]["role"] == "assistant", "turn %d: done / role" % (i + 1))
        if i > 0:
            last_exchange = len(history[-2]["content"]) + len(history[-1]["content"]) + TEMPLATE_SLACK
            check(r["prompt_eval_count"] <= last_exchange,
                  "turn %d: prompt_eval_count %d, but the last exchange is only about %d bytes"
                  % (i + 1, r["prompt_eval_count"], last_exchange))
        tps = r["eval_count"] / r["eval_duration"] * 1e9 if r["eval_duration"] else 0.0
        print("turn %d: prompt_eval_count %d, eval_count %d, %.1f tok/s"
              % (i + 1, r["prompt_eval_count"], r["eval_count"], tps))
        history.append(r["message"])

    try:
        post(base, "/api/chat", {"model": "no-such-model", "messages": history, "stream": False})
        check(False, "unknown model accepted")
    except urllib.error.HTTPError as e:
        body = json.loads(e.read())
        check(e.code == 404 and "not found" in body.get("error", ""), "unknown model: %d %r" % (e.code, body))

    print("%d passed, %d failed" % (checks - failures, failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
