#!/usr/bin/env bash
# Wall time of `snakemake -n --forceall --quiet` on the full study (config/config.yaml) in
# the given checkouts, 3 repeats each, alternating; prints "label repeat seconds jobs".
# Usage: bench/workflow/bench_dry_run.sh LABEL=DIR [LABEL=DIR ...]   (from the repository)
set -euo pipefail
SNAKEMAKE="$(pwd)/.venv/bin/snakemake"
for rep in 1 2 3; do
  for pair in "$@"; do
    label="${pair%%=*}"; dir="${pair#*=}"
    start=$(date +%s.%N)
    jobs=$(cd "$dir" && "$SNAKEMAKE" -n --forceall --quiet rules 2>&1 | awk '$1 == "total" {print $2; exit}')
    end=$(date +%s.%N)
    printf '%s %s %.1f %s\n' "$label" "$rep" "$(echo "$end - $start" | bc)" "$jobs"
  done
done
