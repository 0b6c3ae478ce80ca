# shellcheck shell=bash
# Shared by scripts/setup, scripts/test and scripts/develop: find Python 3.13 and keep
# .venv in sync with requirements.txt + constraints.txt (re-installs only when they change);
# scripts/test also keeps .venv-ha-newest (the newest Home Assistant, integration tests only).

find_python313() {
  local candidate
  for candidate in python3.13 "$(command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/3.13"*/bin/python3 \
                   "$HOME/.pyenv/versions/3.13"*/bin/python3 /usr/local/bin/python3.13 /usr/bin/python3.13; do
    if [ -x "$(command -v "$candidate" 2>/dev/null)" ] \
       && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

ensure_venv() {
  local root venv py stamp want
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  venv="$root/.venv"
  if [ ! -x "$venv/bin/python" ]; then
    if ! py="$(find_python313)"; then
      echo "error: Python 3.13 not found. Install it (e.g. 'pyenv install 3.13.0' or your" >&2
      echo "       distribution's python3.13 package) and run this again." >&2
      return 1
    fi
    echo ">> creating $venv with $py"
    "$py" -m venv "$venv"
  fi
  stamp="$venv/.requirements.sha256"
  want="$(cat "$root/requirements.txt" "$root/constraints.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo ">> installing pinned requirements into $venv (a few minutes the first time)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      -r "$root/requirements.txt" -c "$root/constraints.txt" 2> >(grep -v '^WARNING: Location' >&2)
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation --config-settings editable_mode=compat \
      -e "$root" 2> >(grep -v '^WARNING: Location' >&2)
    echo "$want" > "$stamp"
  fi
  export PATH="$venv/bin:$PATH"
  export VIRTUAL_ENV="$venv"
}

ensure_ha_newest_venv() {
  # .venv-ha-newest: the newest Home Assistant installable here, with only what the
  # integration tests need (requirements-ha-newest.txt + constraints-ha-newest.txt; no
  # TensorFlow), installed once and again only when those files change. It asks for a
  # newer Python 3.13 patch release than ours, hence --ignore-requires-python. The install
  # is mostly downloads; --no-compile skips byte-compiling all of Home Assistant (~40 s of
  # CPU) for the few hundred modules the tests import.
  # Sets HA_NEWEST_PYTHON; leaves PATH alone (.venv stays the one on PATH).
  local root venv py stamp want
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  venv="$root/.venv-ha-newest"
  if [ ! -x "$venv/bin/python" ]; then
    if ! py="$(find_python313)"; then
      echo "error: Python 3.13 not found (needed for $venv)." >&2
      return 1
    fi
    echo ">> creating $venv with $py"
    "$py" -m venv "$venv"
  fi
  stamp="$venv/.requirements.sha256"
  want="$(cat "$root/requirements-ha-newest.txt" "$root/constraints-ha-newest.txt" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo ">> installing the newest Home Assistant into $venv (a minute or two the first time)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
      --ignore-requires-python -r "$root/requirements-ha-newest.txt" -c "$root/constraints-ha-newest.txt" \
      2> >(grep -v '^WARNING: Location' >&2)
    echo "$want" > "$stamp"
  fi
  HA_NEWEST_PYTHON="$venv/bin/python"
  export HA_NEWEST_PYTHON
}

ensure_chromium() {
  # The browser test drives Debian's Chromium; install it from Debian's packages if we can.
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo ">> installing Debian's chromium and chromium-driver"
    (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; }) \
      || echo "warning: could not install chromium; the browser test will be skipped" >&2
  else
    echo "warning: chromium/chromedriver missing and not root; the browser test will be skipped" >&2
  fi
}

ensure_faketime() {
  # The e2e test and `scripts/develop --speed N` run Home Assistant on a fast clock
  # (Debian's libfaketime), so hours of replayed data take minutes.
  ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo ">> installing Debian's faketime"
    apt-get install -y -q faketime >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q faketime >/dev/null 2>&1; } \
      || echo "warning: could not install faketime; the e2e tests will fail" >&2
  else
    echo "warning: faketime missing and not root; install Debian's faketime package" >&2
  fi
}
