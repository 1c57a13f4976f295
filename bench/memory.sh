#!/usr/bin/env bash
# Peak memory and wall time of large `simulate` runs against the number of records written,
# for one or two binaries side by side (alternated per row), as in bench/SCALING.md
# "Memory of large runs":
#
#   bench/memory.sh NEW_BINARY [OLD_BINARY]      (about 5 minutes on 2 cores with both)
#
# Rows: label-noise SGD on the valley, 4000 steps recorded every 10 (401 records of 7
# observables per trajectory), N trajectories, with and without trajectories.csv. Time is
# the whole process (simulation and writing); RSS the process's peak resident memory.
set -euo pipefail
NEW="$1"
OLD="${2:-}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

config() { # N save_trajectories
  cat <<CFG
seed = 1
steps = 4000
trajectories = $1
record_every = 10
save_trajectories = $2
[model]
kind = "valley"
profile = "quadratic"
c = 1.0
start_y = 2.0
[noise]
kind = "label"
sigma = 1.0
[optimizer]
kind = "sgd"
lr = 0.05
CFG
}

measure() { # binary config
  rm -rf "$WORK/out"
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$1" simulate "$2" --out "$WORK/out" --no-progress >/dev/null 2>"$WORK/err" || {
    echo "| failed: $(tail -1 "$WORK/err") |"
    return
  }
  read -r secs kib <"$WORK/time"
  local csv="-"
  [ -f "$WORK/out/trajectories.csv" ] && csv="$(du -m "$WORK/out/trajectories.csv" | cut -f1) MB"
  echo "$secs | $((kib / 1024)) | $csv"
}

echo "| N | trajectories.csv | records written | binary | seconds | peak RSS (MiB) | CSV size |"
echo "|---:|---|---:|---|---:|---:|---:|"
for spec in "5000 true" "20000 true" "20000 false" "80000 false"; do
  set -- $spec
  config "$1" "$2" >"$WORK/c.toml"
  records=$(($1 * 401 * 7))
  for b in new old; do
    bin="$NEW"
    [ "$b" = old ] && bin="$OLD"
    [ -z "$bin" ] && continue
    echo "| $1 | $2 | $records | $b | $(measure "$bin" "$WORK/c.toml") |"
  done
done
