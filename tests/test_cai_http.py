"""The OpenAI-compatible feedback backend against a stub server on 127.0.0.1: completions (batched, with
echoed logprobs) and chat (top_logprobs), timeouts, retries with back-off, the concurrency limit, the
response cache, and ``alignkit cai label`` end to end through it on a planted preference."""

import dataclasses
import json
import math

import pytest
from cai_helpers import StubServer, stub_text
from helpers import planted_pairs, write_jsonl

from alignkit.cli import main
from alignkit.config import GenerationConfig
from alignkit.errors import AlignkitError
from alignkit.feedback.backends import build_backend
from alignkit.feedback.cache import RequestCache, request_key
from alignkit.feedback.config import FeedbackModelConfig
from alignkit.feedback.constitution import Principle
from alignkit.feedback.http_backend import OpenAIBackend
from alignkit.feedback.prompts import OPTIONS, comparison_query, completion_text

GEN = GenerationConfig(max_new_tokens=16, temperature=0.7, batch_size=2, seed=3)
PRINCIPLE = Principle("p", comparison="Which is better?")
CHATS = [({"role": "user", "content": f"question {i}"},) for i in range(5)]


@pytest.fixture
def server():
    with StubServer() as stub:
        yield stub


def backend(stub, **kwargs):
    settings = {"timeout": 5.0, "max_retries": 3, "backoff": 0.01, "concurrency": 2, **kwargs}
    return OpenAIBackend(stub.base_url, "stub-model", **settings)


def comparisons():
    """Two comparison chats: the planted reply first, then second."""
    prompt = ({"role": "user", "content": "Tell me a fruit"},)
    return [comparison_query(prompt, "a banana", "a stone", PRINCIPLE),
            comparison_query(prompt, "a stone", "a banana", PRINCIPLE)]


def test_completions_generate_in_batches_in_order(server):
    texts = backend(server).generate(CHATS, GEN)
    assert texts == [stub_text(completion_text(chat), 3) for chat in CHATS]
    assert server.requests == 3  # 5 prompts, 2 per request (the server answers them in reverse order)
    prompts = [completion_text(chat) for chat in CHATS]  # requests run 2 at a time, so they arrive in any order
    assert sorted(body["prompt"] for body in server.bodies) == [prompts[0:2], prompts[2:4], prompts[4:]]
    for body in server.bodies:
        assert (body["max_tokens"], body["temperature"], body["seed"], body["model"]) == (16, 0.7, 3, "stub-model")
    assert completion_text(CHATS[0]) == "\n\nHuman: question 0\n\nAssistant:"


def test_chat_generate_sends_one_chat_per_request(server):
    texts = backend(server, api="chat").generate(CHATS[:3], GEN)
    assert texts == [stub_text(list(chat), 3) for chat in CHATS[:3]]
    assert server.requests == 3
    assert sorted(body["messages"][0]["content"] for body in server.bodies) == [c[0]["content"] for c in CHATS[:3]]


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_option_scores_favour_the_planted_reply(server, api):
    scores = backend(server, api=api).option_logprobs(comparisons(), OPTIONS, GEN)
    assert scores[0] == pytest.approx([math.log(0.9), math.log(0.1)])
    assert scores[1] == pytest.approx([math.log(0.1), math.log(0.9)])
    if api == "completions":
        assert server.bodies[0]["echo"] is True and server.bodies[0]["prompt"][0].endswith("Assistant: (A)")


def test_chat_option_missing_from_top_logprobs_gets_the_smallest_listed(server):
    scores = backend(server, api="chat", top_logprobs=2).option_logprobs(comparisons()[:1], OPTIONS, GEN)
    assert scores[0] == pytest.approx([math.log(0.9), math.log(0.9 * 0.2)])  # (B) absent: the floor


def test_api_key_is_sent_as_a_bearer_token(monkeypatch):
    with StubServer(api_key="sekrit") as stub:
        with pytest.raises(AlignkitError, match="HTTP 401"):
            backend(stub).generate(CHATS[:1], GEN)
        monkeypatch.setenv("STUB_KEY", "sekrit")
        config = FeedbackModelConfig(backend="openai", model="m", base_url=stub.base_url, api_key_env="STUB_KEY",
                                     cache=False)
        assert build_backend(config, "unused").generate(CHATS[:1], GEN) == [stub_text(completion_text(CHATS[0]), 3)]


def test_a_timed_out_request_is_retried(server):
    server.script = [("sleep", 1.0)]
    client = backend(server, timeout=0.3)
    assert client.generate(CHATS[:1], GEN) == [stub_text(completion_text(CHATS[0]), 3)]
    assert (server.requests, client.requests, client.retries) == (2, 2, 1)


def test_retries_back_off_exponentially_and_honour_retry_after(server):
    waits = []
    server.script = [("status", 503), ("status", 500), ("status", 429, 2), ("status", 502)]
    client = backend(server, backoff=0.5, max_retries=4, sleep=waits.append)
    assert client.generate(CHATS[:1], GEN) == [stub_text(completion_text(CHATS[0]), 3)]
    assert waits == [0.5, 1.0, 2.0, 4.0] and server.requests == 5
    server.script = [("status", 429, 3)]
    waits.clear()
    backend(server, backoff=0.5, sleep=waits.append).generate(CHATS[1:2], GEN)
    assert waits == [3.0]  # Retry-After longer than the back-off


def test_giving_up_names_the_endpoint_and_the_problem(server):
    server.script = [("status", 503)] * 3
    with pytest.raises(AlignkitError, match=r"/v1/completions: HTTP 503.*gave up after 3 attempts"):
        backend(server, max_retries=2).generate(CHATS[:1], GEN)


def test_a_client_error_is_not_retried(server):
    server.script = [("status", 400)]
    with pytest.raises(AlignkitError, match="HTTP 400"):
        backend(server).generate(CHATS[:1], GEN)
    assert server.requests == 1


def test_an_unreachable_endpoint_is_retried_then_reported():
    waits = []
    client = OpenAIBackend("http://127.0.0.1:9/v1", "m", max_retries=2, backoff=0.01, sleep=waits.append)
    with pytest.raises(AlignkitError, match=r"127\.0\.0\.1:9/v1/completions: Connect.*gave up after 3 attempts"):
        client.generate(CHATS[:1], GEN)
    assert waits == [0.01, 0.02]


def test_concurrency_is_limited(server):
    server.delay = 0.1
    backend(server, api="chat", concurrency=3).generate([CHATS[0]] * 12, GEN)
    assert server.requests == 12 and 2 <= server.max_in_flight <= 3


def test_cache_answers_a_rerun_without_requests(server, tmp_path):
    first = backend(server, cache=RequestCache(tmp_path / "cache"))
    replies = first.generate(CHATS, GEN)
    scores = first.option_logprobs(comparisons(), OPTIONS, GEN)
    sent = server.requests
    again = backend(server, cache=RequestCache(tmp_path / "cache"))
    assert again.generate(CHATS, GEN) == replies
    assert again.option_logprobs(comparisons(), OPTIONS, GEN) == scores
    assert server.requests == sent and again.requests == 0 and again.cache_hits == sent
    again.generate(CHATS[:1], dataclasses.replace(GEN, seed=4))  # another request: a miss
    assert server.requests == sent + 1


def test_cache_key_depends_on_the_request_and_a_corrupt_entry_is_a_miss(server, tmp_path):
    body = {"model": "m", "prompt": ["x"]}
    assert request_key("http://a/v1/completions", body) == request_key("http://a/v1/completions", dict(body))
    assert request_key("http://a/v1/completions", body) != request_key("http://b/v1/completions", body)
    assert request_key("http://a/v1/completions", body) != request_key("http://a/v1/completions", {**body, "seed": 1})
    cache = RequestCache(tmp_path)
    client = backend(server, cache=cache)
    client.generate(CHATS[:1], GEN)
    (entry,) = list(tmp_path.glob("*/*.json"))
    entry.write_text("{not json")
    client.generate(CHATS[:1], GEN)
    assert server.requests == 2 and json.loads(entry.read_text())["choices"]


def test_a_missing_endpoint_is_a_clear_error():
    with pytest.raises(AlignkitError, match="feedback.base_url"):
        build_backend(FeedbackModelConfig(backend="openai", base_url=None), "unused")


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_cai_label_through_the_endpoint_agrees_with_a_planted_preference(server, tmp_path, api, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = write_jsonl(tmp_path / "pairs.jsonl", planted_pairs(24))
    args = ["cai", "label", "--set", f"output_dir={tmp_path / 'out'}", "--set", f"data.train={data}",
            "--set", "feedback.backend=openai", "--set", f"feedback.base_url={server.base_url}",
            "--set", f"feedback.api={api}", "--set", "feedback.backoff=0.01", "--set", "generation.batch_size=4"]
    assert main(args) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["num_pairs"] == 21  # 24 less the 10% held out (rounded up)
    assert report["agreement"] == 1.0 and report["agreement_without_swap"] == 1.0
    assert report["position_bias_rate"] == 0.0 and report["option_a_rate"] == 0.5
    assert report["requests"] > 0 and report["cache_hits"] == 0
    pairs = [json.loads(line) for line in (tmp_path / "out" / "pairs.jsonl").read_text().splitlines()]
    assert all("banana" in p["chosen"] and p["label"] == pytest.approx(0.9) for p in pairs)
    sent = server.requests
    assert main(args) == 0  # a rerun is answered by the cache
    assert server.requests == sent
    assert json.loads((tmp_path / "out" / "report.json").read_text())["cache_hits"] == report["requests"]
