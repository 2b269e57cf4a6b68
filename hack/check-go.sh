#!/usr/bin/env bash
# Checks that the Go toolchain GO (default: go on PATH) is at least the version go.mod's go line
# names; otherwise says in one line how to install it. Debian 12's golang-go (1.19) is too old.
#   usage: check-go.sh [GO]
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(sed -n 's/^go //p' go.mod)
hint="install Go $want or later: rm -rf /usr/local/go && curl -fsSL https://go.dev/dl/go$want.linux-amd64.tar.gz | tar -C /usr/local -xz (the Makefile puts /usr/local/go/bin first on PATH)"
go=$(command -v "${1:-go}" || true)
if [ -z "$go" ]; then
  echo "kiln needs Go >= $want and finds no ${1:-go} on PATH; $hint" >&2
  exit 1
fi
# Outside the module and with GOTOOLCHAIN=local, so that Go >= 1.21 reports itself instead of
# switching to the toolchain go.mod asks for.
have=$(cd / && GOTOOLCHAIN=local "$go" env GOVERSION 2>/dev/null | sed 's/^go//; s/ .*//' || true)
if [ -z "$have" ] || [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" != "$want" ]; then
  echo "kiln needs Go >= $want; $go is ${have:-too old to say}; $hint" >&2
  exit 1
fi
