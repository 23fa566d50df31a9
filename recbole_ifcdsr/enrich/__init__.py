"""LLM enrichment of item text (LLM-EMF): key terms, a summary and likely interests per item title.

``python -m recbole_ifcdsr enrich --dataset=fk_llmcdsr --backend=local`` fills an append-only cache
(``<data_path>/<name>/<name>.enrich.<backend>.jsonl``) and exports ``<name>.enrich.<backend>.tsv``
(``item_id:token<TAB>text:token_seq``) for a text feature extractor. See ``cli.py`` for options.
"""
from recbole_ifcdsr.enrich.backends import BACKENDS, BackendError, LocalBackend, OpenAIBackend, Outcome
from recbole_ifcdsr.enrich.cache import CacheError, EnrichCache, cache_path
from recbole_ifcdsr.enrich.export import HEADER, export_path, export_tsv, read_tsv
from recbole_ifcdsr.enrich.items import Item, item_file, read_items
from recbole_ifcdsr.enrich.prompt import DEFAULT_PROMPT_FILE, Prompt, PromptError, load_prompt
from recbole_ifcdsr.enrich.runner import RunSummary, enrich

__all__ = ["BACKENDS", "BackendError", "LocalBackend", "OpenAIBackend", "Outcome", "CacheError", "EnrichCache",
           "cache_path", "HEADER", "export_path", "export_tsv", "read_tsv", "Item", "item_file", "read_items",
           "DEFAULT_PROMPT_FILE", "Prompt", "PromptError", "load_prompt", "RunSummary", "enrich"]
