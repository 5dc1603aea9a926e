# unity-mlops: both Python environments in one image (the product, and the isolated ML-Agents trainer).
#   docker build -t unity-mlops:latest .
#   docker run --rm -v "$PWD":/workspace unity-mlops:latest python scripts/single_job_test.py
#   docker run -d -p 8080:8080 -e UNITY_MLOPS_HEALTH_PORT=8080 -v data:/workspace unity-mlops:latest \
#       unity-mlops schedule run deploy/profiles/production.yaml --health-port 8080
# torch is pinned to 2.13.0 (the trainer environment's, and the product's `fast` extra); TORCH_INDEX_URL selects the
# CPU build where the default index would pull CUDA.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UNITY_MLOPS_TRAINER_ENV=/opt/mlagents-trainer UNITY_MLOPS_TORCH_INDEX_URL=${TORCH_INDEX_URL}
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/unity-mlops \
 && /opt/unity-mlops/bin/pip install --upgrade pip \
 && /opt/unity-mlops/bin/pip install --extra-index-url "${TORCH_INDEX_URL}" ".[deploy,fast,vertex]"
# The managed trainer environment, built and checked by the product itself (same absolute path at runtime).
RUN /opt/unity-mlops/bin/unity-mlops trainer setup --python /usr/local/bin/python3.11 \
 && /opt/unity-mlops/bin/unity-mlops trainer check

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 mlops && useradd --uid 10001 --gid 10001 --create-home mlops \
 && mkdir -p /workspace /mnt/training-logs && chown mlops:mlops /workspace /mnt/training-logs
COPY --from=build /opt/unity-mlops /opt/unity-mlops
COPY --from=build /opt/mlagents-trainer /opt/mlagents-trainer
COPY scripts /app/scripts
COPY deploy /app/deploy
ENV PATH=/opt/unity-mlops/bin:$PATH \
    UNITY_MLOPS_TRAINER_ENV=/opt/mlagents-trainer \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /workspace
EXPOSE 8080
# Healthy while the scheduler's loop is alive; containers that run one job (no health port) always pass.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import os,sys,urllib.request; p=os.environ.get('UNITY_MLOPS_HEALTH_PORT'); sys.exit(0) if not p else urllib.request.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"
CMD ["unity-mlops", "--help"]
