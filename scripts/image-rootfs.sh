#!/bin/sh
# Lay out a runtime image's whole file tree, distroless-style, for a FROM
# scratch stage (deploy/Dockerfile): the given binaries (stripped) in
# /usr/local/bin, every shared library they load as ldd resolves it here
# (the dynamic loader included), the CA bundle, /etc/passwd and /etc/group
# with root and one non-root user, nsswitch.conf, os-release and /tmp.
# Nothing else: no shell, no package manager, no libc tools.
#
#   sh scripts/image-rootfs.sh [--iptables] DEST USER UID BINARY...
#
# --iptables: Debian's iptables too (the nft and legacy multi-call binaries,
# the names `meshproxy iptables` runs, iptables-restore and iptables-save
# among them, as Debian's alternatives point them: nft; and the xtables
# extensions they dlopen(); and iproute2's ip, for TPROXY mode's policy
# routing), for the capture init container, which runs the
# meshproxy image as Istio's runs its proxy image.
#
# Run in the build stage, where the binaries were linked: the libraries are
# the ones they were built against.  A library that is only dlopen()ed is not
# seen by ldd; meshd and meshproxy open none (glibc 2.36 has its "files" and
# "dns" NSS modules inside libc.so.6, OpenSSL 3's default provider is built in).
set -eu

iptables=no
if [ "${1:-}" = --iptables ]; then
	iptables=yes
	shift
fi
if [ $# -lt 4 ]; then
	echo "usage: $0 [--iptables] DEST USER UID BINARY..." >&2
	exit 2
fi
dest=$1
user=$2
uid=$3
shift 3

mkdir -p "$dest/usr/local/bin" "$dest/etc/ssl/certs"

# copy_lib PATH: PATH as ldd printed it, copied under its own name into the
# directory it really lives in (so /lib/x86_64-linux-gnu/libc.so.6 lands in
# usr/lib/x86_64-linux-gnu on a merged-/usr system, where /lib is a symlink
# the tree gets too, below)
copy_lib() {
	dir=$(realpath "$(dirname "$1")")
	mkdir -p "$dest$dir"
	if [ ! -e "$dest$dir/$(basename "$1")" ]; then
		cp -L "$1" "$dest$dir/$(basename "$1")"
	fi
}

# copy_deps FILE: the shared libraries FILE loads, as ldd resolves them:
# "libfoo.so.1 => /lib/.../libfoo.so.1 (0x...)" and the loader's bare
# "/lib64/ld-linux-x86-64.so.2 (0x...)"; "linux-vdso.so.1 (0x...)" is the
# kernel's and has no file
copy_deps() {
	if ldd "$1" | grep -q "not found"; then
		echo "image-rootfs: $1: a library is not found:" >&2
		ldd "$1" >&2
		exit 1
	fi
	for lib in $(ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
		copy_lib "$lib"
	done
}

for bin in "$@"; do
	out="$dest/usr/local/bin/$(basename "$bin")"
	cp "$bin" "$out"
	# debug info stays in the build stage: it is most of an -O2 -g binary's size
	strip --strip-unneeded "$out"
	copy_deps "$bin"
done

if [ "$iptables" = yes ]; then
	mkdir -p "$dest/usr/sbin" "$dest/run"
	for multi in xtables-nft-multi xtables-legacy-multi; do
		cp "/usr/sbin/$multi" "$dest/usr/sbin/$multi"
		copy_deps "/usr/sbin/$multi"
	done
	for name in iptables iptables-restore iptables-save ip6tables ip6tables-restore ip6tables-save; do
		ln -sf xtables-nft-multi "$dest/usr/sbin/$name"
		ln -sf xtables-nft-multi "$dest/usr/sbin/${name%%-*}-nft${name#"${name%%-*}"}"
		ln -sf xtables-legacy-multi "$dest/usr/sbin/${name%%-*}-legacy${name#"${name%%-*}"}"
	done
	# iproute2's ip: TPROXY mode's policy routing (ip rule / ip route)
	ipbin=$(command -v ip)
	cp "$ipbin" "$dest/usr/sbin/ip"
	copy_deps "$ipbin"
	ext=/usr/lib/$(gcc -print-multiarch)/xtables
	mkdir -p "$dest$ext"
	for so in "$ext"/*.so; do
		cp "$so" "$dest$so"
		copy_deps "$so"
	done
fi

# the merged-/usr symlinks the loader path in every binary goes through
# (PT_INTERP is /lib64/ld-linux-x86-64.so.2 on amd64)
for d in lib lib64 lib32 libx32; do
	if [ -L "/$d" ] && [ -d "$dest/usr/$d" ]; then
		ln -sfn "usr/$d" "$dest/$d"
	fi
done

cp -L /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/ca-certificates.crt"
cp -L /etc/os-release "$dest/etc/os-release"

# root, and the one user the image runs as (distroless's "nonroot" is 65532;
# Istio's proxy runs as 1337)
cat >"$dest/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
$user:x:$uid:$uid:$user:/home/$user:/sbin/nologin
EOF
cat >"$dest/etc/group" <<EOF
root:x:0:
$user:x:$uid:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$dest/etc/nsswitch.conf"

mkdir -p "$dest/root" "$dest/home/$user" "$dest/tmp"
chmod 0700 "$dest/root"
chmod 1777 "$dest/tmp"
chown "$uid:$uid" "$dest/home/$user"
