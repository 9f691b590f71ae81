#!/usr/bin/env bash
# Debian's `chromium`, for the tests that open nishard's HTML reports in a real browser
# (tests/report): installed with apt-get when missing; a no-op (well under a second) when
# it is there.
#
#   scripts/chromium/install.sh     prints the browser's path on stdout
#
# Exit status: 0 when a browser is there; 2 when it cannot be installed here (not root, no
# apt-get): the reason is the last line of stderr; 1 on any other failure.
set -euo pipefail

say() { echo "chromium: $*" >&2; }
cannot() { say "cannot install chromium here: $*"; exit 2; }

found() {
  for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  done
  return 1
}

if found; then exit 0; fi

[ "$(id -u)" = 0 ] || cannot "not root (it installs Debian's chromium package)"
command -v apt-get >/dev/null || cannot "no apt-get (it installs Debian's chromium package)"

# One install at a time (two test sessions at once): the second waits, then finds it.
{ exec 9>/var/lock/nishard-chromium.lock; } 2>/dev/null && command -v flock >/dev/null &&
  flock -w 900 9 || true
if found; then exit 0; fi

say "installing chromium (apt-get)"
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt-get (another service's set-up) rather than fail on its lock.
apt=(apt-get -qq -o DPkg::Lock::Timeout=600)
"${apt[@]}" update >/dev/null || cannot "apt-get update failed (no network?)"
"${apt[@]}" install -y --no-install-recommends chromium fonts-dejavu-core >/dev/null ||
  cannot "apt-get install chromium failed"
found || { say "chromium installed but not on PATH"; exit 1; }
