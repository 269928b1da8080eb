#!/usr/bin/env bash
# Benchmarks of the external-process runner with the no-op Python trainable
# (examples/noop/noop.py): population 32, 100 steps each, ready every 5 steps.
#   1. no-op steps on 2 slots: member-steps per second;
#   2. 10 ms steps on 2 slots: wall time divided by the ideal (32 × 100 × 10 ms / 2 = 16 s).
# Usage: bash crates/poptune-bench/benches/python_noop.sh [PARENT]   (from the repository root)
# The experiments are written to a new temporary directory under PARENT (default: the system's
# temporary directory), e.g. /dev/shm to leave the disk out. PYFLAGS adds options to the
# interpreter's command line, e.g. PYFLAGS=-S to measure without site-packages.
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --release -q -p poptune-cli
bin="$PWD/target/release/poptune"
# The interpreter itself, not a shim script in front of it (pyenv's costs ~80 ms per start).
py="$(python3 -c 'import sys; print(sys.executable)')"
# examples/noop/noop.py imports the poptune package from the checkout's python/ folder
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
work="$(mktemp -d -p "${1:-${TMPDIR:-/tmp}}")"
trap 'rm -rf "$work"' EXIT
write() { # name sleep
  cat > "$work/$1.toml" <<TOML
name = "$1"
population = 32
slots = 2
[policy]
interval = 5
[space.lr]
type = "float"
low = 0.1
high = 10.0
log = true
[stop]
steps = 100
[trainable]
command = ["$py", ${PYFLAGS:+\"$PYFLAGS\", }"$PWD/examples/noop/noop.py"]
env = { POPTUNE_NOOP_SLEEP = "$2" }
TOML
}
# Each run writes a new experiment directory; they are all deleted at the end, not between
# runs (deleting thousands of files just before a run slows the next one's file creation on
# some file systems, which would measure the clean-up instead of poptune).
times=()
for i in 1 2 3 4 5; do
  write "noop$i" 0
  start=$(date +%s.%N); "$bin" run "$work/noop$i.toml" --quiet > /dev/null 2>&1; end=$(date +%s.%N)
  t=$(python3 -c "print(f'{$end-$start:.3f}')")
  times+=("$t")
  python3 -c "t=$t; print(f'no-op Python trainable: 3200 member-steps in {t:.3f} s = {3200/t:,.0f} member-steps/s')"
done
python3 -c "import statistics as s; t=s.median([$(IFS=,; echo "${times[*]}")]); print(f'median of 5: {t:.3f} s = {3200/t:,.0f} member-steps/s')"
write sleep10ms 0.01
start=$(date +%s.%N); "$bin" run "$work/sleep10ms.toml" --quiet > /dev/null 2>&1; end=$(date +%s.%N)
python3 -c "t=$end-$start; print(f'10 ms steps on 2 slots: {t:.3f} s against the ideal 16.000 s = {t/16:.3f} x ideal')"
