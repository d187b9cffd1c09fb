"""Test doubles for AI feedback: a stub OpenAI-compatible server on loopback and a deterministic fake backend.

Both answer comparison questions the same way: the option whose reply contains the planted word
``banana`` gets probability 0.9 (0.5 each when neither or both do), unless ``prefer_a`` is set, which
makes (A) get 0.9 whatever the replies (a purely position-biased judge).
"""

import hashlib
import http.server
import json
import math
import re
import threading
import time

OPTION_LINES = re.compile(r"\(A\) ([^\n]*)\n\(B\) ([^\n]*)")


def option_a_probability(text: str, prefer_a: bool = False) -> float:
    """P(A) for the last (A)/(B) question in ``text`` (module doc)."""
    if prefer_a:
        return 0.9
    matches = OPTION_LINES.findall(text)
    if not matches:
        return 0.5
    a, b = ("banana" in reply for reply in matches[-1])
    return 0.9 if a and not b else 0.1 if b and not a else 0.5


def stub_text(*parts) -> str:
    """A deterministic, non-blank reply text for a request."""
    return "stub reply " + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:8]


class FakeBackend:
    """A FeedbackBackend without a model: replies are stub texts, option log-probabilities follow
    :func:`option_a_probability`. Records every query it is asked."""

    def __init__(self, prefer_a: bool = False, blank_every: int = 0):
        self.prefer_a, self.blank_every = prefer_a, blank_every
        self.generated, self.scored = [], []

    def generate(self, queries, config):
        self.generated += list(queries)
        texts = []
        for q in queries:
            blank = self.blank_every and len(self.generated) % self.blank_every == 0
            texts.append("" if blank else stub_text([m["content"] for m in q], config.seed))
        return texts

    def option_logprobs(self, queries, options, config):
        self.scored += list(queries)
        scores = []
        for q in queries:
            p = option_a_probability("\n".join(m["content"] for m in q), self.prefer_a)
            scores.append([math.log(p), math.log(1 - p)])
        return scores


class StubServer:
    """An OpenAI-compatible server on 127.0.0.1 (a free port) speaking /v1/completions (with echo and
    logprobs: one token per character) and /v1/chat/completions (with top_logprobs).

    ``script``: actions for the next requests, one each: ``("sleep", seconds)``, ``("status", code)`` or
    ``("status", code, retry_after)``. ``delay``: seconds every request takes. ``requests`` counts requests
    received; ``max_in_flight`` is the most handled at once; ``bodies`` holds each request's JSON body.
    """

    def __init__(self, prefer_a: bool = False, api_key: str | None = None):
        self.prefer_a, self.api_key = prefer_a, api_key
        self.script, self.delay = [], 0.0
        self.requests = self.in_flight = self.max_in_flight = 0
        self.bodies = []
        self.lock = threading.Lock()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                stub.handle(self)

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that timed out and went away: expected in the timeout tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def handle(self, request) -> None:
        body = json.loads(request.rfile.read(int(request.headers["Content-Length"])))
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.bodies.append(body)
            action = self.script.pop(0) if self.script else None
        try:
            time.sleep(self.delay)
            if action and action[0] == "sleep":
                time.sleep(action[1])
            if action and action[0] == "status":
                headers = {"Retry-After": str(action[2])} if len(action) > 2 else {}
                return self.reply(request, action[1], {"error": {"message": "scripted failure"}}, headers)
            if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
                return self.reply(request, 401, {"error": {"message": "bad key"}})
            if request.path == "/v1/completions":
                return self.reply(request, 200, self.completions(body))
            if request.path == "/v1/chat/completions":
                return self.reply(request, 200, self.chat(body))
            return self.reply(request, 404, {"error": {"message": f"no endpoint {request.path}"}})
        finally:
            with self.lock:
                self.in_flight -= 1

    @staticmethod
    def reply(request, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.end_headers()
        request.wfile.write(data)

    def completions(self, body: dict) -> dict:
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices = []
        for i, prompt in enumerate(prompts):
            if body.get("echo") and body.get("logprobs") is not None:
                choices.append({"index": i, "text": prompt + "x", "logprobs": self.echo_logprobs(prompt)})
            else:
                choices.append({"index": i, "text": " " + stub_text(prompt, body.get("seed"))})
        return {"object": "text_completion", "model": body["model"], "choices": choices[::-1]}

    def echo_logprobs(self, prompt: str) -> dict:
        """One token per character of the prompt and one generated 'x'. Every token has log-probability 0
        except the option letter that ends the prompt (`` (A)`` or `` (B)``), which gets log P(option)."""
        p_a = option_a_probability(prompt, self.prefer_a)
        values = [None] + [0.0] * len(prompt)
        letter = len(prompt) - 2
        values[letter] = math.log(p_a if prompt[letter] == "A" else 1 - p_a)
        return {"tokens": list(prompt) + ["x"], "token_logprobs": values, "text_offset": list(range(len(prompt) + 1))}

    def chat(self, body: dict) -> dict:
        text = "\n".join(m["content"] for m in body["messages"])
        if body.get("logprobs"):
            p_a = option_a_probability(text, self.prefer_a)
            top = [{"token": "A", "logprob": math.log(p_a * 0.8)}, {"token": "(A", "logprob": math.log(p_a * 0.2)},
                   {"token": " B", "logprob": math.log(1 - p_a)}, {"token": "The", "logprob": -9.0}]
            content = [{"token": "A", "logprob": top[0]["logprob"], "top_logprobs": top[: body["top_logprobs"]]}]
            return {"choices": [{"index": 0, "message": {"role": "assistant", "content": "A"},
                                 "logprobs": {"content": content}}]}
        reply = stub_text(body["messages"], body.get("seed"))
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}]}
