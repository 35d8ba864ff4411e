#!/usr/bin/env bash
# Set up everything on a fresh Debian machine: system packages, a venv in .venv, the project and its extras.
# Idempotent: a second run only checks. Used by run-app.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libportaudio2 espeak-ng flite festival festvox-kdlpc16k festvox-us-slt-hts xvfb xauth libegl1
              libgl1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0
              libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0 libdbus-1-3 libfontconfig1 sox
              python3-venv libglib2.0-0 g++ python3-dev tesseract-ocr-eng)
# libglib2.0-0: PySide6's Qt libraries link GLib; g++ and python3-dev: hnswlib is a source-only package on PyPI;
# tesseract-ocr-eng: the English data for reading text in photos (tesserocr's wheel brings the engine)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "Installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  # torch brings ~3 GB of CUDA wheels from PyPI: resume an interrupted download instead of failing the setup
  # (an environment variable, so a pip too old for the option ignores it)
  export PIP_RESUME_RETRIES=${PIP_RESUME_RETRIES:-20}
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[app,synth,train,heif,raw,video,ocr,dev]"
  touch "$stamp"
fi
