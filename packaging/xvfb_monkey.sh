#!/usr/bin/env bash
# The app on a real X server: seeded random input with xdotool, then Ctrl+Q; it must quit cleanly with exit code 0.
#
#   packaging/xvfb_monkey.sh [EVENTS] [SEED]        (defaults: 400 events, seed 1)
#
# Needs Xvfb, xdotool and Qt's xcb dependencies (Debian/Ubuntu: apt-get install -y xvfb xdotool libxcb-cursor0
# libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0) and the app's Python environment
# ($PYTHON, default the checkout's .venv/bin/python, else python3). What it does:
#   1. starts Xvfb on a free display (1400x900x24) and the app (python -m app --view mixture) on it (Qt's xcb plugin);
#   2. waits for the "LVM Explorer" window and for the defaults to load;
#   3. sends EVENTS random actions inside the window below its menu bar (the menus open modal file dialogs):
#      mouse moves, left/right/middle clicks, double clicks, drags, wheel turns, key presses, and Ctrl+1..5 to switch
#      labs; every action is drawn from bash's $RANDOM seeded with SEED, so a run can be repeated;
#   4. presses Escape (closes popups and the non-modal message boxes), then Ctrl+Q;
#   5. passes when the app exits within 60 s with code 0 and its stderr holds no Python traceback or fatal error.
# Exit status: 0 pass, 1 fail (the app's log is printed), 77 when Xvfb/xdotool are missing.
set -u

EVENTS=${1:-400}
SEED=${2:-1}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$( [ -x "$HERE/.venv/bin/python" ] && echo "$HERE/.venv/bin/python" || echo python3 )}
LOG=$(mktemp -t lvm-xvfb-XXXXXX.log)

for tool in Xvfb xdotool; do
  command -v "$tool" >/dev/null || { echo "xvfb_monkey: $tool missing (apt-get install -y xvfb xdotool)"; exit 77; }
done

# a free display number
for n in $(seq 91 140); do
  [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ] || { DISP=":$n"; break; }
done
Xvfb "$DISP" -screen 0 1400x900x24 -nolisten tcp >/dev/null 2>&1 &
XVFB_PID=$!
cleanup() {
  [ -n "${APP_PID:-}" ] && kill -9 "$APP_PID" 2>/dev/null
  kill "$XVFB_PID" 2>/dev/null
  wait "$XVFB_PID" 2>/dev/null
}
trap cleanup EXIT
export DISPLAY="$DISP"
for _ in $(seq 50); do xdotool getmouselocation >/dev/null 2>&1 && break; sleep 0.2; done

cd "$HERE"
env -u QT_QPA_PLATFORM QT_QPA_PLATFORM=xcb LVM_EXPLORER_SETTINGS="$(mktemp -u -t lvm-xvfb-settings-XXXXXX).ini" \
  "$PYTHON" -m app --view mixture --size 1360x860 >"$LOG" 2>&1 &
APP_PID=$!

WID=""
for _ in $(seq 120); do
  WID=$(xdotool search --onlyvisible --name "^LVM Explorer$" 2>/dev/null | head -1)
  [ -n "$WID" ] && break
  kill -0 "$APP_PID" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$WID" ]; then
  echo "xvfb_monkey: FAIL: no window appeared"; cat "$LOG"; exit 1
fi
sleep 4  # the defaults load in a worker
eval "$(xdotool getwindowgeometry --shell "$WID")"   # X Y WIDTH HEIGHT
xdotool windowactivate --sync "$WID" >/dev/null 2>&1 || xdotool windowfocus "$WID" 2>/dev/null

RANDOM=$SEED
KEYS=(Left Right Up Down Page_Up Page_Down Home End space Return Tab BackSpace Delete plus minus 1 5 a r x)
TOP=$((Y + 40))           # below the menu bar
SPAN_Y=$((HEIGHT - 70))   # above the status bar's lower edge
rx() { echo $((X + 5 + RANDOM % (WIDTH - 10))); }
ry() { echo $((TOP + RANDOM % SPAN_Y)); }
done_events=0
for i in $(seq "$EVENTS"); do
  kill -0 "$APP_PID" 2>/dev/null || break
  r=$((RANDOM % 100))
  if   [ $r -lt 25 ]; then xdotool mousemove "$(rx)" "$(ry)" click $((RANDOM % 4 == 0 ? 3 : 1))
  elif [ $r -lt 32 ]; then xdotool mousemove "$(rx)" "$(ry)" click --repeat 2 --delay 60 1
  elif [ $r -lt 52 ]; then
    xdotool mousemove "$(rx)" "$(ry)" mousedown 1
    for _ in 1 2 3 4; do xdotool mousemove "$(rx)" "$(ry)"; done
    xdotool mouseup 1
  elif [ $r -lt 64 ]; then xdotool mousemove "$(rx)" "$(ry)" click $((4 + RANDOM % 2))
  elif [ $r -lt 78 ]; then xdotool key --clearmodifiers "${KEYS[$((RANDOM % ${#KEYS[@]}))]}"
  elif [ $r -lt 82 ]; then xdotool key --clearmodifiers "ctrl+$((1 + RANDOM % 5))"
  elif [ $r -lt 85 ]; then xdotool key Escape
  else xdotool mousemove "$(rx)" "$(ry)"
  fi
  done_events=$i
done

if ! kill -0 "$APP_PID" 2>/dev/null; then
  wait "$APP_PID"; code=$?
  echo "xvfb_monkey: FAIL: the app died after $done_events events (exit $code)"; grep -v "dragLeaveEvent" "$LOG"; exit 1
fi
# Close what the monkey opened: popups, message boxes, a file dialog (the latent lab's "Save model" button opens
# one). Xvfb has no window manager, so focus each extra window by hand before its Escape. $WID stays the main
# window found before the first event: searching again by title could pick a message box instead (a CI run did,
# then sent Ctrl+Q to the box).
for round in 1 2 3; do
  for w in $(xdotool search --onlyvisible --pid "$APP_PID" 2>/dev/null); do
    [ "$w" = "$WID" ] && continue
    echo "xvfb_monkey: closing window '$(xdotool getwindowname "$w" 2>/dev/null)'"
    xdotool windowfocus "$w" 2>/dev/null; xdotool key Escape; sleep 0.3
  done
done
for _ in 1 2; do xdotool key Escape; sleep 0.2; done
[ -n "$WID" ] && { xdotool windowactivate --sync "$WID" >/dev/null 2>&1 || xdotool windowfocus "$WID"; }
xdotool key --clearmodifiers ctrl+q
code=""
for _ in $(seq 120); do
  if ! kill -0 "$APP_PID" 2>/dev/null; then wait "$APP_PID"; code=$?; break; fi
  sleep 0.5
done
APP_PID_DONE=$APP_PID; APP_PID=""
if [ -z "$code" ]; then
  echo "xvfb_monkey: FAIL: Ctrl+Q did not quit the app within 60 s; its windows:"
  for w in $(xdotool search --onlyvisible --pid "$APP_PID_DONE" 2>/dev/null); do echo "  $(xdotool getwindowname "$w")"; done
  kill -9 "$APP_PID_DONE"; grep -v "dragLeaveEvent" "$LOG" | tail -40; exit 1
fi
if grep -qE "Traceback|Fatal Python error|Segmentation fault" "$LOG"; then
  echo "xvfb_monkey: FAIL: errors in the app's output (exit $code)"; cat "$LOG"; exit 1
fi
if [ "$code" -ne 0 ]; then
  echo "xvfb_monkey: FAIL: exit code $code"; cat "$LOG"; exit 1
fi
echo "xvfb_monkey: ok: $done_events random events (seed $SEED) on $DISP, Ctrl+Q, exit code 0"
rm -f "$LOG"
