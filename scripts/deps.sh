#!/bin/sh
# deps.sh - install the Debian packages mfx needs to build, test and bench,
# only those missing.  Needs root (apt-get) when something is missing.
#   scripts/deps.sh            build + test packages
#   MFX_DEPS_MIN=1 scripts/deps.sh   build packages only
set -eu

# libfreetype-dev and fonts-dejavu-core are for the build only: the charts'
# glyph atlas is rendered into mfx at build time (analyzer/font/fontgen.c).
BUILD="gcc make pkg-config libc6-dev libunwind-dev libdw-dev libelf-dev
libpng-dev libzstd-dev zlib1g-dev libfreetype-dev fonts-dejavu-core"
TEST="g++ xz-utils jq bc file binutils elfutils util-linux python3 sqlite3 postgresql-15 postgresql-contrib redis-server memcached
heaptrack clang libclang-rt-14-dev libjemalloc2 libtcmalloc-minimal4
libmimalloc2.0 chromium golang-go procps psmisc zstd"

want=$BUILD
[ "${MFX_DEPS_MIN:-0}" = 1 ] || want="$want $TEST"

missing=
for p in $want; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in *" installed") ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0

echo "mfx: installing missing packages:$missing" >&2
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
		echo "mfx: need root to install:$missing (run scripts/deps.sh as root)" >&2
		exit 1
	fi
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
# Only refresh the package lists when a package is unknown to apt.
for p in $missing; do
	apt-cache show "$p" >/dev/null 2>&1 || { $SUDO apt-get update -qq; break; }
done
# Services installed here must not start on their own: tests start them by pid.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod 755 /usr/sbin/policy-rc.d
	trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
