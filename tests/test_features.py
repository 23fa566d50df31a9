"""Item features on real inputs: ABO product JPEGs through PIL and open_clip preprocessing (a tiny open_clip
config built here, random init: it tests the pipeline, not semantics), MiniLM on real dataset titles,
resume after a SIGKILL, URL downloads from a local HTTP server, the float_seq interop and first-use builds."""
from __future__ import annotations

import errno
import functools
import json
import http.server
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA_PATH, first_users_rows

from recbole_ifcdsr.features.auto import ensure_feature
from recbole_ifcdsr.features.encoders import (EncoderUnavailable, SentenceTextEncoder, _cached_weights,
                                              resolve_clip_weights)
from recbole_ifcdsr.features.extract import ExtractionJob, extract
from recbole_ifcdsr.features.sources import read_item_file
from recbole_ifcdsr.features.store import (FeatureStoreError, check_stores_fit, export_float_seq, feature_path,
                                           import_float_seq, load_aligned, load_features, save_features)
from recbole_ifcdsr.paths import REPO_ROOT

ABO = Path(__file__).parent / "data" / "abo"
ASINS = ["B074M5HPBD", "B0799CK52K", "B07GTFSCHB"]
FEATURES_CLI = [sys.executable, "-m", "recbole_ifcdsr", "features"]


def clip_spec(tiny_clip, **extra) -> dict:
    return {"modality": "image", "encoder": "clip", "clip_model": "tiny-clip", "pretrained": "random",
            "model_config": tiny_clip, "batch_size": 2, "chunk_size": 2, "device": "cpu", **extra}


def make_dataset(root: Path, name: str, tokens: list, titles: dict | None = None) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    titles = titles or {}
    rows = "".join(f"{t}\tX\tA\t{titles.get(t, '')}\n" for t in tokens)
    (directory / f"{name}.item").write_text("item_id:token\tdomain:token\tdomain_name:token\ttitle:token_seq\n" + rows)
    return directory


@pytest.fixture
def abo_images(tmp_path) -> Path:
    """The real ABO JPEGs keyed by ASIN, plus a truncated JPEG and a text file posing as one."""
    images = tmp_path / "images"
    shutil.copytree(ABO, images, ignore=shutil.ignore_patterns("*.md"))
    real = (ABO / ASINS[1] / "25ffa37c.jpg").read_bytes()
    (images / "TRUNCATED.jpg").write_bytes(real[: len(real) // 2])
    (images / "NOTANIMAGE.jpg").write_text("not a jpeg")
    return images


@pytest.mark.integration
def test_real_jpegs_encoded_missing_and_corrupt_masked(tmp_path, abo_images, tiny_clip):
    tokens = ASINS + ["TRUNCATED", "NOTANIMAGE", "NOFILE"]
    make_dataset(tmp_path, "abo", tokens)
    report = extract(ExtractionJob(str(tmp_path / "abo"), "abo", "image", clip_spec(tiny_clip, image_dir=str(abo_images))),
                     show_progress=False)
    assert (report.encoded, report.missing, report.corrupt) == (3, 1, 2)
    assert {(t, s) for t, s, _ in report.problems} == {("TRUNCATED", "corrupt"), ("NOTANIMAGE", "corrupt"),
                                                       ("NOFILE", "missing")}
    listed = (tmp_path / "abo" / "abo.image.report.tsv").read_text().splitlines()
    assert listed[0] == "item_id\tstatus\treason" and len(listed) == 4
    stored_tokens, vectors, mask, meta = load_features(feature_path(tmp_path / "abo", "abo", "image"))
    assert stored_tokens.tolist() == tokens and mask.tolist() == [True] * 3 + [False] * 3
    assert {"encoder", "weights", "dim", "preprocessing", "date"} <= set(meta) and meta["dim"] == 32
    assert "random-init" in meta["weights"] and "Resize(size=64" in meta["preprocessing"]
    assert not (tmp_path / "abo" / "abo.image.npz.partial").exists()

    # The same images one at a time through PIL and open_clip's own preprocessing give the same vectors.
    import open_clip
    import torch
    from PIL import Image

    open_clip.add_model_config(tiny_clip)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("tiny-clip", pretrained=None)
    model.eval()
    for i, asin in enumerate(ASINS):
        path = next((ABO / asin).glob("*.jpg"))
        with torch.no_grad():
            one = model.encode_image(preprocess(Image.open(path).convert("RGB"))[None], normalize=True)[0].numpy()
        np.testing.assert_allclose(vectors[i], one, atol=1e-5)
    assert len({v.tobytes() for v in vectors[:3]}) == 3  # distinct images, distinct vectors


HELD_CHUNK = 3  # the killed run is stopped inside this chunk (chunks of 8 items)
FINISHED_PART = re.compile(r"part-(\d{6})\.npz")  # not the writer's part-N.<pid>.tmp.npz


def _kill_when_blocked_on(cmd: list, fifo: Path, hang_guard_s: float = 900) -> None:
    """Start ``cmd`` and SIGKILL it while it is blocked reading ``fifo`` (a named pipe posing as an image):
    the kill lands at a known place, whatever the machine's speed or load."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    started = time.monotonic()
    writer = None
    while writer is None:
        try:  # succeeds only once the extractor has opened the pipe for reading
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno != errno.ENXIO:
                raise
            if proc.poll() is not None:
                pytest.fail(f"extraction ended (exit {proc.returncode}) before reaching the held image: "
                            f"{proc.stderr.read()[-2000:]}")
            assert time.monotonic() - started < hang_guard_s, "extraction never reached the held image (hung?)"
            time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # it is blocked in read(): no byte of the held image was sent
    proc.wait()
    os.close(writer)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.e2e
def test_resume_after_kill_is_byte_identical(tmp_path, tiny_clip):
    """A run killed mid-way resumes: the finished parts are not recomputed and the store is byte-identical
    to a straight run's. Nothing here depends on how far the killed run got before the kill."""
    images = tmp_path / "images"
    images.mkdir()
    sources = [next((ABO / a).glob("*.jpg")) for a in ASINS]
    tokens = [f"T{i:04d}" for i in range(400)]
    held = 8 * HELD_CHUNK + 2  # an item that has an image
    for i, token in enumerate(tokens):
        if i % 37 != 5 and i != held:  # some items have no image
            (images / f"{token}.jpg").symlink_to(sources[i % 3])
    (images / tokens[held]).mkdir()  # <token>/ folder form: its image is a named pipe for the killed run
    fifo = images / tokens[held] / "a.jpg"
    os.mkfifo(fifo)
    for name in ("killed", "straight"):
        make_dataset(tmp_path, name, tokens)
    args = ["extract", "--feature=image", "--modality=image", "--encoder=clip", "--clip_model=tiny-clip",
            "--pretrained=random", f"--model_config={tiny_clip}", f"--image_dir={images}", "--batch_size=4",
            "--chunk_size=8", "--device=cpu", "--workers=1", f"--data_path={tmp_path}", "--no_progress"]
    partial = tmp_path / "killed" / "killed.image.npz.partial"
    _kill_when_blocked_on(FEATURES_CLI + args + ["--dataset=killed"], fifo)
    assert not (tmp_path / "killed" / "killed.image.npz").exists()
    finished = sorted(int(m.group(1)) for p in partial.iterdir() if (m := FINISHED_PART.fullmatch(p.name)))
    assert finished and HELD_CHUNK not in finished  # some parts done, the held chunk's not

    fifo.unlink()
    fifo.symlink_to(sources[held % 3])  # the held item's image is a real one from now on
    resumed = subprocess.run(FEATURES_CLI + args + ["--dataset=killed"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming killed.image.npz: {len(finished)} of 50 chunks ({8 * len(finished)} items) already done" \
        in resumed.stderr
    assert f"this run processed {400 - 8 * len(finished)} items" in resumed.stdout  # finished chunks not recomputed
    straight = subprocess.run(FEATURES_CLI + args + ["--dataset=straight"], capture_output=True, text=True,
                              cwd=REPO_ROOT)
    assert straight.returncode == 0, straight.stderr

    a = load_features(tmp_path / "killed" / "killed.image.npz")
    b = load_features(tmp_path / "straight" / "straight.image.npz")
    for x, y in zip(a[:3], b[:3]):
        assert x.tobytes() == y.tobytes()
    assert int(a[2].sum()) == 400 - len([i for i in range(400) if i % 37 == 5])
    drop = ("date", "dataset")
    assert {k: v for k, v in a[3].items() if k not in drop} == {k: v for k, v in b[3].items() if k not in drop}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.integration
def test_image_urls_downloaded_cached_and_failures_masked(tmp_path, tiny_clip):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(ABO)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    urls = {a: f"{base}/{a}/{next((ABO / a).glob('*.jpg')).name}" for a in ASINS}
    urls["GONE"] = f"{base}/nope.jpg"  # 404: not retried
    url_file = tmp_path / "urls.tsv"
    url_file.write_text("".join(f"{t}\t{u}\n" for t, u in urls.items()))
    make_dataset(tmp_path, "web", list(urls) + ["NOURL"])
    spec = clip_spec(tiny_clip, image_urls=str(url_file), image_cache=str(tmp_path / "cache"), download_retries=1)
    job = ExtractionJob(str(tmp_path / "web"), "web", "image", spec)
    try:
        first = extract(job, show_progress=False)
    finally:
        server.shutdown()
        server.server_close()
    assert (first.encoded, first.missing, first.corrupt) == (3, 2, 0)
    assert any("HTTP Error 404" in reason for _, _, reason in first.problems)
    assert len(list((tmp_path / "cache").iterdir())) == 3
    vectors = load_features(job.path)[1].copy()
    second = extract(job, overwrite=True, show_progress=False)  # server gone: served from the cache
    assert second.encoded == 3 and load_features(job.path)[1].tobytes() == vectors.tobytes()


@pytest.fixture(scope="module")
def minilm():
    return SentenceTextEncoder(device="cpu")


def _cos(encoder, texts):
    v = encoder.encode(texts)
    return v @ v.T


@pytest.mark.parametrize("dataset, same_a, same_b, other", [
    ("fk_abxi", "B0005ZX5PM", "B0009F3QKM", "B00005B5ZV"),      # two green teas vs a whistling tea kettle
    ("fk_abxi", "B00005B5ZV", "B00004RD9L", "B0009F3QKM"),      # two teakettles vs a green tea
    ("fk_llmcdsr", "B001E5E0D8", "B000G1X45G", "B0000CFNJ0"),   # two ground coffees vs a knife block
    ("fk_llmcdsr", "B0000CFNJ0", "B0000DZDHB", "B001E5E0D8"),   # two knife holders vs a ground coffee
])
@pytest.mark.integration
def test_minilm_same_product_type_closer_on_real_titles(minilm, dataset, same_a, same_b, other):
    _, titles = read_item_file(DATA_PATH / dataset, dataset)
    sims = _cos(minilm, [titles[same_a], titles[same_b], titles[other]])
    assert sims[0, 1] > sims[0, 2] + 0.1, (titles[same_a], titles[same_b], titles[other], sims)


@pytest.mark.integration
def test_ensure_feature_builds_minilm_store_once(tmp_path, minilm, caplog):
    _, titles = read_item_file(DATA_PATH / "fk_llmcdsr", "fk_llmcdsr")
    tokens = list(titles)[:20] + ["UNTITLED"]
    make_dataset(tmp_path, "tiny", tokens, titles)
    config = {"data_path": str(tmp_path / "tiny"), "show_progress": False,
              "item_features": {"text_minilm": {"modality": "text", "encoder": "minilm", "chunk_size": 8}}}
    with caplog.at_level(logging.INFO):
        path = ensure_feature(config, "tiny", "text_minilm")
    assert path == feature_path(tmp_path / "tiny", "tiny", "text_minilm") and path.is_file()
    assert "building it now (first use)" in caplog.text
    stored_tokens, vectors, mask, meta = load_features(path)
    assert mask.tolist() == [True] * 20 + [False] and meta["dim"] == 384 and "MiniLM" in meta["encoder"]
    np.testing.assert_allclose(vectors[:3], minilm.encode([titles[t] for t in tokens[:3]]), atol=1e-5)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert ensure_feature(config, "tiny", "text_minilm") == path
    assert "building" not in caplog.text
    assert ensure_feature(config, "tiny", "not_configured") is None


def text_store_config(data_dir: Path, dataset: str) -> dict:
    """What check_stores_fit reads of a run's config: LLMEMF's text table switched on, image table off."""
    return {"image_feature": None, "image_fusion": False, "text_feature": "text_minilm", "text_fusion": True,
            "n_heads": 2, "model": "LLMEMF", "data_path": str(data_dir / dataset), "dataset": dataset,
            "item_features": None}


@pytest.mark.integration
def test_a_store_built_from_other_titles_items_or_text_file_is_refused(tmp_path, caplog):
    """A store is reused whenever its file exists: one built before a title, the item list or the enriched
    text file changed was read as it was (renamed items kept the old title's vector, added items had none).
    Its meta now records what it was built from, and a run or a rebuild without --overwrite refuses it."""
    _, titles = read_item_file(DATA_PATH / "fk_llmcdsr", "fk_llmcdsr")
    tokens = list(titles)[:5]
    text_file = tmp_path / "enriched.tsv"
    text_file.write_text(f"item_id\ttext\n{tokens[0]}\tGround coffee. Dark roast, smooth and bold.\n")
    directory = make_dataset(tmp_path, "tiny", tokens, titles)
    item_file = directory / "tiny.item"
    spec = {"modality": "text", "encoder": "minilm", "text_file": str(text_file)}
    job = ExtractionJob(str(directory), "tiny", "text_minilm", spec)
    extract(job, show_progress=False)
    config = text_store_config(tmp_path, "tiny")
    token2id = {"[PAD]": 0, **{t: i + 1 for i, t in enumerate(tokens)}}
    with caplog.at_level(logging.WARNING):
        assert check_stores_fit(config, token2id, 6) == [job.path]
    assert not [r for r in caplog.records if r.name.startswith("recbole_ifcdsr") and r.levelno >= logging.WARNING]
    meta = load_features(job.path)[3]
    assert meta["inputs"]["n_items"] == 5 and meta["inputs"]["text_file"] == str(text_file)

    original = item_file.read_text()
    item_file.write_text(original.replace(titles[tokens[1]], titles[tokens[1]] + " (2 pack)"))
    texts_differ = f"its item texts differ from the ones {item_file}'s titles and {text_file} give now"
    with pytest.raises(FeatureStoreError, match=re.escape(f"{job.path}: {texts_differ}; rebuild it (python -m "
                                                          f"recbole_ifcdsr features extract --dataset=tiny")):
        check_stores_fit(config, token2id, 6)
    with pytest.raises(FeatureStoreError, match=re.escape(f"{texts_differ}; --overwrite rebuilds it")):
        extract(job, show_progress=False)
    item_file.write_text(original)
    text_file.write_text(f"item_id\ttext\n{tokens[0]}\tGround coffee. Light roast.\n")
    with pytest.raises(FeatureStoreError, match=re.escape(texts_differ)):
        check_stores_fit(config, token2id, 6)
    item_file.write_text(original + "EXTRA\tX\tA\tA new tea\n")
    with pytest.raises(FeatureStoreError, match=re.escape(f"built for another item list (5 items; {item_file} lists 6")):
        check_stores_fit(config, token2id, 6)

    extract(job, overwrite=True, show_progress=False)
    assert check_stores_fit(config, {**token2id, "EXTRA": 6}, 7) == [job.path]
    text_file.unlink()  # nothing left to compare the texts with: a warning, the store is used
    with caplog.at_level(logging.WARNING):
        assert check_stores_fit(config, {**token2id, "EXTRA": 6}, 7) == [job.path]
    assert f"the text file it was built from, {text_file}, is gone" in caplog.text


@pytest.mark.unit
def test_a_store_without_an_inputs_record_is_used_with_a_warning(tmp_path, caplog):
    """Stores built before inputs were recorded (the shipped tables' title stores) still load."""
    directory = make_dataset(tmp_path, "d", ["A", "B"], {"A": "Green tea", "B": "Tea pot"})
    path = feature_path(directory, "d", "text_minilm")
    save_features(path, ["A", "B"], np.ones((2, 4), dtype=np.float32), [True, True], {"encoder": "test"})
    with caplog.at_level(logging.WARNING):
        assert check_stores_fit(text_store_config(tmp_path, "d"), {"[PAD]": 0, "A": 1, "B": 2}, 3) == [path]
    assert "it records no inputs (built before stores recorded them), so it cannot be checked" in caplog.text


@pytest.mark.unit
def test_an_inputs_record_without_its_hashes_is_never_read_as_checked(tmp_path):
    from recbole_ifcdsr.features.inputs import records_inputs, stale_reason

    directory = make_dataset(tmp_path, "d", ["A", "B"], {"A": "Green tea", "B": "Tea pot"})
    assert stale_reason({"inputs": {"items_sha256": "x"}}, directory, "d").startswith(
        "it was built for another item list (? items; ")
    assert records_inputs({"inputs": {}}, directory).startswith("it records no inputs")
    assert records_inputs({"inputs": {"imported_from": "x.item"}}, directory) is None


@pytest.mark.integration
def test_a_text_store_must_come_from_the_text_file_its_spec_names(tmp_path):
    """A store built from the titles was reused when the spec (the extract command's or a run's item_features)
    named an enriched file, and vice versa. A text file inside the dataset folder is recorded relative to it,
    so a copied dataset folder checks its own copy."""
    _, titles = read_item_file(DATA_PATH / "fk_llmcdsr", "fk_llmcdsr")
    tokens = list(titles)[:4]
    directory = make_dataset(tmp_path, "tiny", tokens, titles)
    (directory / "enriched.tsv").write_text(f"item_id\ttext\n{tokens[0]}\tGround coffee. Dark roast.\n")
    plain = {"modality": "text", "encoder": "minilm"}
    enriched = {**plain, "text_file": str(directory / "enriched.tsv")}
    extract(ExtractionJob(str(directory), "tiny", "text_minilm", plain), show_progress=False)
    with pytest.raises(FeatureStoreError, match=re.escape("it was built from the titles alone, and its spec names "
                                                          "enriched.tsv; --overwrite rebuilds it")):
        extract(ExtractionJob(str(directory), "tiny", "text_minilm", enriched), show_progress=False)
    config = {**text_store_config(tmp_path, "tiny"), "item_features": {"text_minilm": enriched}}
    token2id = {"[PAD]": 0, **{t: i + 1 for i, t in enumerate(tokens)}}
    with pytest.raises(FeatureStoreError, match="it was built from the titles alone, and its spec names enriched.tsv"):
        check_stores_fit(config, token2id, 5)

    extract(ExtractionJob(str(directory), "tiny", "text_minilm", enriched), overwrite=True, show_progress=False)
    assert load_features(directory / "tiny.text_minilm.npz")[3]["inputs"]["text_file"] == "enriched.tsv"
    assert check_stores_fit(config, token2id, 5) == [directory / "tiny.text_minilm.npz"]
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy / "tiny")
    (copy / "tiny" / "enriched.tsv").write_text(f"item_id\ttext\n{tokens[0]}\tGround coffee. Light roast.\n")
    copied = {**text_store_config(copy, "tiny"), "item_features": None}
    with pytest.raises(FeatureStoreError, match=re.escape(f"and {copy / 'tiny' / 'enriched.tsv'} give now")):
        check_stores_fit(copied, token2id, 5)
    assert check_stores_fit({**config, "item_features": None}, token2id, 5)  # the original is untouched


@pytest.mark.unit
def test_a_partial_folder_left_before_inputs_were_recorded_is_resumed(tmp_path):
    """Its chunks were computed by the same job; only the signature's new key is missing."""
    from recbole_ifcdsr.features.extract import _open_partial

    job = ExtractionJob(str(tmp_path), "d", "image", {"modality": "image"})
    signature = {"dataset": "d", "feature": "image", "tokens_sha256": "t", "inputs": {"items_sha256": "i"}}
    job.partial_dir.mkdir(parents=True)
    (job.partial_dir / "manifest.json").write_text(json.dumps({"signature": {"dataset": "d", "feature": "image",
                                                                             "tokens_sha256": "t"}, "date": "then"}))
    (job.partial_dir / "part-000000.npz").write_bytes(b"kept")
    assert _open_partial(job, signature)["date"] == "then" and (job.partial_dir / "part-000000.npz").is_file()
    assert _open_partial(job, {**signature, "tokens_sha256": "other"})["date"] != "then"  # another job: discarded
    assert not (job.partial_dir / "part-000000.npz").exists()


@pytest.mark.unit
def test_a_bad_feature_spec_stops_the_run_instead_of_turning_the_branch_off(tmp_path):
    """Only what this machine lacks (an encoder's weights, a file) lets the run go on without the store; a
    misspelt encoder was logged as a warning and the model ran without its text branch, exit 0."""
    from recbole_ifcdsr.errors import ConfigError

    make_dataset(tmp_path, "d", ["A", "B"], {"A": "Green tea", "B": "Tea pot"})
    config = {"data_path": str(tmp_path / "d"), "show_progress": False,
              "item_features": {"text": {"modality": "text", "encoder": "minilmm"}}}
    with pytest.raises(ConfigError, match="Unknown encoder 'minilmm'. Valid encoders: clip, minilm"):
        ensure_feature(config, "d", "text")


@pytest.mark.unit
def test_an_enriched_text_file_wins_and_titles_fill_its_gaps(tmp_path):
    """An item the enrichment lacks (failed, or beyond --limit) keeps its title; before, the file replaced the
    titles and such items had no text vector at all."""
    from recbole_ifcdsr.features.sources import ItemMissing, TextSource

    text_file = tmp_path / "enriched.tsv"
    text_file.write_text("item_id\ttext\nA\tGreen tea. A light, grassy loose-leaf tea.\n")
    source = TextSource({"A": "Green tea", "B": "Tea pot"}, str(text_file))
    assert source.get("A") == "Green tea. A light, grassy loose-leaf tea." and source.get("B") == "Tea pot"
    assert source.origin == f"text file {text_file} (1 items without a text there keep their title)"
    with pytest.raises(ItemMissing, match="no text"):
        source.get("C")


@pytest.mark.unit
def test_an_image_file_with_an_upper_case_suffix_is_found(tmp_path):
    from recbole_ifcdsr.features.sources import ImageFolderSource

    (tmp_path / "X1.JPG").write_bytes(b"not decoded here")
    (tmp_path / "X2").mkdir()
    (tmp_path / "X2" / "front.PNG").write_bytes(b"not decoded here")
    source = ImageFolderSource(tmp_path)
    assert source.get("X1") == tmp_path / "X1.JPG" and source.get("X2") == tmp_path / "X2" / "front.PNG"


@pytest.mark.integration
def test_clip_without_weights_stops_with_instructions(tmp_path, caplog):
    with pytest.raises(EncoderUnavailable, match="not found"):
        resolve_clip_weights("ViT-B-32", str(tmp_path / "missing.safetensors"))
    with pytest.raises(EncoderUnavailable, match="not an open_clip tag"):
        resolve_clip_weights("ViT-B-32", "no_such_tag")
    with pytest.raises(EncoderUnavailable, match="no weights given"):
        resolve_clip_weights("ViT-B-32", None)
    if _cached_weights("ViT-B-32", "laion2b_s34b_b79k"):
        pytest.skip("ViT-B-32 weights are cached on this machine")
    with pytest.raises(EncoderUnavailable, match="--pretrained=/path/to/open_clip_model.safetensors"):
        resolve_clip_weights("ViT-B-32", "laion2b_s34b_b79k", allow_download=False)
    make_dataset(tmp_path, "d", ["A"])
    config = {"data_path": str(tmp_path / "d"), "show_progress": False, "item_features": {
        "image": {"modality": "image", "encoder": "clip", "pretrained": "laion2b_s34b_b79k", "image_dir": str(ABO)}}}
    with caplog.at_level(logging.WARNING):
        assert ensure_feature(config, "d", "image") is None
    assert "not built" in caplog.text and "not on this machine" in caplog.text
    assert not feature_path(tmp_path / "d", "d", "image").exists()


@pytest.mark.e2e
def test_cli_without_weights_is_one_line_error(tmp_path):
    make_dataset(tmp_path, "d", ["A"])
    done = subprocess.run(FEATURES_CLI + ["extract", "--dataset=d", "--feature=image", "--modality=image",
                                          "--encoder=clip", f"--pretrained={tmp_path / 'nope.pt'}",
                                          f"--image_dir={ABO}", f"--data_path={tmp_path}"],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: CLIP checkpoint file")


@pytest.mark.unit
def test_float_seq_roundtrip_and_store_errors(tmp_path):
    path = tmp_path / "d.f.npz"
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    save_features(path, ["a", "b", "c"], vectors, np.array([True, False, True]), {"encoder": "test"})
    item_file = tmp_path / "d.f.item"
    assert export_float_seq(path, item_file, "img") == 2
    tokens, back, mask = import_float_seq(item_file, "img")
    assert tokens == ["a", "c"] and mask.all() and back.tobytes() == vectors[[0, 2]].tobytes()
    item_file.write_text(item_file.read_text() + "\n")  # a trailing blank line holds no item (it made token '')
    assert import_float_seq(item_file, "img")[0] == ["a", "c"]
    token2id = {"[PAD]": 0, "a": 1, "b": 2, "c": 3}
    aligned, amask, meta = load_aligned(path, token2id, 4, dim=4)
    assert amask.tolist() == [False, True, False, True] and meta["dim"] == 4
    with pytest.raises(FeatureStoreError, match="dimension 4, expected 8"):
        load_aligned(path, token2id, 4, dim=8)
    with pytest.raises(FeatureStoreError, match="item id 3 but the dataset has 3 ids"):
        load_aligned(path, token2id, 3)
    with pytest.raises(FeatureStoreError, match="unknown item tokens"):
        load_aligned(path, {"[PAD]": 0, "a": 1, "b": 2, "z": 3}, 4)
    with pytest.raises(FeatureStoreError, match="duplicate"):
        save_features(path, ["a", "a"], np.ones((2, 2)), np.ones(2, bool), {})
    with pytest.raises(FeatureStoreError, match="NaN or inf"):
        save_features(path, ["a"], np.array([[np.inf, 0]]), np.ones(1, bool), {})
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(FeatureStoreError, match="not a feature store"):
        load_features(tmp_path / "junk.npz")
    with pytest.raises(FeatureStoreError, match="no such feature store"):
        load_features(tmp_path / "absent.npz")


@pytest.mark.integration
def test_main_cli_builds_missing_text_store_on_first_use(tmp_path, minilm, caplog):
    """run_recbole_ifcdsr (Pop, a 20-user real slice of fk_abxi) builds the store its YAML names, and says so."""
    from recbole_ifcdsr.quick_start import run_recbole_ifcdsr

    src = DATA_PATH / "fk_abxi"
    read_item_file(src, "fk_abxi")  # unpacks the shipped files
    kept = first_users_rows((src / "fk_abxi.inter").read_text().splitlines(keepends=True), 20)
    items = {line.split("\t")[1] for line in kept[1:]}
    out = tmp_path / "fk_abxi"
    out.mkdir()
    (out / "fk_abxi.inter").write_text("".join(kept))
    item_lines = (src / "fk_abxi.item").read_text().splitlines(keepends=True)
    (out / "fk_abxi.item").write_text(item_lines[0] + "".join(l for l in item_lines[1:] if l.split("\t")[0] in items))
    spec = {"text_minilm": {"modality": "text", "encoder": "minilm"}}
    negatives = {"num": 9, "replacement": False, "exclude": "sequence", "redraw": "every_pass", "rng": "generator",
                 "seed": 3407}  # the slice's domains are too small for the recipe's 999
    with caplog.at_level(logging.INFO):
        run_recbole_ifcdsr("Pop", "fk_abxi", config_dict={"data_path": str(tmp_path), "item_features": spec,
                                                          "cdsr_negatives": negatives, "show_progress": False, "checkpoint_dir": str(tmp_path / "s")},
                           saved=False)
    assert "building it now (first use)" in caplog.text
    tokens, _, mask, meta = load_features(out / "fk_abxi.text_minilm.npz")
    assert sorted(tokens.tolist()) == sorted(items) and 0 < mask.sum() <= len(items) and meta["dim"] == 384


@pytest.mark.integration
def test_the_ray_engine_does_not_import_the_extractor():
    """The extract <-> ray_engine import cycle is gone: both use chunks.py, and ray_engine imports it alone."""
    code = ("import sys, recbole_ifcdsr.features.ray_engine as r; "
            "print('recbole_ifcdsr.features.extract' in sys.modules, r.process_chunk.__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "recbole_ifcdsr.features.chunks"]
