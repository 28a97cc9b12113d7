#!/usr/bin/env bash
# The README's second command, and what CI runs: install prerequisites, check formatting and
# lints, run every test (unit, property, and end-to-end on real ZooKeeper) with nextest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    rustup component list --installed | grep -q "^$component" || rustup component add "$component"
  done
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi
# Builds are cached outside the clone so a repeat run is fast; a fresh machine builds from scratch.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zkpilot/target}"
export CARGO_TERM_COLOR=never

cargo fmt --all --check
cargo clippy --locked --workspace --all-targets --all-features -q -- -D warnings
cargo nextest run --locked --workspace --all-features --profile ci
