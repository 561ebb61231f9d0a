#!/usr/bin/env bash
# Runs every cargo-fuzz target in tests/fuzz for a bounded time each.
# Usage: scripts/fuzz.sh [seconds per target, default 60] [extra libFuzzer args...]
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail

seconds="${1:-60}"
shift || true
cd "$(dirname "$0")/../tests/fuzz"

for target in $(cargo +nightly fuzz list); do
    echo "== fuzzing ${target} for ${seconds}s"
    cargo +nightly fuzz run "${target}" -- -max_total_time="${seconds}" "$@"
done
