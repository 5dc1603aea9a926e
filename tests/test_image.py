"""The Docker image, built from this checkout with no network and checked inside: both environments are there, a
fast-trainer job trains and registers, the scheduler's /healthz answers, it runs as a non-root user.

Air-gapped like CI: the base image is made from Debian's packages (debootstrap), the wheels come from
`scripts/wheelhouse.sh` on the host, `docker build` and `docker run` use `--network=none`. Needs Docker's engine
(`docker.io`) and debootstrap; `make image-test` installs them and runs this file (apart from the main suite, which
it would slow down by minutes). A dockerd this test starts, it stops.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.image
ROOT = Path(__file__).resolve().parents[1]
TAG = "unity-mlops:test"
BASE = "local/py311:bookworm"
BUILD_NEEDS_GIB = 8  # measured peak of a build on an empty data root: see docs/how-to/operations.md#deployment
JOB = """job_id: image-job
asset_spec: {asset_id: img-1, name: ImageAgent, description: Reach target position}
rl_config: {trainer: fast, max_steps: 4096, summary_freq: 2048,
            hyperparameters: {buffer_size: 1024, batch_size: 256}}
"""


def docker(*args: str, timeout: float = 600, check: bool = True, stdin: str | None = None) -> str:
    r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, input=stdin)
    if check and r.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} ... failed ({r.returncode}):\n{r.stdout[-3000:]}\n"
                             f"{r.stderr[-3000:]}")
    return r.stdout


@pytest.fixture(scope="module")
def engine():
    if shutil.which("docker") is None or shutil.which("debootstrap") is None:
        pytest.fail("Docker's engine and debootstrap are needed: apt-get install -y docker.io debootstrap "
                    "(make image-test does it)")
    started = None
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        log = open(Path(tempfile.gettempdir()) / "unity-mlops-dockerd.log", "w")  # noqa: SIM115
        started = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(120):
            if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:
            started.kill()
            pytest.fail("dockerd did not start: see " + log.name)
    yield
    if started is not None:
        started.terminate()
        started.wait(60)


def docker_build(tag: str, *options: str) -> list[str]:
    """Builds and returns the ids of the images the build printed, even when it fails, so they can be removed."""
    r = subprocess.run(["docker", "build", "--force-rm", "--network=none", "--build-arg", f"PYTHON_IMAGE={BASE}",
                        "-t", tag, *options, str(ROOT)], capture_output=True, text=True, timeout=2400)
    ids = re.findall(r"^ ---> ([0-9a-f]{12})$", r.stdout, flags=re.MULTILINE)
    if r.returncode != 0:
        remove_images(ids)
        raise AssertionError(f"docker build -t {tag} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return ids


def remove_images(refs: list[str]) -> None:
    """Newest first and never forced: an image another build or container still uses stays (docker refuses)."""
    base = docker("image", "inspect", "-f", "{{.Id}}", BASE, check=False).strip().removeprefix("sha256:")
    for ref in reversed(refs):
        if not base.startswith(ref):
            subprocess.run(["docker", "rmi", ref], capture_output=True)


@pytest.fixture(scope="module")
def image(engine):
    if subprocess.run(["docker", "image", "inspect", BASE], capture_output=True).returncode != 0:
        mirror = next((line.split()[1] for line in Path("/etc/apt/sources.list.d/debian.sources").read_text()
                       .splitlines() if line.startswith("URIs:")), "http://deb.debian.org/debian")
        with tempfile.TemporaryDirectory(prefix="rootfs-") as rootfs:
            subprocess.run(["debootstrap", "--variant=minbase", "--include=python3.11,python3.11-venv,"
                            "python3-distutils,ca-certificates", "bookworm", rootfs, mirror], check=True,
                           capture_output=True, timeout=900)
            tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
            subprocess.run(["docker", "import", "-", BASE], stdin=tar.stdout, check=True, capture_output=True,
                           timeout=600)
            tar.wait()
    subprocess.run(["bash", str(ROOT / "scripts" / "wheelhouse.sh")], check=True, timeout=1200,
                   env={**os.environ, "PYTHON": sys.executable})
    root = docker("info", "-f", "{{.DockerRootDir}}").strip()
    free = shutil.disk_usage(root).free / 2**30
    if free < BUILD_NEEDS_GIB:
        pytest.fail(f"building the image needs about {BUILD_NEEDS_GIB} GiB free on {root}, Docker's data root; "
                    f"{free:.1f} GiB are free (`docker system df` shows what images hold)")
    # A tag of this run's own, removed with every layer it built when the module ends: runs leave nothing behind
    # (each build is ~5 GB of layers) and two runs at once never remove each other's image.
    tag = f"{TAG}-{os.getpid()}"
    built: list[str] = []
    try:
        built += docker_build(f"{tag}-build", "--target", "build")
        built += docker_build(tag)
        yield tag
    finally:
        remove_images([f"{tag}-build", *built, tag])


def test_both_environments_are_in_the_image_and_it_runs_as_non_root(image):
    assert docker("run", "--rm", "--network=none", image, "id", "-u").strip() == "10001"
    out = docker("run", "--rm", "--network=none", image, "unity-mlops", "trainer", "check")
    versions = dict(line.split(None, 1) for line in out.splitlines() if line and not line.startswith("ok:"))
    assert "ok: the ML-Agents trainer environment is ready" in out
    assert versions["mlagents"] == "1.1.0" and versions["torch"] == "2.13.0+cpu", versions
    links = docker("run", "--rm", "--network=none", image, "sh", "-c",
                   "stat -c %h /opt/*/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so")
    assert links.split() == ["2", "2"], "both environments' torch is one copy on disk (hardlinks)"
    config = json.loads(docker("image", "inspect", image))[0]["Config"]
    assert config["User"] == "10001" and "/healthz" in " ".join(config["Healthcheck"]["Test"])


def test_a_fast_job_trains_and_registers_in_the_container(image):
    out = docker("run", "--rm", "-i", "--network=none", image, "sh", "-c",
                 "cat > job.yaml && unity-mlops train job.yaml --episodes 50 -q && echo '--- versions' && "
                 "unity-mlops models list --json", stdin=JOB, timeout=900)
    assert "model version: unity-imageagent-" in out and "Training complete" in out
    versions = json.loads(out.split("--- versions", 1)[1])
    assert [v["asset_name"] for v in versions] == ["imageagent"]


def test_the_scheduler_answers_healthz_in_the_container(image):
    name = f"unity-mlops-health-{os.getpid()}"
    docker("run", "-d", "--network=none", "--name", name, "-e", "UNITY_MLOPS_HEALTH_PORT=8080", image,
           "unity-mlops", "schedule", "run", "/app/deploy/profiles/local.yaml", "--health-port", "8080")
    try:
        probe = ("import urllib.request; r = urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4); "
                 "print(r.status, r.read().decode())")
        for _ in range(120):
            r = subprocess.run(["docker", "exec", name, "python", "-c", probe], capture_output=True, text=True)
            if r.returncode == 0:
                break
            time.sleep(0.5)
        assert r.returncode == 0, r.stderr + docker("logs", name, check=False)
        assert r.stdout.startswith("200")
        docker("stop", "-t", "30", name)
        state = json.loads(docker("inspect", name))[0]["State"]
        assert state["ExitCode"] == 0, "a graceful stop on SIGTERM"
    finally:
        docker("rm", "-f", name, check=False)
