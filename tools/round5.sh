#!/usr/bin/env bash
# Issue 15, round 5 (docs/results.md, "Round 5"): the fk_abxi table's cells, each by compare's own command
# and request, so that wherever a cell finishes (a CPU lane, a lent GPU), the table's command reuses it.
#   bash tools/round5.sh lane LABEL...      one one-thread CPU lane: each label's 3 seeds in turn. Two lanes
#                                           share the grid through compare's cell lock; run them under nice.
#   bash tools/round5.sh device [LABEL...]  on a lent GPU, in one call: the labels' unfinished cells at once
#                                           (default: the exact-loss rows). Cells still running at LIMIT s are
#                                           stopped and lost (their checkpoints are too large to carry back);
#                                           the cells' JSONs, logs and validation curves (tools/curves.py on
#                                           each -last checkpoint, finished or not) go to $OUT/round5-cells.tgz.
#                                           Carry .whl (the `wheels` mode): the wheels and, for LLMEMF, its text
#                                           store xz-compressed (14 + 33 MB; the store itself, 44 MB, with the
#                                           9 MB tree exceeds the 64 MiB a call carries), unpacked there.
#   bash tools/round5.sh wheels             here, before a GPU call: into .whl, what the lent GPU's image lacks for
#                                           its Python 3.12 (RecBole 1.2.1 and its small imports; pandas 2.3.3
#                                           with pytz and tzdata, as the image's pandas 3 is refused by
#                                           compat.refuse_pandas_copy_on_write), and the fk_abxi text store.
#   bash tools/round5.sh plan               what `table` would do with each cell (compare --plan), training nothing.
#   bash tools/round5.sh table              the block in docs/results.md, reusing every cell.
# Finished cells are kept in docs/results/cells/converge5-fk_abxi/ and copied into the out folder first, so
# no mode trains a kept cell again. SMOKE=1 with `device` runs one 1-epoch cell into /tmp on this CPU.
set -u
cd "$(dirname "$0")/.."
KEPT=docs/results/cells/converge5-fk_abxi
ORDER=(Pop GRU4Rec SASRec SRGNN IFCDSR-single IFCDSR-single-full IFCDSR-multi IFCDSR-multi-full LLMEMF LLMEMF-full)
declare -A SPEC=(
  [Pop]=Pop [GRU4Rec]=GRU4Rec [SASRec]=SASRec [SRGNN]=SRGNN
  [IFCDSR-single]="IFCDSR-single=IFCDSR:multiple_attention=False:learning_rate=0.002"
  [IFCDSR-single-full]="IFCDSR-single-full=IFCDSR:multiple_attention=False:learning_rate=0.002:loss_type=full"
  [IFCDSR-multi]="IFCDSR-multi=IFCDSR:learning_rate=0.002:lambda2=4.0"
  [IFCDSR-multi-full]="IFCDSR-multi-full=IFCDSR:learning_rate=0.002:lambda2=4.0:loss_type=full"
  [LLMEMF]="LLMEMF=LLMEMF:learning_rate=0.002:lambda2=4.0"
  # full_loss_tile only bounds the exact loss's working memory (1 GiB tiles, as round 4 on the GPU; same loss)
  [LLMEMF-full]="LLMEMF-full=LLMEMF:learning_rate=0.002:lambda2=4.0:loss_type=full:full_loss_tile=268435456"
)
MODE=${1:-}; shift || true
OUTDIR=results/converge5/fk_abxi
EXTRA=(); CAP=480
# a smoke run's cap is CPU time too: under max_train_cpu_minutes a wall cap would not count (overall.yaml)
if [ -n "${SMOKE:-}" ]; then OUTDIR=/tmp/round5-smoke/fk_abxi; EXTRA=(--epochs=1); CAP=0.1; fi
ARGS=(--dataset=fk_abxi --seeds=3 --config_files=properties/budget_converge.yaml --max_train_cpu_minutes=$CAP
      "--out=$OUTDIR" --resume "${EXTRA[@]}")
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1

check_labels() {
  local label
  for label in "$@"; do
    [ -n "${SPEC[$label]:-}" ] || { echo "unknown label '$label'; known: ${ORDER[*]}" >&2; exit 2; }
  done
}
specs() {  # the labels' model specs, comma-joined (labels checked first: this runs in a subshell)
  local out="" label
  for label in "$@"; do out+="${out:+,}${SPEC[$label]}"; done
  echo "$out"
}
keep_cells() { mkdir -p "$OUTDIR"; [ -n "${SMOKE:-}" ] || cp -n "$KEPT"/*.json "$OUTDIR"/ 2>/dev/null || true; }

case "$MODE" in
lane)
  check_labels "$@"; PY=${PY:-.venv/bin/python}; keep_cells
  for label in "$@"; do
    echo "=== $(date -u +%FT%TZ) lane start $label"
    $PY -m recbole_ifcdsr compare "--models=$(specs "$label")" "${ARGS[@]}"; rc=$?
    echo "=== $(date -u +%FT%TZ) lane end $label rc=$rc"
  done ;;
device)
  START=$SECONDS; LIMIT=${LIMIT:-540}; OUT=${OUT:?set OUT}; PY=${PY:-python3}
  [ $# -gt 0 ] || set -- IFCDSR-multi-full IFCDSR-single-full LLMEMF-full
  check_labels "$@"
  MODELS=$(specs "$@")
  if [ -n "${SMOKE:-}" ]; then MODELS=$(specs "$1"); ARGS+=(--seeds=1); fi
  if [ -d .whl ] && [ -z "${SMOKE:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      || { echo "wheel install failed"; exit 3; }
    export PYTHONPATH=/tmp/site:$PWD
  fi
  $PY -c "import torch, recbole, recbole_ifcdsr; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'recbole', recbole.__version__)" || exit 4
  for packed in .whl/*.npz.xz; do
    [ -e "$packed" ] || continue
    $PY -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
      "$packed" "dataset/fk_abxi/$(basename "${packed%.xz}")" || exit 5
  done
  $PY -c "from recbole_ifcdsr.data.packing import prepare_dataset_dir; prepare_dataset_dir('dataset/fk_abxi')" || exit 5
  keep_cells
  JOBS=${JOBS:-$(( 3 * $# ))}
  echo "grid starts at +$((SECONDS - START)) s with $JOBS jobs; unfinished cells are stopped at +$LIMIT s"
  $PY -m recbole_ifcdsr compare "--models=$MODELS" "${ARGS[@]}" --jobs=$JOBS > /tmp/round5-compare.out 2>&1 & GRID=$!
  NEXT=60
  while kill -0 $GRID 2>/dev/null && [ $((SECONDS - START)) -lt $LIMIT ]; do
    sleep 5
    if [ $((SECONDS - START)) -ge $NEXT ]; then NEXT=$((NEXT + 60))
      echo "+$((SECONDS - START)) s: $(ls "$OUTDIR"/*-seed?.json 2>/dev/null | wc -l) cells stored; GPU $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)"
    fi
  done
  if kill -0 $GRID 2>/dev/null; then
    echo "deadline at +$((SECONDS - START)) s: stopping the unfinished cells"
    pkill -TERM -f "recbole_ifcdsr (compare|run)"; sleep 5; pkill -KILL -f "recbole_ifcdsr (compare|run)"
  fi
  wait
  tail -n 20 /tmp/round5-compare.out
  mkdir -p "$OUTDIR/curves"
  for ck in "$OUTDIR"/saved/*/*-seed?-last.pth; do
    [ -e "$ck" ] || continue
    label=$(basename "$(dirname "$ck")"); seed=${ck%-last.pth}; seed=${seed##*-seed}
    $PY tools/curves.py "$ck" --csv "$OUTDIR/curves/$label-seed$seed.csv" > /dev/null || echo "no curve from $ck"
  done
  FILES=$(cd "$OUTDIR" && ls *-seed?.json *-seed?.log curves/*.csv 2>/dev/null)
  if [ -n "$FILES" ]; then tar czf "$OUT/round5-cells.tgz" -C "$OUTDIR" $FILES; else echo "no cell files to return"; fi
  $PY - "$OUTDIR" <<'PY'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("*-seed*.json")):
    d = json.loads(f.read_text())
    v, t = d["sampled"]["valid"], d["sampled"]["test"]
    mrr = lambda s: " / ".join(f"{100 * s[k]['MRR']:.2f}" for k in ("X", "Y"))
    print(f.name, d["stop_reason"], d["epochs_run"], d["best_epoch"], "valid", mrr(v), "test", mrr(t), d["machine"])
PY
  ;;
wheels)
  PY=${PY:-.venv/bin/python}
  $PY -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl recbole==1.2.1 pandas==2.3.3 pytz tzdata colorlog texttable thop
  STORE=dataset/fk_abxi/fk_abxi.text_minilm.npz
  if [ -e $STORE ]; then xz -9 -T2 -c $STORE > .whl/fk_abxi.text_minilm.npz.xz; else echo "no $STORE: LLMEMF cannot run there"; fi ;;
plan)
  PY=${PY:-.venv/bin/python}; keep_cells
  $PY -m recbole_ifcdsr compare "--models=$(specs "${ORDER[@]}")" "${ARGS[@]}" --plan ;;
table)
  PY=${PY:-.venv/bin/python}; keep_cells
  $PY -m recbole_ifcdsr compare "--models=$(specs "${ORDER[@]}")" "${ARGS[@]}" --readme=docs/results.md --readme_key=converge5-fk_abxi ;;
*)
  echo "usage: bash tools/round5.sh lane LABEL... | device [LABEL...] | wheels | plan | table" >&2; exit 2 ;;
esac
