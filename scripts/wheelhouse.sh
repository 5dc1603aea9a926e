#!/usr/bin/env bash
# Every wheel the image installs, downloaded on the host into build/wheelhouse (the Docker build then needs no network:
# `docker build --network=none`). Both environments: the product with its deploy, fast, gcs, vertex and ray extras,
# and the ML-Agents trainer environment's pins (torch 2.13.0, the lock file, the mlagents wheels).
# Run with the Python the image has (CPython 3.11 on x86_64 glibc, as Debian 12's and python:3.11-slim's).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
OUT="${1:-build/wheelhouse}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-315532800}"  # a byte-identical product wheel: Docker's cache holds
mkdir -p "$OUT"
pip=("$PYTHON" -m pip --disable-pip-version-check download -q -d "$OUT" --only-binary=:all:)
"$PYTHON" -m pip --disable-pip-version-check wheel -q --no-deps -w "$OUT" .           # the product itself
"${pip[@]}" pip setuptools wheel
"${pip[@]}" -r <("$PYTHON" - <<'PY'
import tomllib
data = tomllib.load(open("pyproject.toml", "rb"))
deps = list(data["project"]["dependencies"])
for extra in ("deploy", "fast", "gcs", "vertex", "ray"):
    deps += [d for d in data["project"]["optional-dependencies"][extra] if not d.startswith("unity-mlops")]
print("\n".join(deps))
PY
)
LOCK=src/mlops_unity_pipeline/trainer/mlagents-1.1.0.lock
# TORCH_INDEX_URL picks torch's build: unset, the index's default (the CPU one here); for a GPU image, a CUDA index,
# e.g. https://download.pytorch.org/whl/cu126 (its nvidia-* libraries come along, a few GB)
"${pip[@]}" torch==2.13.0 -c "$LOCK" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
"$PYTHON" -m pip --disable-pip-version-check wheel -q --no-deps -w "$OUT" -r "$LOCK"   # gym is an sdist: built here
"${pip[@]}" --no-deps --python-version 3.10.12 mlagents==1.1.0 mlagents-envs==1.1.0
"$PYTHON" -m pip --disable-pip-version-check download -q --no-deps --python-version 3.10.12 -d "$OUT" pettingzoo==1.15.0
echo "$(ls "$OUT" | wc -l) wheels in $OUT ($(du -sh "$OUT" | cut -f1))"
