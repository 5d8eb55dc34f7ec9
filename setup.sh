#!/usr/bin/env bash
# One-command set-up: system packages, a virtual environment in .venv, servingbench and its deps.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(espeak-ng sox wrk chromium curl)  # chromium: the report test opens report.html headless; curl: the serve tests run its printed line
APT_PACKAGES+=(slurm-wlm munge)  # the SLURM test starts a private single-node cluster (munged, slurmctld, slurmd)
# TorchServe needs a Java runtime; any java on PATH will do.
command -v java >/dev/null 2>&1 || APT_PACKAGES+=(openjdk-17-jre-headless)
if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
else
  echo "setup.sh: no apt-get; install these yourself: ${APT_PACKAGES[*]}" >&2
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The CPU build of torch first, so nothing below pulls a CUDA build (several GB).
# Elsewhere, set PIP_EXTRA_INDEX_URL to PyTorch's CPU wheel index before running this script.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test,models,torchserve,triton,tensorflow,fastapi,rayserve,bentoml,litserve,tune]"
# tf-keras (needed by onnx2tf) and TF Serving's gRPC messages both depend on the full `tensorflow`
# package, which would install a second copy of TensorFlow over tensorflow-cpu: no deps for them.
.venv/bin/python -m pip install -q --no-deps "tf-keras==2.21.*" "tensorflow-serving-api==2.21.*"
# Triton's server binary (python backend only), without the wheel's numpy<2 pin: see pyproject.toml.
.venv/bin/python -m pip install -q --no-deps "nvidia-pytriton==0.7.0"
# Frameworks whose pins conflict with the rest (MLServer: fastapi<0.116; KServe: psutil<6; MLflow: pyarrow<26)
# run from environments layered over .venv (.venv/frameworks/NAME), instead of downgrading shared packages.
.venv/bin/servingbench install mlserver kserve mlflow
# Offline tokenizer assets (GPT-2 BPE for BART), fetched once from PyPI into the cache.
.venv/bin/servingbench assets
echo "servingbench is set up: .venv/bin/servingbench --help"
