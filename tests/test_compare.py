"""The comparison grid: exact mean/std, the Markdown table, and reuse of finished cells."""
import json
import os
from pathlib import Path

import pytest

from recbole_ifcdsr.compare import cell_request, markdown_table, mean_std, run_cell, summarise


def fake_result(model, seed, mrr_x, mrr_y):
    metrics = lambda v: {"MRR": v, "NDCG@10": v / 2, "HR@10": v * 2}  # noqa: E731
    per = {"valid": {"X": metrics(mrr_x), "Y": metrics(mrr_y)}, "test": {"X": metrics(mrr_x), "Y": metrics(mrr_y)}}
    return {"model": model, "seed": seed, "protocols": ["sampled"], "sampled": per, "epochs_run": 2,
            "train_seconds": 10.0 + seed, "train_cpu_seconds": 20.0, "wall_seconds": 30.0, "best_epoch": {"X": 1, "Y": 1}}


@pytest.mark.unit
def test_mean_std_exact():
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == (2.5, pytest.approx(1.118033988749895))
    assert mean_std([0.1]) == (0.1, 0.0)


@pytest.mark.unit
def test_summary_and_table_mark_the_best_mean():
    results = [fake_result("A", s, 0.1 + 0.01 * s, 0.05) for s in range(3)] + \
              [fake_result("B", s, 0.2, 0.04 + 0.02 * s) for s in range(3)]
    summary = summarise(results)
    assert summary["A"]["sampled"]["test"]["X"]["MRR"] == [pytest.approx(0.11), pytest.approx(0.0081649658), 3]
    table = markdown_table(summary, {"X": "Food", "Y": "Kitchen"}, "sampled")
    lines = table.splitlines()
    assert lines[0].startswith("| model | Food MRR | Food NDCG@10 | Food HR@10 | Kitchen MRR")
    assert "| A | 11.00 ± 0.82 |" in lines[2] and "**5.00 ± 0.00**" not in lines[2]
    assert "**20.00 ± 0.00**" in lines[3] and "**6.00 ± 1.63**" in lines[3]
    assert lines[2].endswith("| 2,2,2 | 11 (20) | 30 |")


@pytest.mark.unit
def test_means_that_print_alike_are_both_bold():
    """Bold follows the printed value: 12.34 and 12.3449 both show 12.34 (before, only the larger was bold),
    and 9.50 is compared as a number, not as text."""
    results = [fake_result("A", 0, 0.1234, 0.095), fake_result("B", 0, 0.123449, 0.2)]
    lines = markdown_table(summarise(results), {"X": "Food", "Y": "Kitchen"}, "sampled").splitlines()
    assert "| A | **12.34 ± 0.00** |" in lines[2] and "| B | **12.34 ± 0.00** |" in lines[3]
    assert "**9.50 ± 0.00**" not in lines[2] and "**20.00 ± 0.00**" in lines[3]


@pytest.mark.unit
def test_finished_cell_with_same_request_is_reused(tmp_path):
    request = cell_request("Pop", "fk_abxi", 0, [], ["--epochs=1"])
    (tmp_path / "Pop-seed0.json").write_text(json.dumps({**fake_result("Pop", 0, 0.1, 0.1), "cell_request": request}))
    assert run_cell(request, tmp_path, [], ["--epochs=1"]) == (True, "reused")
    changed = cell_request("Pop", "fk_abxi", 0, [], ["--epochs=2"])
    assert changed != request  # a different setting is a different cell and runs again


@pytest.mark.unit
def test_a_dataset_converted_again_does_not_reuse_the_old_files_results(tmp_path):
    """A cell's request holds its atomic files' hashes: a grid rerun after the dataset was converted again (other
    filters or split) reused the old data's results and mixed them with new cells in one table."""
    from recbole_ifcdsr.compare import _stored_result, same_request

    folder = tmp_path / "data" / "mini"
    folder.mkdir(parents=True)
    (folder / "mini.inter").write_text("user_id:token\titem_id:token\nu1\ti1\n")
    (folder / "mini.item").write_text("item_id:token\tdomain:token\ni1\tX\n")
    (folder / "mini.text_minilm.npz").write_bytes(b"a feature store: checked by its own inputs record")
    options = [f"--data_path={tmp_path / 'data'}"]
    request = cell_request("Pop", "mini", 0, [], options)
    assert sorted(request["data"]) == ["mini.inter", "mini.item"]
    (tmp_path / "Pop-seed0.json").write_text(json.dumps({**fake_result("Pop", 0, 0.1, 0.1), "cell_request": request}))
    assert _stored_result(tmp_path, request) == ("reused", None)
    (folder / "mini.text_minilm.npz").write_bytes(b"rebuilt")
    assert cell_request("Pop", "mini", 0, [], options) == request
    (folder / "mini.inter").write_text("user_id:token\titem_id:token\nu1\ti1\nu1\ti1\n")
    again = cell_request("Pop", "mini", 0, [], options)
    assert again["data"]["mini.inter"] != request["data"]["mini.inter"]
    assert _stored_result(tmp_path, again) == ("none", None)
    # a request stored before cells recorded their data is compared on the rest, so finished grids stay reusable
    old = {key: value for key, value in request.items() if key != "data"}
    assert same_request(old, again) and not same_request({**old, "seed": 1}, again)
    assert not same_request(request, again) and not same_request(None, again)


@pytest.mark.unit
def test_the_data_path_of_a_cell_is_read_as_its_run_reads_it(tmp_path, monkeypatch):
    from recbole_ifcdsr.compare import data_path_of

    monkeypatch.chdir(tmp_path)
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("data_path: from_a\n")
    second.write_text("epochs: 3\n")
    assert data_path_of([str(first), str(second)], [], {}) == Path("from_a")
    assert data_path_of([str(first)], ["--data_path=given"], {}) == Path("given")
    assert data_path_of([str(second)], [], {"overall.yaml": first}) == Path("from_a")
    assert data_path_of([], [], {}) == tmp_path / "dataset"


@pytest.mark.unit
def test_a_row_with_fewer_seeds_than_asked_is_marked(tmp_path):
    """A row whose other seeds failed was averaged over fewer runs with nothing in the table to say so."""
    from recbole_ifcdsr.compare import write_outputs

    results = [fake_result("A", s, 0.1, 0.1) for s in range(3)] + [fake_result("B", s, 0.2, 0.2) for s in (0, 2)]
    for r in results:
        r["domains"] = {"X": "Food", "Y": "Kitchen"}
    markdown = write_outputs(tmp_path, "fk", "cmd", results, ["B seed 1: exit code 1"], None, split="valid",
                             select="MRR", seeds_asked=3)
    assert "| A | 10.00" in markdown and "| B ‡ | **20.00" in markdown
    assert "‡ Mean and std over fewer seeds than the 3 asked (the other runs failed, listed below): only B seeds 0, 2." \
        in markdown
    assert "**B ‡** (20.00)" in markdown
    assert "‡" not in write_outputs(tmp_path, "fk", "cmd", results[:3], [], None, seeds_asked=3)


@pytest.mark.unit
def test_cell_request_follows_the_plugin_defaults(monkeypatch, tmp_path):
    """Editing properties/model/<M>.yaml (say, a new default weight) must not reuse old results, a comment must; a file in
    the working directory's properties/ replaces the plug-in's of the same name, for the run and the hash."""
    from recbole_ifcdsr import compare, paths

    own = tmp_path / "plugin"
    (own / "model").mkdir(parents=True)
    (own / "model" / "LLMEMF.yaml").write_text("fusion_weights: {id: 0.7, txt: 0.3}\n")
    monkeypatch.setattr(paths, "PROPERTIES_DIR", own)
    monkeypatch.chdir(tmp_path)  # no ./properties yet
    before = cell_request("LLMEMF", "fk_llmcdsr", 0, [], [])
    assert before["defaults"] == {"model/LLMEMF.yaml": compare._digest(own / "model" / "LLMEMF.yaml")}
    (own / "model" / "LLMEMF.yaml").write_text("# weights chosen on validation\nfusion_weights: {txt: 0.3, id: 0.7}  # note\n")
    assert cell_request("LLMEMF", "fk_llmcdsr", 0, [], []) == before  # comments and key order: the same settings
    (own / "model" / "LLMEMF.yaml").write_text("fusion_weights: {id: 0.8, txt: 0.2}\n")
    changed = cell_request("LLMEMF", "fk_llmcdsr", 0, [], [])
    assert changed != before
    assert "defaults" not in cell_request("SASRec", "fk_llmcdsr", 0, [], [])  # no YAML of its own there
    user = tmp_path / "properties" / "model" / "LLMEMF.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("fusion_weights: {id: 0.5, txt: 0.5}\n")
    assert cell_request("LLMEMF", "fk_llmcdsr", 0, [], [])["defaults"] == {"model/LLMEMF.yaml": compare._digest(user)}


@pytest.mark.unit
def test_model_entries_carry_settings_and_labels():
    from recbole_ifcdsr.compare import ModelSpecError, parse_model_spec

    assert parse_model_spec("SASRec") == ("SASRec", "SASRec", [])
    assert parse_model_spec("IFCDSR:multiple_attention=False") == (
        "IFCDSR:multiple_attention=False", "IFCDSR", ["--multiple_attention=False"])
    assert parse_model_spec("one=IFCDSR:temperature=1.0:n_layers=2") == (
        "one", "IFCDSR", ["--temperature=1.0", "--n_layers=2"])
    with pytest.raises(ModelSpecError, match="not key=value"):
        parse_model_spec("IFCDSR:temperature")
    with pytest.raises(ModelSpecError, match="no model name"):
        parse_model_spec("label=")


@pytest.mark.unit
def test_model_entries_may_hold_dict_values():
    from recbole_ifcdsr.compare import ModelSpecError, parse_model_spec, split_top_level

    entries = "SASRec,t30=LLMEMF:fusion_weights={'id':0.7,'txt':0.3}:n_layers=2"
    assert split_top_level(entries, ",") == ["SASRec", "t30=LLMEMF:fusion_weights={'id':0.7,'txt':0.3}:n_layers=2"]
    assert parse_model_spec(split_top_level(entries, ",")[1]) == (
        "t30", "LLMEMF", ["--fusion_weights={'id':0.7,'txt':0.3}", "--n_layers=2"])
    assert split_top_level("a:'x,y':b", ":") == ["a", "'x,y'", "b"]
    with pytest.raises(ModelSpecError, match="unclosed"):
        parse_model_spec("LLMEMF:fusion_weights={'id':0.7")
    with pytest.raises(ModelSpecError, match="unbalanced"):
        parse_model_spec("LLMEMF:w=0.7}")


@pytest.mark.unit
def test_selection_uses_validation_mean_over_domains(tmp_path):
    from recbole_ifcdsr.compare import select_on_validation, write_outputs

    results = [fake_result("A", 0, 0.30, 0.10), fake_result("B", 0, 0.25, 0.20)]
    for r in results:  # test numbers that would pick A; validation picks B (mean 0.225 > 0.20)
        r["sampled"]["valid"] = {"X": {"MRR": r["sampled"]["valid"]["X"]["MRR"], "NDCG@10": 0, "HR@10": 0},
                                 "Y": {"MRR": r["sampled"]["valid"]["Y"]["MRR"], "NDCG@10": 0, "HR@10": 0}}
        r["sampled"]["test"]["X"]["MRR"] = 0.9 if r["model"] == "A" else 0.1
    summary = summarise(results)
    assert select_on_validation(summary, "sampled") == ("B", pytest.approx(0.225))
    with pytest.raises(ValueError, match="choose one of"):
        select_on_validation(summary, "sampled", "AUC")
    for r in results:
        r["domains"] = {"X": "Food", "Y": "Kitchen"}
    markdown = write_outputs(tmp_path, "fk", "cmd", results, [], None, split="valid", select="MRR")
    assert "valid split" in markdown and "**B** (22.50)" in markdown
    assert "| A | **30.00 ± 0.00** |" in markdown  # the table shows validation, not test (90.00)
    assert json.loads((tmp_path / "selection.json").read_text())["sampled"]["label"] == "B"
    write_outputs(tmp_path, "fk", "cmd", results, [], None, split="valid")  # a later grid without --select
    assert not (tmp_path / "selection.json").exists()  # no earlier choice beside its table


@pytest.mark.unit
def test_a_row_whose_wall_time_misses_a_resumed_runs_earlier_processes_says_so(tmp_path):
    """Results that count only their last process's wall time (resumed from a checkpoint that did not record
    the earlier ones) mark their row's wall seconds as a lower bound and are named below the tables; results
    files without the key (written before it) are read as complete."""
    from recbole_ifcdsr.compare import write_outputs

    partial = {("A", 0): True, ("A", 1): False, ("A", 2): None, ("B", 0): False, ("B", 1): True, ("B", 2): True}
    results = []
    for (model, seed), flag in partial.items():
        result = {**fake_result(model, seed, 0.1, 0.1), "domains": {"X": "Food", "Y": "Kitchen"}}
        if flag is not None:
            result["wall_seconds_partial"] = flag
        results.append(result)
    table = markdown_table(summarise(results), {}, "sampled").splitlines()
    assert table[2].endswith("| ≥30 |") and table[3].endswith("| ≥30 |")
    markdown = write_outputs(tmp_path, "fk", "cmd", results, [], None)
    assert ("≥ Wall seconds undercount: resumed from a checkpoint that did not record the earlier processes' wall "
            "time, these runs count only their last process: A seed 0; B seeds 1, 2.") in markdown.splitlines()
    complete = [r for r in results if not r.get("wall_seconds_partial")]
    assert "≥" not in write_outputs(tmp_path, "fk", "cmd", complete, [], None)


@pytest.mark.unit
def test_runs_a_budget_stopped_are_flagged_in_the_table(tmp_path):
    """The converged tables promise that a run cut by its budget says so: a mark on its epoch count and one
    line naming the runs; early stopping and a fixed epoch count are the run's own schedule, unmarked."""
    from recbole_ifcdsr.compare import write_outputs
    from recbole_ifcdsr.trainer import TrainingBudget

    cpu_cap, wall_cap = TrainingBudget(120, cpu=True).describe(), TrainingBudget(2.5, cpu=False).describe()
    assert (cpu_cap, wall_cap) == ("120 CPU-minute budget", "2.5 wall-minute budget")
    reasons = {("A", 0): "early stopping", ("A", 1): cpu_cap, ("A", 2): "max epochs",
               ("B", 0): cpu_cap, ("B", 1): cpu_cap, ("B", 2): wall_cap}
    results = []
    for (model, seed), reason in reasons.items():
        results.append({**fake_result(model, seed, 0.1, 0.1), "stop_reason": reason, "domains": {"X": "Food", "Y": "Kitchen"},
                        "epochs_run": 10 + seed})
    table = markdown_table(summarise(results), {}, "sampled").splitlines()
    assert "| 10,11†,12 |" in table[2] and "| 10†,11†,12† |" in table[3]
    markdown = write_outputs(tmp_path, "fk", "cmd", results, [], None)
    assert ("† Stopped by the training budget before model selection stopped it: A seed 1 (120 CPU-minute budget); "
            "B seeds 0, 1 (120 CPU-minute budget); B seed 2 (2.5 wall-minute budget).") in markdown.splitlines()
    results = [r for r in results if r["stop_reason"] in ("early stopping", "max epochs")]  # A seeds 0 and 2
    assert "†" not in write_outputs(tmp_path, "fk", "cmd", results, [], None)


@pytest.mark.unit
def test_a_run_the_selection_stopped_in_an_epoch_the_budget_cut_says_both_and_is_not_flagged():
    """fk_llmcdsr's IFCDSR-single seed 2 ran out of patience at the validation of its 60th epoch, which the
    120 CPU-minute budget had cut short: the selection ended it (no mark), and its stop reason says the cut."""
    from recbole_ifcdsr.constants import budget_stopped
    from recbole_ifcdsr.trainer import TrainingBudget, why_training_stops

    budget = TrainingBudget(120, cpu=True)
    both = why_training_stops(True, True, budget)
    assert both == "early stopping (last epoch cut short by the 120 CPU-minute budget)" and not budget_stopped(both)
    assert why_training_stops(True, False, budget) == "early stopping"
    assert why_training_stops(True, True, budget, cut=False) == "early stopping"  # spent on the epoch's last batch
    assert why_training_stops(False, True, budget) == "120 CPU-minute budget" and budget_stopped(why_training_stops(False, True, budget))
    assert why_training_stops(False, False, budget) is None


@pytest.mark.unit
def test_csv_rows_are_exact(tmp_path):
    from recbole_ifcdsr.report import write_csv

    summary = summarise([fake_result("A", s, 0.1 * (s + 1), 0.05) for s in range(2)])
    write_csv(summary, {"X": "Food", "Y": "Kitchen"}, tmp_path / "s.csv")
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert rows[0] == "model,protocol,split,domain,domain_name,metric,mean,std,n"
    assert "A,sampled,test,X,Food,MRR,0.150000,0.050000,2" in rows
    assert "A,sampled,valid,Y,Kitchen,HR@10,0.100000,0.000000,2" in rows
    assert len(rows) == 1 + 2 * 2 * 3  # splits x domains x metrics


@pytest.mark.unit
def test_anchor_row_and_readme_block(tmp_path):
    from recbole_ifcdsr.report import ReportError, load_anchors, replace_readme_block

    anchors = tmp_path / "anchors.yaml"
    anchors.write_text("d:\n  label: Paper\n  source: s\n  protocol: sampled\n  split: test\n  X: {MRR: 0.3}\n"
                       "bad:\n  label: x\n")
    anchor = load_anchors("d", anchors)
    assert load_anchors("other", anchors) is None
    with pytest.raises(ReportError, match="lacks source, protocol, split"):
        load_anchors("bad", anchors)
    summary = summarise([fake_result("A", 0, 0.1, 0.05)])
    table = markdown_table(summary, {}, "sampled", anchor=anchor).splitlines()
    assert table[-1].startswith("| *Paper* | *30.00* | - | - | - | - | - |")
    assert "*Paper*" not in markdown_table(summary, {}, "sampled", split="valid", anchor=anchor)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:d:start -->\nold\n<!-- results:d:end -->\nafter\n")
    replace_readme_block(readme, "d", "new table")
    assert readme.read_text() == "intro\n<!-- results:d:start -->\nnew table\n<!-- results:d:end -->\nafter\n"
    with pytest.raises(ReportError, match="no block"):
        replace_readme_block(readme, "missing", "x")


@pytest.mark.unit
def test_the_gap_to_the_anchor_per_domain_and_metric(tmp_path):
    """Mean minus published, in points, only for the columns the anchor publishes; reaching it is >=."""
    from recbole_ifcdsr.compare import anchor_gap_table, write_outputs

    anchor = {"label": "Paper", "source": "s", "protocol": "sampled", "split": "test",
              "X": {"MRR": 0.3, "HR@5": 0.9}, "Y": {"NDCG@10": 0.02}}
    results = [{**fake_result(label, 0, x, y), "domains": {"X": "Food", "Y": "Kitchen"}}
               for label, x, y in (("A", 0.1, 0.05), ("B", 0.35, 0.04))]  # NDCG@10 = MRR / 2
    table = anchor_gap_table(summarise(results), {"X": "Food", "Y": "Kitchen"}, "sampled", anchor).splitlines()
    assert table == ["| model | Food MRR | Kitchen NDCG@10 |", "|---|---|---|",
                     "| A | -20.00 | **+0.50** |", "| B | **+5.00** | **+0.00** |", "",
                     "Rows whose mean reaches *Paper* in every column above: B."]
    assert anchor_gap_table(summarise(results[:1]), {}, "sampled", anchor).endswith("every column above: none.")
    assert anchor_gap_table(summarise(results), {}, "full", anchor) == ""
    # taken as printed: 16.549 prints as the published 16.55 (it read -0.00, not reached); 16.544 does not
    close = [fake_result("C", 0, 0.16549, 0.0), fake_result("D", 0, 0.16544, 0.0)]
    assert anchor_gap_table(summarise(close), {}, "sampled", {**anchor, "X": {"MRR": 0.1655}, "Y": {}}).splitlines() == [
        "| model | X MRR |", "|---|---|", "| C | **+0.00** |", "| D | -0.01 |", "",
        "Rows whose mean reaches *Paper* in every column above: C."]
    markdown = write_outputs(tmp_path, "d", "cmd", results, [], anchor)
    assert "**sampled protocol, against *Paper*** (row mean minus the published number, points; " \
           "bold where the mean reaches it)" in markdown.splitlines()
    assert "against *Paper*" not in write_outputs(tmp_path, "d", "cmd", results, [], anchor, split="valid")


@pytest.mark.e2e
def test_grid_on_a_real_slice_resumes_after_a_kill(abxi_slice_dir, tmp_path):
    """Two tiny models x two seeds through the real CLI; the grid is killed after its first cell and
    run again: only the missing cells run, and the table, CSV, JSON and a readable PNG come out."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import matplotlib.image

    out = tmp_path / "grid"
    readme = tmp_path / "docs" / "results.md"
    readme.parent.mkdir()
    readme.write_text("<!-- results:fk_abxi:start -->\n<!-- results:fk_abxi:end -->\n")
    command = [sys.executable, "-m", "recbole_ifcdsr", "compare", "--dataset=fk_abxi", "--seeds=2", f"--out={out}",
               "--models=Pop,tiny=SASRec:hidden_size=8:inner_size=16:n_layers=1", "--protocols=sampled,full",
               f"--data_path={abxi_slice_dir}", "--epochs=1", f"--checkpoint_dir={tmp_path / 'saved'}",
               "--eval_batch_size=64", "--state=WARNING"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    while not (out / "Pop-seed0.json").exists():  # the kill lands after the first cell, wherever the rest are
        assert first.poll() is None, "grid ended before its first cell"
        assert time.monotonic() - started < 900, "grid hung before its first cell"  # a hang guard only
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    finished = sorted(p.name for p in out.glob("*-seed?.json"))
    second = subprocess.run(command + [f"--readme={readme}"], capture_output=True, text=True,
                            timeout=3600)  # a hang guard only
    assert second.returncode == 0, second.stdout + second.stderr
    reused = [line for line in second.stdout.splitlines() if ": reused" in line]
    ran = [line for line in second.stdout.splitlines() if ": ran" in line]
    assert len(reused) == len(finished) >= 1 and len(reused) + len(ran) == 4
    for name in ("summary.md", "summary.csv", "summary.json"):
        assert (out / name).stat().st_size > 0
    assert matplotlib.image.imread(out / "summary.png").shape[2] in (3, 4)
    text = readme.read_text()
    assert "| tiny |" in text and "*ABXI (published)*" in text and "](results/fk_abxi.png)" in text
    assert (tmp_path / "docs" / "results" / "fk_abxi.png").read_bytes() == (out / "summary.png").read_bytes()


@pytest.mark.unit
def test_result_problem_names_what_is_missing():
    from recbole_ifcdsr.compare import result_problem

    complete = fake_result("A", 0, 0.1, 0.2)
    assert result_problem(complete) is None
    assert result_problem({**complete, "sampled": {"valid": {"X": {"MRR": 0.1}}, "test": {}}}) == \
        "no sampled valid results for domain Y"
    nan = json.loads(json.dumps(complete))
    nan["sampled"]["test"]["Y"]["HR@10"] = float("nan")
    assert result_problem(nan) == "sampled test Y: HR@10 is nan"
    assert result_problem({**complete, "best_epoch": {"X": 1}}) == "no selected epoch for domain Y"
    assert result_problem({"cell_request": {}}) == "no protocols"


@pytest.mark.parametrize("argv, message", [
    (["--models=Pop,NoSuchModel"], "--models: Unknown model 'NoSuchModel'. Valid models:"),
    (["--models=Pop", "--seeds=0"], "argument --seeds: 0: at least 1"),
    (["--models=Pop", "--seeds=two"], "argument --seeds: 'two' is not an integer"),
    (["--models=Pop", "--config_files=nowhere.yaml"], "--config_files: nowhere.yaml not found"),
    # two rows whose cell files would be the same: each overwrote the other and both read the last one
    (["--models=IFCDSR-multi=IFCDSR:lambda2=4.0,IFCDSR-multi=IFCDSR:lambda2=2.0"],
     "--models: 'IFCDSR-multi' and 'IFCDSR-multi' would share the cell files IFCDSR-multi-seed<k>.json; give each "
     "entry its own label: LABEL=MODEL:key=value"),
    (["--models=A b=Pop,A_b=Pop"], "--models: 'A b' and 'A_b' would share the cell files A_b-seed<k>.json"),
    # a prefix of --seeds was read as --seeds (seven runs); spelled out, it replaced every cell's own seed
    (["--models=Pop", "--seed=7"], "--seed: compare sets each cell's seed (seeds 0..N-1: --seeds=N)"),
    (["--models=Pop", "--results_file=r.json"], "--results_file: compare sets each cell's results_file itself"),
    (["--models=Pop:seed=1"], "--models: model entry 'Pop:seed=1': compare sets each cell's seed"),
    (["--models=Pop", "--show_progress=True"], "--show_progress: compare sets each cell's show_progress itself"),
    (["--models=Pop", "--protocols=full", "--protocol=sampled"], "--protocol and --protocols: give one"),
    # each cell's run refuses an unknown setting: the grid says so once, before any cell starts
    (["--models=Pop", "--max_train_cpu_minute=5"], "--max_train_cpu_minute: unknown setting (no property file "
                                                   "defines it); did you mean max_train_cpu_minutes?"),
    (["--models=Pop:lamda2=4"], "--lamda2: unknown setting"),
    # a row of its own protocol crashed the other protocol's table after every cell had run
    (["--models=Pop,P-full=Pop:protocol=full"], "--models: model entry 'P-full=Pop:protocol=full': one table shows "
     "the same protocols for every row: give --protocols=sampled|full|sampled,full for the whole grid"),
])
@pytest.mark.unit
def test_names_and_seeds_are_checked_before_any_cell_starts(tmp_path, capsys, argv, message):
    from recbole_ifcdsr.compare import main

    out = tmp_path / "grid"
    with pytest.raises(SystemExit) as info:
        main(["--dataset=fk_abxi", f"--out={out}", *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not out.exists()  # no cell ran


GRID = ["--dataset=fk_abxi", "--models=Pop", "--seeds=1", "--state=WARNING", "--eval_batch_size=128",
        "--cdsr_negatives={'num': 50, 'replacement': False, 'exclude': 'sequence', 'redraw': 'every_pass', "
        "'rng': 'generator', 'seed': 1}"]


@pytest.mark.e2e
def test_a_stored_cell_without_results_is_run_again(abxi_small_dir, tmp_path, capsys):
    """The finding: such a cell was reused, and every rerun crashed with KeyError: 'sampled'."""
    from recbole_ifcdsr.compare import cell_path, main

    out = tmp_path / "grid"
    out.mkdir()
    argv = GRID + [f"--out={out}", f"--data_path={abxi_small_dir}", f"--checkpoint_dir={tmp_path / 'saved'}"]
    overrides = [a for a in argv if a.startswith("--") and a.split("=")[0] not in ("--dataset", "--models", "--seeds", "--out")]
    request = cell_request("Pop", "fk_abxi", 0, [], overrides)
    stale = {"cell_request": request, "protocols": ["sampled", "full"], "best_epoch": {}, "epochs_run": 0}
    cell_path(out, request, ".json").write_text(json.dumps(stale))
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Pop seed 0: ran (stored results were incomplete: no sampled valid results for domain X)" in printed
    assert "| Pop |" in (out / "summary.md").read_text()


@pytest.mark.e2e
def test_a_cell_whose_file_another_request_replaced_is_not_read_into_the_table(abxi_small_dir, tmp_path, capsys,
                                                                              monkeypatch):
    """Another compare on the same --out may replace a finished cell's file before this one reads it back
    (deterministic here: the real run_cell, then the replacement another process would write)."""
    from recbole_ifcdsr import compare

    out = tmp_path / "grid"
    argv = GRID + [f"--out={out}", f"--data_path={abxi_small_dir}", f"--checkpoint_dir={tmp_path / 'saved'}"]
    real_run_cell = compare.run_cell

    def run_then_replaced(request, out_dir, *args, **kwargs):
        outcome = real_run_cell(request, out_dir, *args, **kwargs)
        path = compare.cell_path(out_dir, request, ".json")
        other = json.loads(path.read_text())
        other["cell_request"] = {**request, "overrides": request["overrides"] + ["--epochs=7"]}
        path.write_text(json.dumps(other))
        return outcome

    monkeypatch.setattr(compare, "run_cell", run_then_replaced)
    assert compare.main(argv) == 1
    captured = capsys.readouterr()
    assert "Pop seed 0: its results file now holds another request's run (another compare on this --out?)" \
        in captured.err
    assert not (out / "summary.csv").exists()


@pytest.mark.e2e
def test_a_grid_without_results_replaces_its_stale_summary(tmp_path, capsys):
    from recbole_ifcdsr.compare import main

    out = tmp_path / "grid"
    out.mkdir()
    for name in ("summary.md", "summary.csv", "summary.png"):
        (out / name).write_text("an older grid's table")
    grid = [a.replace("fk_abxi", "food_kitchen") for a in GRID]  # not shipped: its missing folder fails the cell
    assert main(grid + [f"--out={out}", f"--data_path={tmp_path / 'missing'}"]) == 1
    summary = (out / "summary.md").read_text()
    assert "No cell finished" in summary and "- Pop seed 0: exit code 2, see" in summary
    assert not (out / "summary.csv").exists() and not (out / "summary.png").exists()
    assert not (out / "Pop-seed0.json").exists()  # a cell without results is never cached
    assert "error: Dataset folder" in (out / "Pop-seed0.log").read_text()


@pytest.mark.e2e
def test_variants_of_one_model_keep_their_own_checkpoints(abxi_small_dir, tmp_path, monkeypatch):
    """Two rows of IFCDSR at the same seed: each cell writes its checkpoints into a folder of its row
    under --checkpoint_dir, so neither overwrites (or could resume from) the other's model file."""
    from recbole_ifcdsr import cli

    monkeypatch.chdir(tmp_path)  # RecBole writes log/ into the working directory
    negatives = "{'num': 50, 'replacement': False, 'exclude': 'sequence', 'redraw': 'every_pass', 'rng': 'generator', 'seed': 1}"
    selection = "{'mode': 'joint', 'metric': 'MRR', 'improve': 'ge', 'warmup_epochs': 0, 'patience': 61}"
    code = cli.main(["compare", "--dataset=fk_abxi", "--models=multi=IFCDSR,single=IFCDSR:multiple_attention=False",
                     "--seeds=1", f"--out={tmp_path / 'grid'}", "--protocols=sampled", f"--data_path={abxi_small_dir}",
                     f"--checkpoint_dir={tmp_path / 'saved'}", "--state=WARNING", "--epochs=1", "--id_embedding_size=8",
                     "--n_heads=1", "--train_batch_size=64", "--MAX_ITEM_LIST_LENGTH=20", "--num_negatives=200",
                     f"--cdsr_negatives={negatives}", f"--cdsr_selection={selection}"])
    assert code == 0
    files = {row: tmp_path / "saved" / row / "IFCDSR-fk_abxi-seed0-model.pth" for row in ("multi", "single")}
    assert all(f.is_file() for f in files.values())
    assert files["multi"].read_bytes() != files["single"].read_bytes()
    assert not list((tmp_path / "saved").glob("*.pth"))  # nothing shared at the base


@pytest.mark.e2e
def test_resume_continues_only_the_same_cell(abxi_small_dir, tmp_path, monkeypatch):
    """A cell whose results were lost after its last checkpoint (a crash between the two) continues from that
    checkpoint under --resume and reports what the uninterrupted run reported, its log going on after the first
    run's lines (before, a resume truncated it, losing the interrupted epochs); a cell of the same label but
    another request (here another budget, which a checkpoint's run record does not hold) starts afresh."""
    from recbole_ifcdsr import cli

    monkeypatch.chdir(tmp_path)
    negatives = "{'num': 50, 'replacement': False, 'exclude': 'sequence', 'redraw': 'every_pass', 'rng': 'generator', 'seed': 1}"
    selection = "{'mode': 'joint', 'metric': 'MRR', 'improve': 'ge', 'warmup_epochs': 0, 'patience': 61}"
    out = tmp_path / "grid"
    argv = ["compare", "--dataset=fk_abxi", "--models=IFCDSR", "--seeds=1", f"--out={out}", "--protocols=sampled",
            f"--data_path={abxi_small_dir}", "--state=INFO", "--epochs=2", "--id_embedding_size=8", "--n_heads=1",
            "--train_batch_size=64", "--MAX_ITEM_LIST_LENGTH=20", "--num_negatives=200", f"--cdsr_negatives={negatives}",
            f"--cdsr_selection={selection}"]
    assert cli.main(argv) == 0
    cell = out / "IFCDSR-seed0.json"
    straight = json.loads(cell.read_text())
    cell.unlink()  # the results are lost; the cell's checkpoints remain

    assert cli.main(argv + ["--resume"]) == 0
    log = (out / "IFCDSR-seed0.log").read_text()
    before, marker, after = log.partition("resumed: the lines above are the interrupted run's")
    assert marker and "epoch 0 valid" in before and "epoch 1 valid" in before  # the first run's curve is kept
    assert "Resumed from" in after and "epoch 0 valid" not in after
    resumed = json.loads(cell.read_text())
    assert resumed["epochs_run"] == straight["epochs_run"] == 2
    assert resumed["sampled"] == straight["sampled"]

    cell.unlink()
    assert cli.main(argv + ["--resume", "--max_train_cpu_minutes=30"]) == 0
    log = (out / "IFCDSR-seed0.log").read_text()
    assert "Resumed from" not in log and "resumed:" not in log  # a fresh start writes a fresh log


@pytest.mark.unit
def test_a_cell_another_process_holds_is_left_alone(tmp_path):
    """Two compare commands over one --out (two lanes of a long grid): the second skips the cell the first
    is running, writes nothing of it, and says who holds it; once released the cell can be taken."""
    from recbole_ifcdsr.cell_lock import hold_cell
    from recbole_ifcdsr.compare import cell_checkpoint_dir

    request = cell_request("Pop", "fk_abxi", 1, [], ["--epochs=1"])
    lock = cell_checkpoint_dir(tmp_path, request, []) / "fk_abxi-seed1.lock"
    with hold_cell(lock):  # a second open file description of the lock: the kernel treats it as another holder
        ok, how = run_cell(request, tmp_path, [], ["--epochs=1"])
        assert not ok and how.startswith(f"running in pid {os.getpid()}, since ") and str(lock) in how
        assert not (tmp_path / "Pop-seed1.log").exists() and not list(lock.parent.glob("*cell_request.json"))
        (tmp_path / "Pop-seed1.json").write_text(json.dumps({**fake_result("Pop", 1, 0.1, 0.1), "cell_request": request}))
        assert run_cell(request, tmp_path, [], ["--epochs=1"]) == (True, "reused")  # a finished cell needs no lock
    with hold_cell(lock):
        pass


@pytest.mark.unit
def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    """A session killed mid-cell must not block the cell for the next one: the kernel drops the lock with
    its process (no pid files to clean up by hand)."""
    import subprocess
    import sys

    from recbole_ifcdsr.cell_lock import CellBusy, hold_cell

    lock = tmp_path / "saved" / "Pop" / "fk_abxi-seed0.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import sys\nfrom pathlib import Path\n"
                               "from recbole_ifcdsr.cell_lock import hold_cell\n"
                               f"with hold_cell(Path({str(lock)!r})):\n    print('held', flush=True)\n    sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"  # blocks until the child holds the lock: no timing involved
        with pytest.raises(CellBusy, match=f"running in pid {holder.pid}, since "):
            with hold_cell(lock):
                pass
    finally:
        holder.kill()
        holder.wait()
    with hold_cell(lock):
        assert lock.read_text().startswith(f"pid {os.getpid()}, since ")


@pytest.mark.unit
def test_resume_marks_are_per_cell_and_old_folders_still_resume(tmp_path):
    """Seeds of one row started at once each keep their own mark (one shared mark made all but the last
    start afresh on --resume); a folder written before has one mark for the row, still read."""
    from recbole_ifcdsr.compare import CELL_MARK, _cell_file, _same_cell_started

    seed0, seed1 = (cell_request("SASRec", "fk_abxi", s, [], []) for s in (0, 1))
    old = tmp_path / "old"
    old.mkdir()
    (old / CELL_MARK).write_text(json.dumps(seed1))
    assert _same_cell_started(seed1, old) and not _same_cell_started(seed0, old)
    new = tmp_path / "new"
    new.mkdir()
    for request in (seed0, seed1):
        _cell_file(new, request, CELL_MARK).write_text(json.dumps(request))
    (new / CELL_MARK).write_text(json.dumps(seed1))  # a stale row mark does not override a cell's own
    assert _same_cell_started(seed0, new) and _same_cell_started(seed1, new)


@pytest.mark.unit
def test_plan_says_what_each_cell_would_do_and_writes_nothing(tmp_path, capsys):
    """compare --plan before a grid of hours: each cell's fate (reused, resumed, trained, left to another
    process), found the way the grid finds it, with nothing trained or written."""
    from recbole_ifcdsr.cell_lock import hold_cell
    from recbole_ifcdsr.compare import CELL_MARK, _cell_file, cell_checkpoint_dir, cell_path, main

    out = tmp_path / "grid"
    argv = ["--dataset=fk_abxi", "--models=Pop", "--seeds=5", f"--out={out}", "--epochs=1", "--plan"]
    assert main(argv + ["--resume"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"Pop seed {s}: trains from the start" for s in range(5)] + [
        "5 cells: 0 reused, 5 to train (0 resuming), 0 running elsewhere"]
    assert not out.exists()

    requests = [cell_request("Pop", "fk_abxi", s, [], ["--epochs=1"]) for s in range(5)]
    saved = cell_checkpoint_dir(out, requests[0], [])
    saved.mkdir(parents=True)
    cell_path(out, requests[0], ".json").write_text(json.dumps({**fake_result("Pop", 0, 0.1, 0.1), "cell_request": requests[0]}))
    cell_path(out, requests[1], ".json").write_text(json.dumps({"cell_request": requests[1], "protocols": ["sampled"]}))
    other = cell_request("Pop", "fk_abxi", 2, [], ["--epochs=2"])
    cell_path(out, requests[2], ".json").write_text(json.dumps({**fake_result("Pop", 2, 0.1, 0.1), "cell_request": other}))
    _cell_file(saved, requests[3], CELL_MARK).write_text(json.dumps(requests[3]))
    last = saved / "Pop-fk_abxi-seed3-last.pth"
    last.write_bytes(b"a checkpoint")
    files_before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with hold_cell(_cell_file(saved, requests[4], "lock")):
        assert main(argv + ["--resume"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert main(argv) == 0  # without --resume a started cell starts again
        without_resume = capsys.readouterr().out.splitlines()
    assert lines[0] == "Pop seed 0: reused"
    assert lines[1] == "Pop seed 1: trains from the start (its stored results are incomplete: " \
                       "no sampled valid results for domain X)"
    assert lines[2] == "Pop seed 2: trains from the start (its results file holds another request's run, which it replaces)"
    assert lines[3] == f"Pop seed 3: resumes from {last}"
    assert lines[4].startswith(f"Pop seed 4: left alone: running in pid {os.getpid()}, since ")
    assert lines[5] == "5 cells: 1 reused, 3 to train (1 resuming), 1 running elsewhere"
    assert without_resume[3] == "Pop seed 3: trains from the start"
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == files_before + [Path("saved/Pop/fk_abxi-seed4.lock")]
    last.unlink()  # a started cell whose -last is gone starts afresh, as the run itself does
    assert main(argv + ["--resume"]) == 0
    assert capsys.readouterr().out.splitlines()[3] == "Pop seed 3: trains from the start"
