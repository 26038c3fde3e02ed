#!/usr/bin/env bash
# Runs a command while N CPU-bound processes load the machine, then stops them by pid.
#
#   scripts/under_load.sh 2 .venv/bin/python -m pytest -q tests/stack/test_deployment.py
#
# How the heavy test modules (real scheduler, triggerer, browser) are shown to hold on a busy
# machine: a test that passes only on a quiet machine is flaky. Exit code: the command's.
set -uo pipefail
n=${1:?usage: under_load.sh N command...}
shift
export UNDER_LOAD="$n"  # the command may say it ran under load (bench/p4_event_latency.py does)
pids=()
stop() { [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; }
trap stop EXIT INT TERM
for _ in $(seq "$n"); do
  python3 -c "while True: pass" &
  pids+=("$!")
done
echo "under_load: $n CPU-bound processes (pids ${pids[*]}) while running: $*"
"$@"
