#!/usr/bin/env python3
"""First-token probabilities of recorded model requests, replayed against a llama.cpp server.

A small model's choice between answering in words and calling a tool is often a near tie in
its first token; this shows how near, and what a change to the request does to it.

    python3 bench/evals/first_tokens.py URL EXCHANGES.jsonl INDEX... [--strip-composed] [--context-after]

URL is the server's base (http://127.0.0.1:18081); EXCHANGES.jsonl is what scripts/eval.sh
writes (one request and answer a line); INDEX picks lines (0-based).
--strip-composed drops assistant texts that follow tool results (what history::to_wire does
for confirmations the app composed); --context-after moves the <context> block after the
person's words. Standard library only.
"""
import argparse
import json
import math
import urllib.request

TOOL_OPENINGS = ("```", "<", '{"', "``")


def probe(url, req):
    req = dict(req, logprobs=True, top_logprobs=5, max_tokens=1, stream=False)
    body = json.dumps(req).encode()
    r = urllib.request.Request(url.rstrip("/") + "/v1/chat/completions", data=body,
                               headers={"content-type": "application/json"})
    with urllib.request.urlopen(r, timeout=1800) as resp:
        answer = json.loads(resp.read())
    content = (answer["choices"][0].get("logprobs") or {}).get("content") or []
    top = content[0]["top_logprobs"] if content else []
    return [(t["token"], math.exp(t["logprob"])) for t in top]


def strip_composed(messages):
    out = []
    for i, m in enumerate(messages):
        after_tool = i > 0 and messages[i - 1]["role"] == "tool"
        if m["role"] == "assistant" and not m.get("tool_calls") and after_tool:
            continue
        out.append(m)
    return out


def context_after(messages):
    last = dict(messages[-1])
    text = last.get("content") or ""
    if text.startswith("<context>") and "</context>\n" in text:
        block, words = text.split("</context>\n", 1)
        last["content"] = words + "\n\n" + block + "</context>"
    return messages[:-1] + [last]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("exchanges")
    ap.add_argument("index", nargs="+", type=int)
    ap.add_argument("--strip-composed", action="store_true")
    ap.add_argument("--context-after", action="store_true")
    a = ap.parse_args()
    lines = [json.loads(l) for l in open(a.exchanges)]
    for i in a.index:
        req = lines[i]["request"]
        msgs = req["messages"]
        if a.strip_composed:
            msgs = strip_composed(msgs)
        if a.context_after:
            msgs = context_after(msgs)
        top = probe(a.url, dict(req, messages=msgs))
        tool = sum(p for t, p in top if t in TOOL_OPENINGS)
        words = (msgs[-1].get("content") or "").split("</context>")[-1].strip()[:50]
        shown = ", ".join(f"{t!r} {p:.3f}" for t, p in top)
        print(f"{i:3} {words!r:52} tool-call openings {tool:.2f} | {shown}", flush=True)


if __name__ == "__main__":
    main()
