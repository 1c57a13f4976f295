#!/usr/bin/env bash
# Side-by-side throughput of quasistatic (Rust) and hand-written JAX, PyTorch and NumPy
# ensembles on the canonical tasks; writes bench/RESULTS.md (bench/RESULTS-quick.md with --quick).
#
#   bench/run.sh [--quick] [--rounds R] [--tasks t1,t2,t3,t4] [--budget SECONDS]
#
# Every round runs each implementation once on the same tasks, one after the other, so that
# load from other processes hits them alike; RESULTS.md reports medians over rounds.
# The Python packages go into bench/.venv (created if missing). torch from PyPI pulls the
# CUDA runtime wheels as dependencies (several GB); if it cannot be installed the benchmark
# goes on without it.
set -euo pipefail

QUICK=""
ROUNDS=3
TASKS="t1,t2,t3,t4"
BUDGET=600
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK="--quick" ;;
    --rounds) ROUNDS="$2"; shift ;;
    --tasks) TASKS="$2"; shift ;;
    --budget) BUDGET="$2"; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/bench/.venv"
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
fi
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q "jax[cpu]" numpy
HAVE_TORCH=1
if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "installing torch (large download)..."
  if ! "$PY" -m pip install -q torch; then
    echo "WARNING: torch could not be installed; running without the PyTorch baseline" >&2
    HAVE_TORCH=0
  fi
fi

cargo build --profile bench-release -p quasistatic-cli
BIN="$ROOT/target/bench-release/quasistatic"

OUT="$ROOT/bench/out${QUICK:+-quick}"
rm -rf "$OUT"
mkdir -p "$OUT"

machine() {
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "memory: $(grep -m1 MemTotal /proc/meminfo | awk '{print $2/1048576 " GiB"}')"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "kernel: $(uname -r)"
  echo "rustc: $(rustc --version)"
  echo "python: $("$PY" --version 2>&1)"
  "$PY" -c "import jax, jaxlib, numpy; print('jax:', jax.__version__, 'jaxlib:', jaxlib.__version__); print('numpy:', numpy.__version__)"
  if [ "$HAVE_TORCH" = 1 ]; then
    "$PY" -c "import torch; print('torch:', torch.__version__)"
  else
    echo "torch: not installed"
  fi
  echo "venv size: $(du -sh "$VENV" | cut -f1)"
}

B="$ROOT/bench/baselines"
for r in $(seq 1 "$ROUNDS"); do
  D="$OUT/r$r"
  mkdir -p "$D"
  machine > "$D/machine.txt"
  echo "== round $r: quasistatic"
  "$BIN" bench $QUICK --tasks "$TASKS" --repeats 1 --json "$D/rust.json"
  T="$D/tasks.json"
  COMMON=(--tasks-file "$T" --tasks "$TASKS" --budget "$BUDGET")
  echo "== round $r: JAX"
  "$PY" "$B/jax_bench.py" "${COMMON[@]}" --dtype float64 --variant chunk --out "$D/jax_f64_chunk.json" || echo "WARNING: baseline failed: jax_f64_chunk.json"
  "$PY" "$B/jax_bench.py" "${COMMON[@]}" --dtype float64 --variant chunk2 --out "$D/jax_f64_chunk2.json" || echo "WARNING: baseline failed: jax_f64_chunk2.json"
  "$PY" "$B/jax_bench.py" "${COMMON[@]}" --dtype float32 --variant chunk --out "$D/jax_f32_chunk.json" || echo "WARNING: baseline failed: jax_f32_chunk.json"
  if [ "$HAVE_TORCH" = 1 ]; then
    echo "== round $r: PyTorch"
    "$PY" "$B/torch_bench.py" "${COMMON[@]}" --dtype float64 --out "$D/torch_f64.json" || echo "WARNING: baseline failed: torch_f64.json"
  fi
  echo "== round $r: NumPy"
  "$PY" "$B/numpy_bench.py" "${COMMON[@]}" --out "$D/numpy_f64.json" || echo "WARNING: baseline failed: numpy_f64.json"
done

# A quick run does not overwrite the full-length results.
RESULTS="$ROOT/bench/RESULTS${QUICK:+-quick}.md"
"$PY" "$ROOT/bench/compare.py" "$OUT" "$RESULTS" > /dev/null
echo "wrote $RESULTS"
