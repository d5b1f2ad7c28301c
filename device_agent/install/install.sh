#!/bin/bash
# Install the 一网 device agent and the kiosk browser on a fresh Debian 12 or 13.
#
#   sudo device_agent/install/install.sh --server https://yiwang.example.gov.cn --code ABCD-EFGH-JKLM
#
# Options: --server URL, --code CODE (one-time enrolment code from the console), --printer QUEUE
# (CUPS queue, default kiosk), --camera (adds OpenCV for a USB camera), --no-browser (agent only).
# For packaging and tests: --root DIR (install under DIR), --no-apt, --no-venv, --no-systemd.
# Run it from a checkout (or the release tarball): it copies device_agent/ and qrscan/ only;
# nothing of the server is installed on a kiosk.
set -euo pipefail

SERVER="" CODE="" PRINTER="kiosk" CAMERA=0 BROWSER=1 ROOT="" APT=1 VENV=1 SYSTEMD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --server) SERVER=$2; shift 2 ;;
    --code) CODE=$2; shift 2 ;;
    --printer) PRINTER=$2; shift 2 ;;
    --camera) CAMERA=1; shift ;;
    --no-browser) BROWSER=0; shift ;;
    --root) ROOT=$2; shift 2 ;;
    --no-apt) APT=0; shift ;;
    --no-venv) VENV=0; shift ;;
    --no-systemd) SYSTEMD=0; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

SRC=$(cd "$(dirname "$0")/../.." && pwd)
OPT="$ROOT/opt/yiwang-agent"
ETC="$ROOT/etc"
UNITS="$ROOT/etc/systemd/system"

if [ "$APT" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  packages=(python3 python3-venv libzbar0 cups espeak-ng fonts-noto-cjk wget)
  [ "$BROWSER" = 1 ] && packages+=(chromium cage)
  apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

if [ -z "$ROOT" ]; then
  id yiwang-agent >/dev/null 2>&1 || useradd --system --home-dir /var/lib/yiwang-agent --shell /usr/sbin/nologin \
    --groups dialout,input,video,lp,audio yiwang-agent
  if [ "$BROWSER" = 1 ]; then
    id kiosk >/dev/null 2>&1 || useradd --create-home --shell /usr/sbin/nologin --groups video,audio,input,render kiosk
  fi
fi

# the program: the agent and the shared QR package, nothing else
install -d -m 0755 "$OPT"
rm -rf "$OPT/device_agent" "$OPT/qrscan"
cp -r "$SRC/device_agent" "$SRC/qrscan" "$OPT/"
find "$OPT" -name __pycache__ -prune -exec rm -rf {} +
install -m 0755 "$SRC/device_agent/install/kiosk-browser" "$OPT/kiosk-browser"
if [ "$VENV" = 1 ]; then
  python3 -m venv "$OPT/venv"
  "$OPT/venv/bin/pip" install -q --disable-pip-version-check -r "$OPT/device_agent/requirements.txt"
  if [ "$CAMERA" = 1 ]; then
    "$OPT/venv/bin/pip" install -q "$(grep -o 'opencv-python-headless==[0-9.]*' "$OPT/device_agent/requirements.txt")"
  fi
fi

# settings: written once (0600), never overwritten
install -d -m 0755 "$ETC/yiwang"
if [ ! -e "$ETC/yiwang/device-agent.env" ]; then
  umask 077
  {
    echo "AGENT_SERVER=${SERVER:-https://yiwang.example.gov.cn}"
    echo "AGENT_STATE_DIR=/var/lib/yiwang-agent"
    echo "AGENT_DRIVERS=hardware"
    echo "AGENT_PRINTER=$PRINTER"
    echo "AGENT_ID_READER_PORT=/dev/ttyUSB0"
    echo "#AGENT_SCANNERS=serial:/dev/serial/by-id/usb-SCANNER-if00@9600"
    echo "#AGENT_CAMERA_FOCUS=auto"
    [ -n "$CODE" ] && echo "AGENT_ENROLMENT_CODE=$CODE"
  } > "$ETC/yiwang/device-agent.env"
  umask 022
fi

install -d -m 0755 "$UNITS"
install -m 0644 "$SRC/device_agent/systemd/yiwang-device-agent.service" "$UNITS/"
if [ "$BROWSER" = 1 ]; then
  install -m 0644 "$SRC/device_agent/systemd/yiwang-kiosk-browser.service" "$UNITS/"
  install -d -m 0755 "$ETC/chromium/policies/managed"
  install -m 0644 "$SRC/device_agent/install/chromium-policy.json" "$ETC/chromium/policies/managed/yiwang-kiosk.json"
fi

if [ "$SYSTEMD" = 1 ] && [ -z "$ROOT" ]; then
  systemctl daemon-reload
  systemctl enable --now yiwang-device-agent.service
  if [ "$BROWSER" = 1 ]; then
    systemctl set-default graphical.target
    systemctl enable --now yiwang-kiosk-browser.service
  fi
  echo "installed; journalctl -u yiwang-device-agent -f shows the enrolment"
fi
