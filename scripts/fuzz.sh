#!/usr/bin/env bash
# Runs every cargo-fuzz target in tests/fuzz for a bounded time each.
# Usage: scripts/fuzz.sh [seconds per target, default 60] [extra libFuzzer args...]
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail

seconds="${1:-60}"
shift || true
cd "$(dirname "$0")/.."

# cargo-fuzz looks for ./fuzz unless told where the targets live.
for target in $(cargo +nightly fuzz list --fuzz-dir tests/fuzz); do
    echo "== fuzzing ${target} for ${seconds}s"
    cargo +nightly fuzz run --fuzz-dir tests/fuzz "${target}" -- -max_total_time="${seconds}" "$@"
done
