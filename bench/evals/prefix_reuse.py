#!/usr/bin/env python3
"""Prefix reuse of the prompts a todo-backend sends, measured without running a model.

A scripted stand-in model answers the backend (same answers for every binary), every
request body is recorded, and llama.cpp's own chat template and tokenizer (`/apply-template`,
`/tokenize`: no inference) turn each request into the token sequence the server would read.
llama.cpp keeps the previous request's prompt and reuses its longest common prefix, so the
tokens a call makes the server process are those after that common prefix.

Usage: prefix_reuse.py LLAMA_BASE_URL BACKEND_BIN [BACKEND_BIN ...]
  e.g. prefix_reuse.py http://127.0.0.1:8081 /tmp/todo-backend-base target/debug/todo-backend
"""
import json, os, socket, subprocess, sys, tempfile, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

# One person's morning: conversation 1, then a second person (conversation 2).
TURNS = [
    ("alice", "Europe/Paris", ["Add buy milk tomorrow", "What's on my list?", "Done with the milk",
                               "Add call mom", "Thanks!"]),
    ("bob", "America/New_York", ["Add pay rent", "What's on my list?"]),
]


def scripted(body):
    """The stand-in model: a tool call for a request, words after tool results."""
    last = body["messages"][-1]
    if last["role"] == "tool" or not body.get("tools"):
        return {"content": "Done."}
    text = last["content"].split("</context>")[-1].strip().lower()
    call = None
    if text.startswith("add "):
        call = ("add_task", {"title": text[4:].replace(" tomorrow", "").capitalize()})
    elif text.startswith("done"):
        call = ("complete_task", {"id": 1})
    elif "list" in text:
        call = ("list_tasks", {})
    if call is None:
        return {"content": "You're welcome!"}
    return {"content": None, "tool_calls": [{"id": f"call_{time.time_ns()}", "type": "function",
            "function": {"name": call[0], "arguments": json.dumps(call[1])}}]}


class Model(BaseHTTPRequestHandler):
    log = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        Model.log.append(body)
        msg = scripted(body)
        out = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", **msg},
                          "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 0, "completion_tokens": 0}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


def post(url, body, timeout=120):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=timeout))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def requests_of(binary, model_port):
    Model.log = []
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        env = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": f"sqlite:{d}/t.db",
               "OPENAI_BASE_URL": f"http://127.0.0.1:{model_port}/v1", "OPENAI_API_KEY": "x",
               "LLM_MODEL": "local", "RUST_LOG": "warn"}
        p = subprocess.Popen([binary, "serve", "--bind", f"127.0.0.1:{port}"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    urllib.request.urlopen(base + "/readyz", timeout=1)
                    break
                except Exception:
                    time.sleep(0.1)
            for user, tz, says in TURNS:
                conv = None
                for say in says:
                    body = {"message": say, "timezone": tz}
                    if conv:
                        body["conversation_id"] = conv
                    conv = post(f"{base}/api/{user}/chat", body)["conversation_id"]
        finally:
            p.terminate()
            p.wait()
    return list(Model.log)


def main():
    llama, binaries = sys.argv[1].rstrip("/"), sys.argv[2:]
    model_port = free_port()
    srv = HTTPServer(("127.0.0.1", model_port), Model)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    turns = sum(len(t[2]) for t in TURNS)
    print(f"| backend | model calls ({turns} turns) | prompt tokens per call | processed per call after the first | share reused |")
    print("|---|---|---|---|---|")
    for b in binaries:
        reqs = requests_of(b, model_port)
        toks = []
        for r in reqs:
            prompt = post(f"{llama}/apply-template", {"messages": r["messages"], "tools": r.get("tools", [])})["prompt"]
            toks.append(post(f"{llama}/tokenize", {"content": prompt})["tokens"])
        processed = []
        for prev, cur in zip(toks, toks[1:]):
            n = 0
            while n < min(len(prev), len(cur)) and prev[n] == cur[n]:
                n += 1
            processed.append(len(cur) - n)
        sent = sum(len(t) for t in toks) / len(toks)
        after_first = sum(processed) / len(processed) if processed else 0
        reused = 1 - sum(processed) / sum(len(t) for t in toks[1:])
        print(f"| {b} | {len(reqs)} | {sent:.0f} | {after_first:.0f} | {reused:.0%} |")


if __name__ == "__main__":
    main()
