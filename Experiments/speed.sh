#!/usr/bin/env bash
# Speed: forward + backward time of every layer against sequence length, batch 1, d_model 128, lengths 1K..16K,
# one process per measurement (so peak RSS is the measurement's own), release build with this CPU's vector units.
# Usage: Experiments/speed.sh [OUT]   (default Results/speed). Writes OUT/speed.jsonl, OUT/speed.svg, OUT/table.md.
# Run it on a quiet machine: the figures are wall-clock medians of 3 repetitions.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-Results/speed}"
layers=(attention fox s4 s4d mamba mamba2 gla retnet hgrn2 mlstm deltanet gated_deltanet deltaproduct rat gam)
lengths=(1024 2048 4096 8192 16384)
scripts/setup
scripts/build >/dev/null
bin="$(swift build -c release --show-bin-path)/seqlab"
mkdir -p "$out"
rows="$out/speed.jsonl.partial"
: > "$rows"
for layer in "${layers[@]}"; do
  for length in "${lengths[@]}"; do
    "$bin" bench --layer "$layer" --shape "1x$length" --repeats 3 --json | tee -a "$rows"
  done
done
mv "$rows" "$out/speed.jsonl"
"$bin" plot "$out" --kind speed --out "$out/speed.svg"
{
  echo "| layer (fwd + bwd ms) |$(printf ' %s |' "${lengths[@]}")"
  echo "|---|$(printf -- '---|%.0s' "${lengths[@]}")"
  for layer in "${layers[@]}"; do
    printf '| %s |' "$layer"
    for length in "${lengths[@]}"; do
      ms=$(grep "\"layer\":\"$layer\"" "$out/speed.jsonl" | grep "\"length\":$length[,}]" | sed 's/.*"fwd_bwd_ms":\([0-9.]*\).*/\1/' | head -1)
      [ -n "$ms" ] && ms=$(printf '%.1f' "$ms")
      printf ' %s |' "${ms:-}"
    done
    echo
  done
} > "$out/table.md"
cat "$out/table.md"
