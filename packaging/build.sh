#!/usr/bin/env bash
# Build the one-folder bundle dist/lvm-explorer/ from a clean checkout.
#
#   bash packaging/build.sh            # venv under build/bundle-venv (made once, reused), then PyInstaller
#   FRESH=1 bash packaging/build.sh    # remake the venv first
#   PYTHON=python3.11 bash packaging/build.sh
#
# The venv gets torch 2.13.0 (the CPU build: `pip install torch==2.13.0` takes it from this machine's disk; elsewhere
# add `--index-url https://download.pytorch.org/whl/cpu`, or plain PyPI's torch pulls in several GB of CUDA
# libraries), the project itself (editable) and PyInstaller. Prints the build time and the bundle size.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=build/bundle-venv
start=$(date +%s.%N)

if [ "${FRESH:-0}" = 1 ]; then rm -rf "$VENV"; fi
if [ ! -x "$VENV/bin/pyinstaller" ]; then
  echo "build.sh: making $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q torch==2.13.0
  # the project editable: a reused venv then always bundles the checkout as it is now (its dependencies, threadpoolctl,
  # Pillow and contourpy included, come from pyproject.toml)
  "$VENV/bin/pip" install -q -e . "pyinstaller>=6.11,<7"
fi
venv_done=$(date +%s.%N)

"$VENV/bin/pyinstaller" --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
  packaging/lvm-explorer.spec
end=$(date +%s.%N)

test -x dist/lvm-explorer/lvm-explorer
# readable by everyone (files written by lvm.io's atomic writes are 0600), so a system-wide install works
chmod -R a+rX dist/lvm-explorer
awk -v s="$start" -v v="$venv_done" -v e="$end" \
  'BEGIN { printf "build.sh: venv %.0f s, pyinstaller %.0f s, total %.0f s\n", v - s, e - v, e - s }'
echo "build.sh: bundle dist/lvm-explorer: $(du -sh dist/lvm-explorer | cut -f1) ($(find dist/lvm-explorer -type f | wc -l) files)"
