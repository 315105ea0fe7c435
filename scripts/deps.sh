#!/bin/sh
# Install the Debian packages meshd needs to build and test, only when some are missing.
# Safe to run repeatedly: it asks dpkg first and touches apt only if something is absent.
set -eu

# what `make all` needs; `sh scripts/deps.sh build` installs only these (deploy/Dockerfile's build stage)
BUILD_PKGS="build-essential pkg-config libgrpc-dev libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler
protobuf-compiler libyaml-dev libssl-dev libnghttp2-dev libre2-dev libcurl4-openssl-dev libmicrohttpd-dev libxxhash-dev"
PKGS="$BUILD_PKGS check libsubunit-dev
python3 python3-grpcio python3-yaml python3-protobuf openssl curl valgrind
iptables iproute2 util-linux
wrk nginx-light python3-httpbin nghttp2-client python3-cryptography python3-jwt prometheus python3-jsonpatch"
# `sh scripts/deps.sh fuzz` (make fuzz): libFuzzer comes with clang's runtime
if [ "${1:-}" = fuzz ]; then
	PKGS="$PKGS clang libclang-rt-14-dev"
fi
# `sh scripts/deps.sh image` (make image): buildah builds the images, mmdebstrap makes
# the Debian base image locally (no image registry is reachable); uidmap and
# fuse-overlayfs are what buildah's storage and user namespaces may ask for.
if [ "${1:-}" = image ]; then
	PKGS="buildah mmdebstrap uidmap fuse-overlayfs"
fi
# `sh scripts/deps.sh image-test`: the test imports the saved archives into a
# containerd of its own (a group of its own: on a machine with systemd the
# package starts the system's containerd too)
if [ "${1:-}" = image-test ]; then
	PKGS="containerd"
fi
if [ "${1:-}" = build ]; then
	PKGS="$BUILD_PKGS"
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

# Node.js and npm (for the @grpc/grpc-js-xds peer) may come from another packager.
# Not for the build and image groups, which test nothing with it.
case "${1:-}" in
build|image|image-test) ;;
*)
	if ! command -v npm >/dev/null 2>&1; then
		missing="$missing nodejs npm"
	fi
	;;
esac

# kubectl for the admission webhook test (tests/integration/test_kube_webhooks.py):
# Debian's kubernetes-client, unless some kubectl is already on PATH.  Not for
# the build and image groups either (the image's build stage compiles only).
case "${1:-}" in
build|image|image-test) ;;
*)
	if ! command -v kubectl >/dev/null 2>&1; then
		missing="$missing kubernetes-client"
	fi
	;;
esac

if [ -z "$missing" ]; then
	exit 0
fi

echo "deps: installing$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
