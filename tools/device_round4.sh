#!/usr/bin/env bash
# Issue 15, round 4 (docs/results.md, "Round 4"): the exact softmax at convergence on fk_abxi, on one lent
# GPU, in one device call. Run from the repository root; results go to $OUT/round4.tgz (cells, logs,
# summaries; no checkpoints) and the last lines printed are a short table.
#   run: bash tools/device_round4.sh          (on the device; .whl carried, see below)
#   CPU smoke test here: SMOKE=1 OUT=/tmp/r4smoke bash tools/device_round4.sh
# Wheels (.whl, ignored via .git/info/exclude): recbole 1.2.1 and what it imports that the GPU image lacks,
# plus pandas 2.3.3 (RecBole's fillna(inplace=True) needs pandas<3: importing recbole_ifcdsr refuses pandas 3,
# compat.refuse_pandas_copy_on_write).
set -u
START=$SECONDS
OUT=${OUT:?set OUT}; LIMIT=${LIMIT:-550}          # seconds from start until unfinished cells are stopped
W=/tmp/round4; rm -rf "$W"; mkdir -p "$W"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
if [ -d .whl ] && [ -z "${SMOKE:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 3; }
  export PYTHONPATH=/tmp/site:$PWD
fi
PY=${PY:-python3}
$PY - <<'PY' || exit 4
import numpy, pandas, torch, recbole, recbole_ifcdsr
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-",
      "| pandas", pandas.__version__, "| numpy", numpy.__version__, "| recbole", recbole.__version__)
PY
nproc --all
CF=properties/budget_converge.yaml,properties/budget_converge_gpu.yaml
BASE=learning_rate=0.002:lambda2=4.0
TILE=full_loss_tile=268435456
CONTROL="IFCDSR-multi-gpu=IFCDSR:$BASE"
FULL="IFCDSR-r4-full=IFCDSR:$BASE:loss_type=full:$TILE,IFCDSR-single-r4-full=IFCDSR:multiple_attention=False:learning_rate=0.002:loss_type=full:$TILE"
EXTRA=(); SEEDS=3; JOBS=6
if [ -n "${SMOKE:-}" ]; then EXTRA=(--epochs=1 --max_train_minutes=0.1); SEEDS=1; JOBS=1; fi
run_grid() {
  $PY -m recbole_ifcdsr compare --dataset=fk_abxi "--models=$CONTROL" --seeds=1 --jobs=1 --config_files=$CF \
      --out=$W/fk_abxi --checkpoint_dir=/tmp/saved --resume "${EXTRA[@]}" > $W/control.out 2>&1 &
  $PY -m recbole_ifcdsr compare --dataset=fk_abxi "--models=$FULL" --seeds=$SEEDS --jobs=$JOBS --config_files=$CF \
      --out=$W/fk_abxi-full --checkpoint_dir=/tmp/saved --resume "${EXTRA[@]}" > $W/full.out 2>&1 &
  wait
}
# one compare per out folder (the control runs 1 seed, the full rows 3); the dataset is unpacked first so the
# two do not race on it
$PY -c "from recbole_ifcdsr.data.packing import prepare_dataset_dir; prepare_dataset_dir('dataset/fk_abxi')" || exit 5
echo "grid starts at +$((SECONDS - START)) s, unfinished cells are stopped at +$LIMIT s"
run_grid & GRID=$!
NEXT=60
while kill -0 $GRID 2>/dev/null && [ $((SECONDS - START)) -lt $LIMIT ]; do
  sleep 5
  if [ $((SECONDS - START)) -ge $NEXT ]; then NEXT=$((NEXT + 60))
    echo "+$((SECONDS - START)) s: $(ls $W/fk_abxi*/*-seed?.json 2>/dev/null | wc -l) cells stored; GPU $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)"
  fi
done
if kill -0 $GRID 2>/dev/null; then
  echo "deadline at +$((SECONDS - START)) s: stopping the unfinished cells"
  pkill -TERM -f "recbole_ifcdsr (compare|run)"; sleep 5; pkill -KILL -f "recbole_ifcdsr (compare|run)"
fi
wait
echo "grid ended at +$((SECONDS - START)) s"
tail -n 25 $W/control.out $W/full.out
tar czf "$OUT/round4.tgz" --exclude=saved -C /tmp round4
$PY - "$W" <<'PY'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("fk_abxi*/*-seed*.json")):
    d = json.loads(f.read_text())
    v = d.get("sampled", {}).get("valid", {})
    t = d.get("sampled", {}).get("test", {})
    mrr = lambda s, k: round(100 * s[k]["MRR"], 2) if k in s else None
    print(f.name, d.get("stop_reason"), d.get("epochs_run"), d.get("best_epoch"),
          "valid", mrr(v, "X"), mrr(v, "Y"), "test", mrr(t, "X"), mrr(t, "Y"), "wall", d.get("wall_seconds"))
PY
