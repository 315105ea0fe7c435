#!/bin/sh
# Integration tests: the real meshd and meshctl from BUILD against real peers.
set -eu
BUILD=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
MESH_BUILD=$(cd "$BUILD" && pwd)
export MESH_BUILD
# Debian's python3-grpcio belongs to /usr/bin/python3, whatever python3 is first on PATH.
exec /usr/bin/python3 "$here/runner.py" ${MESH_IT_PATTERN:-}
