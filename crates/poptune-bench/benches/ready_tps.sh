#!/usr/bin/env bash
# Ready-decision transactions per second: the no-op Python trainable (examples/noop/noop.py),
# population 32, 20 steps each, ready after every step (interval 1), so that every segment
# ends in one ready transaction (record the step, read the population, decide, write the
# decision and lineage).
#   - PostgreSQL: K = 1, 2, 4, 8 worker processes of one slot each (`poptune worker`);
#   - SQLite: one `poptune run` process with K slots (SQLite takes one writer process).
# Usage: bash crates/poptune-bench/benches/ready_tps.sh   (from the repository root; starts a
# throwaway PostgreSQL with scripts/pg-test-server unless POPTUNE_TEST_PG_URL names one)
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --release -q -p poptune-cli
bin="$PWD/target/release/poptune"
py="$(python3 -c 'import sys; print(sys.executable)')"
# examples/noop/noop.py imports the poptune package from the checkout's python/ folder
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
url="${POPTUNE_TEST_PG_URL:-$(scripts/pg-test-server)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
write() { # name slots
  cat > "$work/$1.toml" <<TOML
name = "$1"
population = 32
slots = $2
directory = "$1"
[policy]
interval = 1
[space.lr]
type = "float"
low = 0.1
high = 10.0
log = true
[stop]
steps = 20
[trainable]
command = ["$py", "$PWD/examples/noop/noop.py"]
TOML
}
now() { date +%s.%N; }
for k in 1 2 4 8; do
  name="tps-pg-$k-$$"
  write "$name" 1
  start=$(now)
  "$bin" run "$work/$name.toml" --store "$url" --quiet > /dev/null 2>&1 &
  pids=($!)
  for ((i = 1; i < k; i++)); do
    # Joins once the first process has created the experiment.
    until "$bin" status --store "$url" --experiment "$name" > /dev/null 2>&1; do sleep 0.05; done
    "$bin" worker --store "$url" --experiment "$name" --quiet > /dev/null 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  end=$(now)
  python3 -c "t=$end-$start; print(f'PostgreSQL, {$k} worker processes: 640 ready transactions in {t:.2f} s = {640/t:,.0f} per second')"
  psql -q "$url" -c "DELETE FROM poptune_experiments WHERE name = '$name'" > /dev/null
  name="tps-sqlite-$k"
  write "$name" "$k"
  start=$(now)
  "$bin" run "$work/$name.toml" --quiet > /dev/null 2>&1
  end=$(now)
  python3 -c "t=$end-$start; print(f'SQLite, 1 process with {$k} slots: 640 ready transactions in {t:.2f} s = {640/t:,.0f} per second')"
done
