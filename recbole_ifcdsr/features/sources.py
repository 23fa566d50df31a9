"""Where item inputs come from: the dataset's item tokens and titles, an enriched-text file, an image
folder keyed by item token, or an image-URL list (downloaded with timeouts, retries and a cache).

A source's ``get(token)`` returns the input for one item (a text or a local image path) or raises
``ItemMissing``; the extractor masks such items and lists them in its report.
"""
from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from recbole_ifcdsr import io
from recbole_ifcdsr.data.packing import dataset_file
from recbole_ifcdsr.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")


class ItemMissing(LookupError):
    """The item has no input in this source (no title, no file, download failed): masked, not fatal."""


def read_item_file(dataset_dir: str | os.PathLike, dataset: str) -> tuple[list[str], dict[str, str]]:
    """(item tokens in file order, {token: title}) from ``<dataset_dir>/<dataset>.item`` (unpacked if needed;
    read by io.read_item_table)."""
    items = io.read_item_table(dataset_file(dataset_dir, dataset, "item"))
    return [item.token for item in items], {item.token: item.title for item in items if item.title}


def read_token_tsv(path: str | os.PathLike) -> dict[str, str]:
    """{token: value} from a two-column ``token<TAB>value`` file (a header line starting with item_id is skipped)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip() or (lineno == 1 and line.startswith("item_id")):
                continue
            token, sep, value = line.rstrip("\n").partition("\t")
            if not sep:
                raise DataError(f"{path}:{lineno}: expected 'token<TAB>value'")
            if value.strip():
                out[token] = value.strip()
    return out


class TextSource:
    """Item texts: the dataset's titles, or an enriched-text file (``token<TAB>text``) that wins where present."""

    def __init__(self, titles: dict[str, str], text_file: str | None = None):
        self.texts = dict(titles)
        self.origin = "dataset titles"
        if text_file:  # the file's texts win; an item it lacks (failed, or beyond --limit) keeps its title
            enriched = read_token_tsv(text_file)
            kept = sum(1 for token in self.texts if token not in enriched)
            self.texts.update(enriched)
            self.origin = f"text file {text_file} ({kept} items without a text there keep their title)"

    def get(self, token: str) -> str:
        text = self.texts.get(token)
        if not text:
            raise ItemMissing("no text")
        return text


class ImageFolderSource:
    """``<dir>/<token>.<jpg|png|...>`` or the first image (by name) in ``<dir>/<token>/``."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"image folder {self.directory} not found")
        self.origin = f"image folder {self.directory}"

    def get(self, token: str) -> Path:
        for suffix in IMAGE_SUFFIXES:  # upper-case suffixes too (X1.JPG), as the subfolder search allows
            for path in (self.directory / f"{token}{suffix}", self.directory / f"{token}{suffix.upper()}"):
                if path.is_file():
                    return path
        sub = self.directory / token
        if sub.is_dir():
            images = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if images:
                return images[0]
        raise ItemMissing("no image file")


class ImageUrlSource:
    """Images from ``token<TAB>url`` lines, downloaded once into a cache folder (atomic writes)."""

    def __init__(self, url_file: str | os.PathLike, cache_dir: str | os.PathLike, timeout: float = 10.0,
                 retries: int = 3, backoff: float = 1.0):
        self.urls = read_token_tsv(url_file)
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.origin = f"image URLs {url_file} (cache {self.cache_dir})"

    def cache_path(self, url: str) -> Path:
        suffix = Path(url.split("?")[0]).suffix.lower()
        return self.cache_dir / (hashlib.sha256(url.encode()).hexdigest()[:32] + (suffix if suffix in IMAGE_SUFFIXES else ""))

    def get(self, token: str) -> Path:
        url = self.urls.get(token)
        if not url:
            raise ItemMissing("no image URL")
        target = self.cache_path(url)
        if target.is_file():
            return target
        last = None
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(url, timeout=self.timeout) as response:
                    data = response.read()
                io.write_bytes(target, data)
                return target
            except urllib.error.HTTPError as e:
                last = e
                if e.code < 500 and e.code != 429:  # 404 and the like: retrying will not help
                    break
            except (urllib.error.URLError, OSError) as e:  # timeouts, refused connections, resets
                last = e
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise ItemMissing(f"download failed: {last}")


def build_source(spec: dict, titles: dict[str, str]):
    """The input source a feature spec names (image_dir / image_urls for images; titles or text_file for text)."""
    if spec.get("modality", "text") == "text":
        return TextSource(titles, spec.get("text_file"))
    if spec.get("image_dir"):
        return ImageFolderSource(spec["image_dir"])
    if spec.get("image_urls"):
        cache = spec.get("image_cache") or Path(spec["image_urls"]).with_suffix(".cache")
        return ImageUrlSource(spec["image_urls"], cache, float(spec.get("download_timeout", 10)),
                              int(spec.get("download_retries", 3)))
    raise ConfigError("an image feature needs image_dir (folder keyed by item token) or image_urls (token<TAB>url file)")
