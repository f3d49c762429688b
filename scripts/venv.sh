# Shared by scripts/serve and scripts/test: create ./.venv with Python >= 3.11 and install the
# project (editable) with the given extras. Re-installs only when pyproject.toml changed.
ensure_venv() {
  local extras="$1" python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "llm-sidecar needs Python 3.11 or newer (found: $("$python" --version 2>&1))." >&2
    echo "Set PYTHON=/path/to/python3.11 and run again." >&2
    exit 1
  fi
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  local stamp=".venv/.installed${extras}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
    touch "$stamp"
  fi
}
