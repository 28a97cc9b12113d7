#!/usr/bin/env bash
# The README's first command: install prerequisites, build zkpilot and the lab beside it, run
# `zkpilot demo` (which runs the lab's `zkpilot-lab demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zkpilot/target}"
cargo build --release --locked -q -p zkpilot -p zkpilot-lab
exec "$CARGO_TARGET_DIR/release/zkpilot" demo "$@"
