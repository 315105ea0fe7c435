#!/bin/sh
# `make image`, `make image-save`: the meshd and meshproxy images, built here
# with Debian's buildah from deploy/Dockerfile; no image registry is needed.
#
#   sh scripts/image.sh build   base image (mmdebstrap, cached), then
#                               meshd:TAG and meshproxy:TAG (also :latest);
#                               prints their sizes
#   sh scripts/image.sh save    build/image/{meshd,meshproxy}-TAG.oci.tar, OCI
#                               archives for `kind load image-archive` or
#                               `ctr -n k8s.io images import`
#   sh scripts/image.sh sizes   the sizes of meshd:TAG and meshproxy:TAG
#
# TAG is `git describe --always --dirty` unless given (TAG=...).
# The base: Debian bookworm (variant minbase, plus ca-certificates) made by
# mmdebstrap from this machine's own apt sources into
# build/image/debian-bookworm.tar once, and imported into buildah's local
# storage as localhost/debian:bookworm; `rm build/image/debian-bookworm.tar`
# makes a fresh one.  The build stage's packages and compile are buildah
# layers (--layers): a second `make image` with no source change reuses them.
# Storage: buildah's default (overlay here).  IMAGE_STORAGE=vfs where overlay
# does not work (inside some containers): a storage of its own (vfs cannot
# share overlay's), /var/lib/containers/storage-vfs, through
# build/image/storage-vfs.conf; slower and bigger (every layer a full copy).
# tests/image/ follows the same variable.
set -eu

cmd=${1:-build}
out=build/image
tag=${TAG:-$(git describe --always --dirty 2>/dev/null || echo dev)}
base_tar=$out/debian-bookworm.tar
base_img=localhost/debian:bookworm
# the names deploy/ uses (deploy/deployment.yaml, deploy/gateway/) and the
# injector's default --proxy-image
images="meshd meshproxy"

if [ "${IMAGE_STORAGE:-}" = vfs ]; then
	mkdir -p "$out"
	printf '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage-vfs"\ngraphroot = "/var/lib/containers/storage-vfs"\n' \
		>"$out/storage-vfs.conf"
	CONTAINERS_STORAGE_CONF=$(pwd)/$out/storage-vfs.conf
	export CONTAINERS_STORAGE_CONF
elif [ -n "${IMAGE_STORAGE:-}" ]; then
	echo "image: IMAGE_STORAGE: vfs or empty (buildah's default), not $IMAGE_STORAGE" >&2
	exit 2
fi

log() {
	echo "image: $*" >&2
}

# base_build: the mmdebstrap tarball, once.  Its apt sources are this
# machine's (whatever mirror or proxy the host uses), so the build stage's
# apt-get reaches what the host reaches.
base_build() {
	if [ -f "$base_tar" ] && [ -s "$base_tar" ]; then
		return 0
	fi
	mkdir -p "$out"
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		src=/etc/apt/sources.list.d/debian.sources
	elif [ -f /etc/apt/sources.list ]; then
		src=/etc/apt/sources.list
	else
		log "no apt sources on this machine to make the base image from"
		return 1
	fi
	log "base: mmdebstrap bookworm (minbase) from $src"
	start=$(date +%s)
	rm -rf "$base_tar.tmp"
	mmdebstrap --quiet --format=tar --variant=minbase --include=ca-certificates \
		bookworm "$base_tar.tmp" "$src"
	mv "$base_tar.tmp" "$base_tar"
	log "base: $(du -h "$base_tar" | cut -f1) in $(($(date +%s) - start)) s"
}

# base_import: the tarball as localhost/debian:bookworm, again whenever the
# tarball is newer than the last import (build/image/base.id holds its image id)
base_import() {
	id=$(buildah images --quiet --no-trunc "$base_img" 2>/dev/null | head -n1 || true)
	if [ -n "$id" ] && [ -f "$out/base.id" ] && [ -z "$(find "$base_tar" -newer "$out/base.id")" ] &&
		[ "$(cat "$out/base.id")" = "$id" ]; then
		return 0
	fi
	log "base: importing $base_tar as $base_img"
	c=$(buildah from --quiet scratch)
	buildah add --quiet "$c" "$base_tar" / >/dev/null
	buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--cmd /bin/bash --label org.opencontainers.image.description="Debian bookworm minbase (mmdebstrap)" "$c"
	buildah commit --quiet --rm "$c" "$base_img" >/dev/null
	buildah images --quiet --no-trunc "$base_img" | head -n1 >"$out/base.id"
}

sizes() {
	for name in $images; do
		echo "$name:$tag $(buildah images --format "{{.Size}}" "$name:$tag" | head -n1)"
	done
}

build() {
	base_build
	base_import
	for name in $images; do
		log "building $name:$tag (deploy/Dockerfile, target $name)"
		buildah bud --quiet --isolation chroot --layers --pull=never \
			--build-arg BASE="$base_img" --build-arg VERSION="$tag" \
			--target "$name" --tag "$name:$tag" --tag "$name:latest" \
			-f deploy/Dockerfile . >/dev/null
	done
	sizes
}

# save: one OCI layout per image holding both of its tags, as a tar.  The
# reference names are the full ones (docker.io/library/meshd:TAG) because
# containerd keeps a name it imports as it is, and the kubelet looks
# `image: meshd:latest` up by its full name.
save() {
	mkdir -p "$out"
	for name in $images; do
		dir=$out/$name-$tag.oci
		rm -rf "$dir"
		for t in "$tag" latest; do
			buildah push --quiet "$name:$t" "oci:$dir:docker.io/library/$name:$t"
		done
		tar -C "$dir" -cf "$out/$name-$tag.oci.tar" .
		rm -rf "$dir"
		log "wrote $out/$name-$tag.oci.tar ($(du -h "$out/$name-$tag.oci.tar" | cut -f1))"
	done
}

case "$cmd" in
build) build ;;
save) save ;;
sizes) sizes ;;
*)
	echo "usage: $0 build|save|sizes" >&2
	exit 2
	;;
esac
