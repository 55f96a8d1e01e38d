#!/usr/bin/env bash
# Installs what Ferry's demo and tests need on a bare Debian machine with Node 20:
# npm dependencies, nats-server, kubectl, zsh (completion tests) and Chromium for
# the console's browser tests (from Debian's packages, when we are root).
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*" >&2; }

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

missing=()
have nats-server || missing+=(nats-server)
if ! have kubectl && [ "${FERRY_SKIP_KUBECTL:-}" != 1 ]; then missing+=(kubernetes-client); fi
# The shell-completion tests run the zsh script `ferry completion zsh` prints in a real zsh.
have zsh || missing+=(zsh)
# The console's browser tests drive Debian's Chromium with playwright-core (no browser download).
if ! have chromium && [ "${FERRY_SKIP_CHROMIUM:-}" != 1 ]; then missing+=(chromium); fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
      apt-get update >/dev/null
      apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
    }
    # The Debian package enables a system nats-server on 4222; Ferry starts its own.
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nats-server >/dev/null 2>&1 || true; fi
  else
    say "missing: ${missing[*]}"
    say "install them with: sudo apt-get install -y ${missing[*]}   (or run this as root)"
    for m in "${missing[@]}"; do [ "$m" = nats-server ] && exit 1; done
  fi
fi
