#!/usr/bin/env python3
"""The 10-question beekeeping conversation against a running Ollama-compatible server,
the way simple scripts talk to it: the whole growing history posted to /api/chat with
"stream": false each turn. Prints, per turn, what the server reports it evaluated.

usage: turns_http.py BASE_URL MODEL   (figures: BENCHMARKS.md)
"""
import json, sys, urllib.request
Q = ["What is beekeeping?", "What are Layens hives?", "How do you harvest honey?",
     "What is the newspaper method for combining colonies?", "How do you treat varroa mites naturally?",
     "What flowers are best for bees in California?", "How do you split a colony in spring?",
     "What is a swarm trap and how do you use one?", "How do you overwinter a hive in mild climates?",
     "Summarize everything we discussed about beekeeping."]
base, model = sys.argv[1], sys.argv[2]
h = []
for i, q in enumerate(Q):
    h.append({"role": "user", "content": q})
    req = urllib.request.Request(base + "/api/chat", data=json.dumps({"model": model, "messages": h, "stream": False,
          "options": {"temperature": 0, "num_predict": 64}}).encode(), headers={"Content-Type": "application/json"})
    r = json.loads(urllib.request.urlopen(req, timeout=600).read())
    print("turn %2d prompt_eval_count %5d prompt_eval_duration %8.1f ms eval_count %3d %.1f tok/s" % (
        i + 1, r["prompt_eval_count"], r["prompt_eval_duration"] / 1e6, r["eval_count"],
        r["eval_count"] / r["eval_duration"] * 1e9))
    h.append(r["message"])
