#!/usr/bin/env bash
# Installs chaingate for the chaingate GitHub Actions and tells the next steps where it is.
#
# Why a venv from a hash-pinned file rather than `pip install chaingate`: the action runs with the job's
# OIDC token and registry credentials at hand, so every byte it executes is pinned — the dependencies
# by hash (actions/requirements.txt, --require-hashes), chaingate itself from the action's own checkout
# (the commit the workflow pinned in `uses:`), with --no-build-isolation so that not even the build
# backend is fetched unpinned.
#
# The venv is keyed by the action's path and the requirements, so several chaingate actions in one job
# install once. It writes `chaingate` (the CLI) and `ci` (`chaingate-ci`, which runs a step and reports
# it through the runner's channels) to $GITHUB_OUTPUT.
#
# CHAINGATE_SKIP_INSTALL=1 uses the chaingate already on PATH instead: a self-hosted runner or a
# container job whose image ships it (e.g. the Tekton step image), or this repository's runner
# emulation tests. CHAINGATE_PYTHON_INTERPRETER picks the Python that creates the venv (default
# python3; chaingate needs 3.11 or later).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_dir="$(dirname "$here")"

fail() {
  # Escaped as @actions/core's escapeData escapes an annotation's message (a path may hold % or a newline).
  local message="${1//%/%25}"
  message="${message//$'\r'/%0D}"
  message="${message//$'\n'/%0A}"
  printf '::error title=chaingate install::%s\n' "$message"
  exit 2
}

if [ "${CHAINGATE_SKIP_INSTALL:-}" = "1" ]; then
  bin="$(command -v chaingate || true)"
  [ -n "$bin" ] || fail "CHAINGATE_SKIP_INSTALL=1 but there is no chaingate on PATH"
  ci="$(dirname "$bin")/chaingate-ci"
  [ -x "$ci" ] || ci="$(command -v chaingate-ci || true)"
  [ -n "$ci" ] && "$ci" --help >/dev/null 2>&1 \
    || fail "CHAINGATE_SKIP_INSTALL=1 but there is no working chaingate-ci beside $bin or on PATH"
else
  [ -n "${RUNNER_TEMP:-}" ] || fail "RUNNER_TEMP is not set: run this inside a GitHub Actions job"
  requirements="$here/requirements.txt"
  key="$( { printf '%s\n' "$source_dir"; cat "$requirements" "$source_dir/pyproject.toml"; } | sha256sum | cut -c1-16)"
  venv="$RUNNER_TEMP/chaingate-venv-$key"
  if [ ! -x "$venv/bin/chaingate" ] || [ ! -x "$venv/bin/chaingate-ci" ]; then
    interpreter="${CHAINGATE_PYTHON_INTERPRETER:-python3}"
    "$interpreter" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
      || fail "$interpreter is older than Python 3.11; set the action's python input (e.g. after actions/setup-python)"
    rm -rf "$venv"
    "$interpreter" -m venv "$venv"
    # --no-deps: requirements.txt is the whole resolved closure, so pip installs exactly it and resolves
    # nothing. (The resolver of the pip a venv starts with, 23.x on Python 3.11, refuses a dependency's
    # extra, e.g. sigstore-rekor-types' pydantic[email], as "not pinned" under --require-hashes.) pip check
    # then fails the install if the pinned set ever stops being complete.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
      --require-hashes --no-deps -r "$requirements"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
      --no-deps --no-build-isolation "$source_dir"
    "$venv/bin/python" -m pip check --disable-pip-version-check >/dev/null \
      || fail "the pinned dependencies in $requirements are incomplete: $("$venv/bin/python" -m pip check 2>&1 | head -n 3)"
  fi
  bin="$venv/bin/chaingate"
  ci="$venv/bin/chaingate-ci"
fi

"$bin" --version
{
  printf 'chaingate=%s\n' "$bin"
  printf 'ci=%s\n' "$ci"
} >>"${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"
