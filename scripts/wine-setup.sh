#!/bin/sh
# wine-setup.sh installs Wine 10 (Debian trixie's wine64) into a debootstrap
# chroot, so the Windows build of hive-agent can be tested on a Linux machine
# without upgrading the machine's own C library (Debian bookworm's Wine 8
# cannot start Go 1.26 programs). Idempotent: a finished chroot is kept under
# $HIVE_WINE_ROOT (default /var/cache/hive-agent-wine) and reused. Needs root
# and network access to a Debian mirror. scripts/wine-exec runs programs in it.
set -eu

ROOT=${HIVE_WINE_ROOT:-/var/cache/hive-agent-wine}
MIRROR=${HIVE_WINE_MIRROR:-}

if [ -x "$ROOT/usr/lib/wine/wine64" ] && [ -f "$ROOT/.hive-agent-wine-ready" ]; then
	echo "wine-setup: $ROOT is ready"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "wine-setup: needs root (debootstrap and chroot)" >&2
	exit 1
fi
if [ -z "$MIRROR" ]; then
	# The machine's own Debian mirror: the first deb.debian.org-like URI of
	# its apt sources that serves the main archive.
	MIRROR=$(grep -hEo 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null |
		grep -v security | head -n1 | tr -d ' ')
	MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
if ! command -v debootstrap >/dev/null; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
if [ ! -x "$ROOT/usr/bin/apt-get" ] || [ ! -f "$ROOT/.hive-agent-debootstrap-done" ]; then
	rm -rf "$ROOT"
	mkdir -p "$ROOT"
	echo "wine-setup: debootstrap trixie from $MIRROR into $ROOT"
	debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1 ||
		{ tail -n 20 "$ROOT.debootstrap.log" >&2; exit 1; }
	touch "$ROOT/.hive-agent-debootstrap-done"
fi
echo "wine-setup: installing wine64 in the chroot"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
# A private mount namespace: /proc for the package scripts, gone afterwards.
unshare --mount --propagation private sh -c "mount -t proc proc '$ROOT/proc' &&
	chroot '$ROOT' sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wine64 >/dev/null'"
unshare --mount --propagation private sh -c "mount -t proc proc '$ROOT/proc' && chroot '$ROOT' /usr/lib/wine/wine64 --version"
touch "$ROOT/.hive-agent-wine-ready"
