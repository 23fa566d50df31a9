"""Enrich the items not yet in the cache, one durable record per attempt, with a progress bar."""
from __future__ import annotations

import time
from dataclasses import dataclass

from tqdm import tqdm

from recbole_ifcdsr.enrich.cache import EnrichCache
from recbole_ifcdsr.enrich.items import Item
from recbole_ifcdsr.enrich.prompt import Prompt
from recbole_ifcdsr.enrich.backends import Outcome


@dataclass
class RunSummary:
    cached: int = 0          # items already enriched by an earlier run (same backend, model, prompt)
    attempted: int = 0
    generated: int = 0
    failed: int = 0
    tokens: int = 0          # completion tokens of this run's successes
    wall_seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def seconds_per_item(self) -> float:
        return self.wall_seconds / self.attempted if self.attempted else 0.0


def input_hashes(items: list[Item]) -> dict[str, str]:
    """token -> the hash of the title and domain each item's prompt is filled with now."""
    return {item.token: Prompt.input_hash(item.title, item.domain) for item in items}


def enrich(items: list[Item], backend, prompt: Prompt, cache: EnrichCache, progress: bool = True) -> RunSummary:
    """Generate text for every item lacking a cached success under (backend, model, prompt hash) for its
    current title and domain."""
    done = cache.texts(backend.name, backend.model, prompt.hash, input_hashes(items))
    todo = [item for item in items if item.token not in done]
    summary = RunSummary(cached=len(items) - len(todo))
    if not todo:
        return summary
    params = backend.params(prompt)
    bar = tqdm(total=len(todo), unit="item", desc=f"enrich ({backend.name}: {backend.model})", disable=not progress)
    start = time.perf_counter()

    def on_result(item: Item, outcome: Outcome) -> None:
        record = {"token": item.token, "backend": backend.name, "model": backend.model, "prompt_hash": prompt.hash,
                  "input_hash": Prompt.input_hash(item.title, item.domain),
                  "tokens": outcome.tokens, "prompt_tokens": outcome.prompt_tokens, "seconds": round(outcome.seconds, 3), "attempts": outcome.attempts,
                  "params": params, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        record.update({"text": outcome.text} if outcome.text else {"error": outcome.error or "no text"})
        cache.append(record)
        summary.attempted += 1
        if outcome.text:
            summary.generated += 1
            summary.tokens += outcome.tokens or 0
        else:
            summary.failed += 1
        summary.wall_seconds = time.perf_counter() - start
        bar.set_postfix(tok_s=f"{summary.tokens_per_second:.1f}", failed=summary.failed, refresh=False)
        bar.update(1)

    try:
        with cache:
            backend.run(todo, prompt, on_result)
    finally:
        bar.close()
        summary.wall_seconds = time.perf_counter() - start
    return summary
