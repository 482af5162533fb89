#!/usr/bin/env bash
# Build the bundle (or reuse it), run it offscreen with --smoke and --screenshot (every lab), print its size, the
# build time and start-up times (bundle and the venv's `lvm-explorer`, median of N cold process starts).
#
#   bash packaging/check.sh                 # build (packaging/build.sh), then check
#   REUSE=1 bash packaging/check.sh         # check an existing dist/lvm-explorer
#   RUNS=5 DROP_CACHES=1 bash packaging/check.sh   # as root: also one start with the page cache dropped
#   LVM_EXPLORER=/path/to/venv/bin/lvm-explorer   # the venv entry point to time (default: build/bundle-venv's)
#
# Not part of `pytest` (it takes minutes); tests/test_packaging.py holds the fast checks.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUNDLE=$ROOT/dist/lvm-explorer
BIN=$BUNDLE/lvm-explorer
RUNS=${RUNS:-5}
VENV_PY=$ROOT/build/bundle-venv/bin/python
LVM_EXPLORER=${LVM_EXPLORER:-$ROOT/build/bundle-venv/bin/lvm-explorer}

if [ "${REUSE:-0}" = 1 ] && [ -x "$BIN" ]; then
  build_s="reused"
else
  t0=$(date +%s.%N)
  bash packaging/build.sh
  build_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f s", b - a }')
fi
[ -x "$VENV_PY" ] || VENV_PY=$(dirname "$LVM_EXPLORER")/python  # needs PySide6 (to look at the screenshots)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export QT_QPA_PLATFORM=offscreen LVM_EXPLORER_SETTINGS=$work/settings.ini
cd "$work"  # nothing from the checkout is reachable from here: the bundle must carry its resources

echo "== smoke (bundle)"
"$BIN" --smoke 2>&1 | grep -v propagateSizeHints | tee smoke.txt
grep -q "smoke ok" smoke.txt
grep -q "dataset digits" smoke.txt

echo "== screenshots (bundle), every lab"
for view in $("$BIN" --list-views); do
  "$BIN" --view "$view" --screenshot "$work/$view.png" 2>&1 | grep -v propagateSizeHints || true
  "$VENV_PY" - "$work/$view.png" <<'PY'
import os, sys
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtGui import QGuiApplication, QImage
app = QGuiApplication([])
img = QImage(sys.argv[1])
g = img.convertToFormat(QImage.Format.Format_Grayscale8)
data = bytes(g.constBits())[: g.sizeInBytes()]
mean = sum(data) / len(data)
std = (sum((b - mean) ** 2 for b in data[::7]) / len(data[::7])) ** 0.5
ok = img.width() > 600 and img.height() > 400 and std > 5
print(f"  {os.path.basename(sys.argv[1])}: {img.width()}x{img.height()}, grey std {std:.1f} {'ok' if ok else 'BLANK?'}")
sys.exit(0 if ok else 1)
PY
done
if [ -n "${KEEP_SHOTS:-}" ]; then mkdir -p "$KEEP_SHOTS" && cp "$work"/*.png "$KEEP_SHOTS"/; fi

# N --smoke runs; prints "median first paint (the main window), median ready, median wall" (ms, s, s)
time_starts() {
  local exe=$1 i
  : > runs.txt
  for i in $(seq "$RUNS"); do
    local a b
    a=$(date +%s.%N)
    "$exe" --smoke 2>/dev/null | grep "smoke ok" >> runs.txt
    b=$(date +%s.%N)
    awk -v a="$a" -v b="$b" 'BEGIN { printf "wall %.2f\n", b - a }' >> runs.txt
  done
  "$VENV_PY" - runs.txt <<'PY'
import re, statistics, sys
text = open(sys.argv[1]).read()
paint, ready, wall = (statistics.median(float(x) for x in re.findall(pat, text)) for pat in
                      (r"first paint (\d+) ms", r"ready ([\d.]+) s", r"wall ([\d.]+)"))
print(f"first paint {paint:.0f} ms, ready {ready:.2f} s, wall {wall:.2f} s")
PY
}

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

echo "== start-up, median of $RUNS cold process starts (page cache warm)"
echo "  bundle:        $(time_starts "$BIN")"
echo "  venv (${LVM_EXPLORER}): $(RUNS=$RUNS time_starts "$LVM_EXPLORER")"
if [ "${DROP_CACHES:-0}" = 1 ] && [ -w /proc/sys/vm/drop_caches ]; then
  echo "== start-up with the page cache dropped (one run each)"
  drop_caches; echo "  bundle:        $(RUNS=1 time_starts "$BIN")"
  drop_caches; echo "  venv:          $(RUNS=1 time_starts "$LVM_EXPLORER")"
fi

echo "== sizes"
echo "  bundle:   $(du -sh "$BUNDLE" | cut -f1) in $(find "$BUNDLE" -type f | wc -l) files"
echo "  largest:  $(cd "$BUNDLE/_internal" && du -s -- * | sort -rn | head -5 | awk '{ printf "%s %d MB; ", $2, $1 / 1024 }')"
echo "  build:    $build_s"
echo "check.sh: ok"
