#!/usr/bin/env bash
# Builds the icsd image FROM scratch out of a static glibc build of icsd and
# icsctl. No registry is needed. Usage: deploy/build-image.sh [TAG]
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-${ICS_IMAGE:-ics/icsd:dev}}
TARGET=x86_64-unknown-linux-gnu
# --target keeps build scripts and proc macros dynamic; only our binaries are static.
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --target "$TARGET" --bin icsd --bin icsctl
CONTEXT=$(mktemp -d)
trap 'rm -rf "$CONTEXT"' EXIT
OUT="${CARGO_TARGET_DIR:-target}/$TARGET/release"
cp "$OUT/icsd" "$OUT/icsctl" deploy/Dockerfile "$CONTEXT/"
docker build --quiet --tag "$TAG" "$CONTEXT" >/dev/null
echo "$TAG"
