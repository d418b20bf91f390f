#!/usr/bin/env bash
# The core install's weight and `labcap --help`'s start-up: a fresh venv with `pip install .`
# (no extras), its site-packages size, the biggest packages, and the best of 5 `--help` runs.
# Usage: bench/core_install.sh [VENV_DIR]   (downloads from the package index; minutes)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$(mktemp -d)/core}
python3 -m venv "$venv"
"$venv/bin/pip" install -q --no-cache-dir "$here" 2>&1 | grep -v '^WARNING: Location' || true
rm -rf "$here/build" "$here/src/labcap.egg-info"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "core install: $(du -sh "$site" | cut -f1) in $site"
du -sh "$site"/* | sort -h | tail -8
for extra in kubernetes kubernetes_validate docker pynvml prometheus_client jsonschema; do
  "$venv/bin/python" -c "import $extra" 2>/dev/null && echo "unexpected in core: $extra"
done
best=
for _ in 1 2 3 4 5; do
  t=$( { /usr/bin/time -f %e "$venv/bin/labcap" --help >/dev/null; } 2>&1 )
  best=$(printf '%s\n%s\n' "${best:-$t}" "$t" | sort -n | head -1)
done
echo "labcap --help: best of 5 ${best}s"
"$venv/bin/python" -X importtime -c 'import labcap.cli' 2>&1 | sort -t'|' -k2 -n | tail -1
