#!/usr/bin/env bash
# Install what chaingate's demo and tests need on a Debian machine, then a virtualenv with tox.
# Idempotent and quick when everything is already there. Sourced by scripts/demo.sh and scripts/test.sh.
set -euo pipefail

SYSTEM_PACKAGES=(python3 python3-venv python3-pip docker-registry apache2-utils skopeo ca-certificates git
                 debootstrap rpm)
# Needed as commands, from whichever package provides them (Node may come from NodeSource, not Debian).
COMMAND_PACKAGES=("npm:npm")

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
for entry in "${COMMAND_PACKAGES[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 2
  fi
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts the packaged registry as a service on :5000; the tests and demo run their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi

VENV="${CHAINGATE_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "tox>=4.20"
