"""The enrichment prompt: a YAML file with a system message, a user template and generation settings.

The hash covers everything that changes the generated text (messages and settings), so a cached
text is reused only for the exact prompt that produced it.
"""
from __future__ import annotations

import hashlib
import json
import os
import string
from dataclasses import dataclass, field
from pathlib import Path


from recbole_ifcdsr.errors import ConfigError
from recbole_ifcdsr.yamlfile import read_yaml
from recbole_ifcdsr.paths import PROPERTIES_DIR

DEFAULT_PROMPT_FILE = PROPERTIES_DIR / "enrich.yaml"
PLACEHOLDERS = {"title", "domain"}
GENERATION_KEYS = {"max_tokens": int, "temperature": float, "seed": int, "repeat_penalty": float}


class PromptError(ConfigError):
    """A prompt file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str
    generation: dict = field(default_factory=dict)

    @property
    def hash(self) -> str:
        """16 hex digits of SHA-256 over the messages and generation settings."""
        blob = json.dumps({"system": self.system, "user": self.user, "generation": self.generation}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @staticmethod
    def input_hash(title: str, domain: str) -> str:
        """16 hex digits of SHA-256 over what the template is filled with: a cached text is reused only while
        its item's title and domain are the ones it was generated from."""
        return hashlib.sha256(json.dumps([title, domain]).encode()).hexdigest()[:16]

    def messages(self, title: str, domain: str) -> list[dict]:
        """Chat messages for one item (OpenAI chat format, also what llama.cpp's chat API takes)."""
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": self.user.format(title=title, domain=domain)}]


def load_prompt(path: str | os.PathLike = DEFAULT_PROMPT_FILE) -> Prompt:
    """Read and validate a prompt YAML (system, user with {title}/{domain}, generation settings)."""
    path = Path(path)
    if not path.is_file():
        raise PromptError(f"{path}: prompt file not found")
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise PromptError(f"{path}: expected a mapping with keys system, user, {', '.join(GENERATION_KEYS)}")
    unknown = set(data) - {"system", "user"} - set(GENERATION_KEYS)
    if unknown:
        raise PromptError(f"{path}: unknown keys {sorted(unknown)}")
    for key in ("system", "user"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise PromptError(f"{path}: '{key}' must be a non-empty string")
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(data["user"]) if name is not None}
    except ValueError as err:
        raise PromptError(f"{path}: bad user template ({err}); write literal braces as {{{{ }}}}") from err
    if used - PLACEHOLDERS or "title" not in used:
        raise PromptError(f"{path}: user template must use {{title}} (and may use {{domain}}), found {sorted(used)}")
    generation = {}
    for key, kind in GENERATION_KEYS.items():
        if key in data:
            try:
                generation[key] = kind(data[key])
            except (TypeError, ValueError):
                raise PromptError(f"{path}: '{key}' must be {kind.__name__}, got {data[key]!r}") from None
    if generation.get("max_tokens", 1) < 1:
        raise PromptError(f"{path}: 'max_tokens' must be at least 1")
    return Prompt(system=data["system"].strip(), user=data["user"], generation=generation)
