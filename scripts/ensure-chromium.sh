#!/usr/bin/env bash
# Make sure Debian's headless browser pair is installed for the browser tests:
# /usr/bin/chromium and /usr/bin/chromedriver (packages `chromium` and `chromium-driver`).
#
# Idempotent: returns at once when both exist and chromedriver answers `--version`. Otherwise,
# as root, it runs `apt-get install -y --no-install-recommends chromium chromium-driver`, first
# with the package lists as they are, then once more after `apt-get update`. It fails saying why
# (not root, apt failing, binaries still missing after the install).
#
# The tests start chromedriver themselves (tests/src/browser.rs); nothing is left running here.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver
PACKAGES=(chromium chromium-driver)

say() { printf '[ensure-chromium] %s\n' "$*"; }
die() {
    printf '[ensure-chromium] ERROR: %s\n' "$*" >&2
    exit 1
}

present() { [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ] && "$CHROMEDRIVER" --version >/dev/null 2>&1; }

if present; then
    say "$("$CHROMEDRIVER" --version | head -1); $CHROMIUM present"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "$CHROMIUM or $CHROMEDRIVER is missing and this user cannot install them.
  Run as root once: apt-get update && apt-get install -y --no-install-recommends ${PACKAGES[*]}"
command -v apt-get >/dev/null || die "no apt-get here: install ${PACKAGES[*]} (Debian names) some other way"

export DEBIAN_FRONTEND=noninteractive
say "installing ${PACKAGES[*]}"
if ! apt-get install -y --no-install-recommends "${PACKAGES[@]}"; then
    say "install failed with the current package lists; running apt-get update and retrying"
    apt-get update || die "apt-get update failed"
    apt-get install -y --no-install-recommends "${PACKAGES[@]}" || die "apt-get install ${PACKAGES[*]} failed"
fi

present || die "after installing ${PACKAGES[*]}, $CHROMIUM or a working $CHROMEDRIVER is still missing"
say "$("$CHROMEDRIVER" --version | head -1); $CHROMIUM installed"
