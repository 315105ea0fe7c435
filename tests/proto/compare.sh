#!/bin/sh
# Compare every message, field, enum value and service of proto/ against the
# upstream definitions, by descriptor: same full names (hence the same type
# URLs), field numbers, names, types, labels, type names and oneofs.
#
# Upstream Envoy/xds/googleapis protos come from the npm package
# @grpc/grpc-js-xds (its deps/ folder), fetched into BUILD_DIR at test time.
# Istio's CA API is not in it; compare.py pins that one inline.
# First a fixture of deliberately wrong protos must be rejected with exactly
# the expected mismatches, so a comparison that accepts anything fails.
#
# Usage: tests/proto/compare.sh [BUILD_DIR]      (default: build)
# Env:   MESH_UPSTREAM_PROTO_DIR=DIR  use an already extracted deps/ folder
#        instead of fetching the npm package.
# Exit 0 only when both the fixture check and the real comparison pass. If the
# upstream protos cannot be obtained the script fails and says so.
set -eu

BUILD=${1:-build}
PY=/usr/bin/python3
NPM_PKG=@grpc/grpc-js-xds
NPM_VER=1.14.1
NPM_TIMEOUT=180
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
mkdir -p "$BUILD"
WORK=$(cd "$BUILD" && pwd)/proto-compare
WKT_DIR=/usr/include

fail() {
	echo "proto: FAIL: $*"
	exit 1
}

command -v protoc >/dev/null 2>&1 || fail "protoc not found (Debian package protobuf-compiler)"
"$PY" -c 'import google.protobuf' 2>/dev/null || fail "$PY cannot import google.protobuf (Debian package python3-protobuf)"

# --- 1. upstream .proto files
if [ -n "${MESH_UPSTREAM_PROTO_DIR:-}" ]; then
	DEPS=$MESH_UPSTREAM_PROTO_DIR
else
	DEPS=$WORK/npm-$NPM_VER/package/deps
	if [ ! -d "$DEPS/envoy-api" ]; then
		command -v npm >/dev/null 2>&1 ||
			fail "npm not found: cannot fetch $NPM_PKG@$NPM_VER; the upstream comparison did NOT run"
		rm -rf "$WORK/npm-$NPM_VER"
		mkdir -p "$WORK/npm-$NPM_VER"
		if ! (cd "$WORK/npm-$NPM_VER" && timeout "$NPM_TIMEOUT" npm pack "$NPM_PKG@$NPM_VER") \
			>"$WORK/npm-$NPM_VER/pack.log" 2>&1; then
			grep -i 'error' "$WORK/npm-$NPM_VER/pack.log" | head -3 | sed 's/^/  /'
			fail "could not fetch $NPM_PKG@$NPM_VER from the npm registry (unreachable?); the upstream comparison did NOT run"
		fi
		tgz=$(ls "$WORK"/npm-$NPM_VER/*.tgz 2>/dev/null | head -1)
		[ -n "$tgz" ] || fail "npm pack produced no tarball; the upstream comparison did NOT run"
		tar xzf "$tgz" -C "$WORK/npm-$NPM_VER" || fail "cannot extract $tgz"
	fi
fi
for d in envoy-api googleapis protoc-gen-validate xds; do
	[ -d "$DEPS/$d" ] || fail "$DEPS/$d missing: the package layout changed; the upstream comparison did NOT run"
done

# --- 2. upstream tree without field options (see strip_options.py)
STRIPPED=$WORK/upstream
rm -rf "$STRIPPED"
"$PY" "$HERE/strip_options.py" "$DEPS" "$STRIPPED" || fail "cannot prepare upstream protos"
UP_INC="-I$STRIPPED/envoy-api -I$STRIPPED/googleapis -I$STRIPPED/protoc-gen-validate -I$STRIPPED/xds -I$WKT_DIR"

# upstream_has REL: true when some upstream root holds REL
upstream_has() {
	for d in envoy-api googleapis protoc-gen-validate xds; do
		[ -f "$STRIPPED/$d/$1" ] && return 0
	done
	return 1
}

# descset TREE OUT: descriptor set of every .proto under TREE (our side)
descset() {
	files=$(cd "$1" && find . -name '*.proto' | sed 's|^\./||' | sort)
	# shellcheck disable=SC2086
	protoc -I"$1" -I"$WKT_DIR" --include_imports --descriptor_set_out="$2" $files
}

# upstream_descset TREE OUT: upstream descriptor set of the files at TREE's paths
upstream_descset() {
	list=""
	for f in $(cd "$1" && find . -name '*.proto' | sed 's|^\./||' | sort); do
		if upstream_has "$f"; then
			list="$list $f"
		fi
	done
	# shellcheck disable=SC2086
	protoc $UP_INC --include_imports --descriptor_set_out="$2" $list 2>"$WORK/protoc-upstream.log" || {
		grep -v warning "$WORK/protoc-upstream.log" | head -20
		fail "protoc rejected the upstream protos"
	}
}

# --- 3. the fixture must be rejected with exactly the expected mismatches
FIX=$HERE/fixtures/wrong
descset "$FIX" "$WORK/fixture.pb" || fail "protoc rejected the fixture"
upstream_descset "$FIX" "$WORK/fixture-upstream.pb"
if "$PY" "$HERE/compare.py" "$WORK/fixture.pb" "$WORK/fixture-upstream.pb" >"$WORK/fixture.out" 2>&1; then
	cat "$WORK/fixture.out"
	fail "the comparison accepted the deliberately wrong fixture"
fi
want=$(grep -c . "$FIX/EXPECTED")
got=$(grep -c '^MISMATCH ' "$WORK/fixture.out" || true)
missing=0
while IFS= read -r line; do
	[ -n "$line" ] || continue
	if ! grep '^MISMATCH ' "$WORK/fixture.out" | grep -qF -- "$line"; then
		echo "proto: fixture: expected a mismatch like: $line"
		missing=1
	fi
done <"$FIX/EXPECTED"
if [ "$missing" -ne 0 ] || [ "$got" -ne "$want" ]; then
	cat "$WORK/fixture.out"
	fail "fixture: $got mismatches reported, $want expected"
fi
echo "proto: fixture rejected with the $want expected mismatches"

# --- 4. our tree against upstream
descset "$ROOT/proto" "$WORK/ours.pb" || fail "protoc rejected proto/"
upstream_descset "$ROOT/proto" "$WORK/ours-upstream.pb"
"$PY" "$HERE/compare.py" "$WORK/ours.pb" "$WORK/ours-upstream.pb"
