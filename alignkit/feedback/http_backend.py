"""A feedback backend over any OpenAI-compatible HTTP endpoint (OpenAI, vLLM, llama.cpp's server, ...).

``api="completions"`` posts to ``/completions``: chats are rendered as ``"\\n\\nHuman: ...\\n\\nAssistant:"``
text (:func:`~alignkit.feedback.prompts.completion_text`), up to ``batch_size`` prompts per request. An
option is scored exactly: the prompt followed by ``" " + option`` is sent with ``echo`` and ``logprobs``, and
the log-probabilities of the tokens that overlap the option are summed (the endpoint must return prompt
log-probabilities with echo, as vLLM and OpenAI's legacy completion models do).

``api="chat"`` posts one chat per request to ``/chat/completions``. An option is scored from the
``top_logprobs`` of the reply's first token: the tokens that spell the option's letter once spaces and
brackets are stripped ("A", " A", "(A") are summed; an option absent from the list gets the smallest listed
log-probability (an upper bound), so a model that opens its reply some other way gives both options alike.

Every request goes through :meth:`OpenAIBackend.post`: a response cache (:mod:`alignkit.feedback.cache`),
a timeout, and retries with exponential back-off (``backoff * 2**attempt`` seconds, or the server's
``Retry-After`` when longer) on timeouts, connection errors and HTTP 408, 429 and 5xx; other HTTP errors stop
at once. At most ``concurrency`` requests are in flight.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from alignkit.config import GenerationConfig
from alignkit.errors import AlignkitError
from alignkit.feedback.cache import RequestCache, request_key
from alignkit.feedback.prompts import completion_text

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0


class OpenAIBackend:
    """:class:`~alignkit.feedback.backends.FeedbackBackend` over an OpenAI-compatible endpoint (module doc).

    ``base_url`` ends before the endpoint name (e.g. ``http://127.0.0.1:8000/v1``); ``model`` is sent with
    every request; ``api_key``, when given, as a bearer token. ``requests``, ``cache_hits`` and ``retries``
    count what happened. ``sleep`` waits between retries (replaceable in tests).
    """

    def __init__(
        self, base_url: str, model: str, *, api: str = "completions", api_key: str | None = None,
        timeout: float = 60.0, max_retries: int = 4, backoff: float = 1.0, concurrency: int = 4,
        top_logprobs: int = 20, cache: RequestCache | None = None, sleep: Callable[[float], None] = time.sleep,
    ):
        if api not in ("completions", "chat"):
            raise ValueError(f"api must be 'completions' or 'chat', got {api!r}")
        self.base_url, self.model, self.api = base_url.rstrip("/"), model, api
        self.max_retries, self.backoff, self.concurrency = max_retries, backoff, concurrency
        self.top_logprobs, self.cache, self.sleep = top_logprobs, cache, sleep
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(headers=headers, timeout=timeout,
                                   limits=httpx.Limits(max_connections=concurrency))
        self.timeout = timeout
        self.requests = self.cache_hits = self.retries = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------ the backend interface

    def generate(self, queries: Sequence[tuple[dict, ...]], config: GenerationConfig) -> list[str]:
        """One reply per chat, in order (stripped of surrounding whitespace)."""
        sampling = {"max_tokens": config.max_new_tokens, "temperature": config.temperature, "top_p": config.top_p,
                    "seed": config.seed}
        if config.top_k > 0:
            sampling["top_k"] = config.top_k  # an extension (vLLM); OpenAI itself has no top-k
        if self.api == "chat":
            bodies = [{"model": self.model, "messages": list(q), **sampling} for q in queries]
            return [_choices(r, 1, "chat")[0]["message"]["content"].strip() for r in self._post_all("chat", bodies)]
        batches = _batches([completion_text(q) for q in queries], config.batch_size)
        bodies = [{"model": self.model, "prompt": batch, "stop": ["\n\nHuman:"], **sampling} for batch in batches]
        responses = self._post_all("completions", bodies)
        return [c["text"].strip() for r, b in zip(responses, batches, strict=True) for c in _choices(r, len(b))]

    def option_logprobs(
        self, queries: Sequence[tuple[dict, ...]], options: Sequence[str], config: GenerationConfig
    ) -> list[list[float]]:
        """Per chat, the log-probability of each option as the start of the reply (module doc)."""
        if self.api == "chat":
            bodies = [{"model": self.model, "messages": list(q), "max_tokens": 1, "temperature": 0.0,
                       "logprobs": True, "top_logprobs": self.top_logprobs} for q in queries]
            return [_first_token_scores(r, options) for r in self._post_all("chat", bodies)]
        texts = [completion_text(q) for q in queries]
        rows = [(text, " " + option) for text in texts for option in options]
        batches = _batches(rows, config.batch_size * len(options))
        bodies = [{"model": self.model, "prompt": [text + option for text, option in batch], "max_tokens": 1,
                   "temperature": 0.0, "echo": True, "logprobs": 1} for batch in batches]
        scores = [_echo_score(choice, text, option)
                  for response, batch in zip(self._post_all("completions", bodies), batches, strict=True)
                  for choice, (text, option) in zip(_choices(response, len(batch)), batch, strict=True)]
        return [scores[i : i + len(options)] for i in range(0, len(scores), len(options))]

    # ------------------------------------------------------------ requests

    def _post_all(self, endpoint: str, bodies: list[dict]) -> list[dict]:
        path = "/chat/completions" if endpoint == "chat" else "/completions"
        if len(bodies) <= 1 or self.concurrency == 1:
            return [self.post(path, body) for body in bodies]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda body: self.post(path, body), bodies))

    def post(self, path: str, body: dict) -> dict:
        """The JSON response to ``body`` posted to ``base_url + path``: from the cache when it holds it,
        else from the endpoint (retried as the module doc says) and then cached."""
        url = self.base_url + path
        key = request_key(url, body)
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None:
            with self._lock:
                self.cache_hits += 1
            return cached
        for attempt in range(self.max_retries + 1):
            with self._lock:
                self.requests += 1
            delay = self.backoff * 2**attempt
            try:
                response = self.client.post(url, json=body)
            except httpx.TimeoutException:
                problem = f"no response within {self.timeout:g} s"
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    data = _json(response, url)
                    if self.cache is not None:
                        self.cache.put(key, data)
                    return data
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRY_STATUS:
                    raise AlignkitError(f"feedback endpoint {url}: {problem}")
                delay = max(delay, _retry_after(response))
            if attempt < self.max_retries:
                with self._lock:
                    self.retries += 1
                self.sleep(delay)
        raise AlignkitError(f"feedback endpoint {url}: {problem} (gave up after {self.max_retries + 1} attempts)")


def _batches(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _json(response: httpx.Response, url: str) -> dict:
    try:
        data = response.json()
    except ValueError:
        raise AlignkitError(f"feedback endpoint {url}: the response is not JSON: {response.text[:200]!r}") from None
    if not isinstance(data, dict):
        raise AlignkitError(f"feedback endpoint {url}: expected a JSON object, got {response.text[:200]!r}")
    return data


def _retry_after(response: httpx.Response) -> float:
    """The server's ``Retry-After`` in seconds (capped at a minute), or 0."""
    try:
        return min(float(response.headers.get("retry-after", 0)), MAX_RETRY_AFTER)
    except ValueError:
        return 0.0


def _choices(response: dict, expected: int, api: str = "completions") -> list[dict]:
    """The response's choices in prompt order; AlignkitError when there are not ``expected`` of them."""
    choices = response.get("choices")
    if not isinstance(choices, list) or len(choices) != expected:
        got = len(choices) if isinstance(choices, list) else "no"
        raise AlignkitError(f"feedback endpoint ({api}): expected {expected} choice(s), got {got}")
    return sorted(choices, key=lambda c: c.get("index", 0))


def _echo_score(choice: dict, text: str, option: str) -> float:
    """Sum of the echoed log-probabilities of the tokens overlapping ``option`` (which follows ``text``)."""
    logprobs = choice.get("logprobs") or {}
    tokens, values, offsets = (logprobs.get(k) for k in ("tokens", "token_logprobs", "text_offset"))
    if not tokens or values is None or offsets is None:
        raise AlignkitError("feedback endpoint (completions): no echoed logprobs in the response; scoring options "
                            "needs an endpoint that returns prompt log-probabilities with echo (e.g. vLLM), or "
                            "feedback.api: chat")
    start, end = len(text), len(text) + len(option)
    total, found = 0.0, False
    for token, value, offset in zip(tokens, values, offsets, strict=True):
        if offset < end and offset + len(token) > start:
            if value is None:
                raise AlignkitError("feedback endpoint (completions): an option token has no log-probability")
            total, found = total + value, True
    if not found:
        raise AlignkitError(f"feedback endpoint (completions): no echoed token covers the option {option!r}")
    return total


def _letter(text: str) -> str:
    return text.strip().strip("()").strip()


def _first_token_scores(response: dict, options: Sequence[str]) -> list[float]:
    """Per option, the log of the summed probability of the first-token alternatives spelling it."""
    try:
        top = _choices(response, 1, "chat")[0]["logprobs"]["content"][0]["top_logprobs"]
    except (KeyError, IndexError, TypeError):
        raise AlignkitError("feedback endpoint (chat): no top_logprobs in the response; the endpoint must support "
                            "logprobs and top_logprobs") from None
    if not top:
        raise AlignkitError("feedback endpoint (chat): the response lists no top_logprobs")
    floor = min(t["logprob"] for t in top)
    scores = []
    for option in options:
        matches = [t["logprob"] for t in top if _letter(t["token"]) == _letter(option)]
        scores.append(math.log(sum(math.exp(v) for v in matches)) if matches else floor)
    return scores
