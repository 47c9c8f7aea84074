#!/bin/sh
# Headless MuJoCo rendering (the pixel tests, `seqrep curl`) needs Mesa's EGL. On a Debian or
# Ubuntu machine this installs it when run as root; otherwise it says, in one line, what to
# install. Elsewhere (macOS, other distributions) it does nothing: MuJoCo brings its own GL.
PKGS="libegl1 libegl-mesa0 libgl1"
command -v dpkg-query >/dev/null 2>&1 || exit 0
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing headless rendering libraries:$missing"
  (apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 ||
   { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends $missing >/dev/null; }) && exit 0
fi
echo "error: headless rendering needs$missing: run 'sudo apt-get install$missing' (or set MUJOCO_GL=osmesa with libosmesa6), then rerun" >&2
exit 1
