# unity-mlops: both Python environments in one image (the product, and the isolated ML-Agents trainer), built
# without network access from wheels prepared on the host:
#   scripts/wheelhouse.sh                       # build/wheelhouse: every wheel both environments install
#   docker build --network=none -t unity-mlops:latest .
#   docker run --rm unity-mlops:latest unity-mlops train /app/examples/reach_target_job.yaml
#   docker run -d -p 8080:8080 -e UNITY_MLOPS_HEALTH_PORT=8080 -v data:/workspace unity-mlops:latest \
#       unity-mlops schedule run /app/deploy/profiles/production.yaml --health-port 8080
# Any CPython 3.11 base works: PYTHON_IMAGE=python:3.11-slim-bookworm (default), or one made from Debian's packages
# (`make image` does that: nothing is pulled from a registry). torch is pinned to 2.13.0, whichever build the
# wheelhouse holds. The CUDA variant: `TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 scripts/wheelhouse.sh
# build/wheelhouse-cuda`, then `docker build --network=none --build-arg WHEELHOUSE=build/wheelhouse-cuda -t
# unity-mlops:cuda .` (`trainer setup` records the CUDA build; jobs with `resources.device: auto` use the GPU).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
LABEL org.opencontainers.image.title=unity-mlops
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels \
    UNITY_MLOPS_TRAINER_ENV=/opt/mlagents-trainer
ARG WHEELHOUSE=build/wheelhouse
COPY ${WHEELHOUSE} /wheels
# Both environments install torch 2.13.0 from the same wheel (754 MB each): identical files become one (hardlinks),
# which the single COPY of /opt below keeps, so the image and the disk its build needs shrink by that much.
RUN PY="$(command -v python3.11)" \
 && "$PY" -m venv /opt/unity-mlops \
 && /opt/unity-mlops/bin/pip install -q --upgrade pip \
 && /opt/unity-mlops/bin/pip install -q "unity-mlops[deploy,fast,gcs,vertex,ray]" \
 && /opt/unity-mlops/bin/unity-mlops trainer setup --python "$PY" \
 && /opt/unity-mlops/bin/unity-mlops trainer check \
 && if command -v hardlink >/dev/null; then hardlink --quiet --ignore-time /opt; fi

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title=unity-mlops
RUN (groupadd --gid 10001 mlops && useradd --uid 10001 --gid 10001 --create-home mlops) \
 && mkdir -p /workspace /mnt/training-logs /scratch && chown mlops:mlops /workspace /mnt/training-logs /scratch \
 && ln -sf "$(command -v python3.11)" /usr/local/bin/python
COPY --from=build /opt /opt
COPY scripts /app/scripts
COPY deploy /app/deploy
COPY examples /app/examples
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
