"""The dashboard, driven in a real headless Chromium (Debian's `chromium` + `chromium-driver`, which `make test`
installs) against a real server on 127.0.0.1 over real stores: two trained runs, a registered version, a schedule,
a dead letter. Screenshots go to `tests/artifacts/ui/` (or `$UNITY_MLOPS_TEST_ARTIFACTS/ui`); the browser's console
must stay free of errors. The server-side rules (sign-in, CSRF, headers) are attacked without a browser too."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, TrainingSchedule, UnityAssetSpec, UnityMLOpsOrchestrator
from mlops_unity_pipeline.app import App
from mlops_unity_pipeline.scheduler.store import RunRow, StateStore
from mlops_unity_pipeline.ui.auth import SESSION_COOKIE, create_token
from mlops_unity_pipeline.ui.server import HEADERS, create_app
from mlops_unity_pipeline.webhooks import Endpoint, WebhookOutbox

ASSET = UnityAssetSpec(asset_id="nav-001", name="NavAgent", description="Reach the target position")
ARTIFACTS = Path(os.environ.get("UNITY_MLOPS_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts") / "ui"


class _Gone(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(410)  # a permanent refusal: the delivery is dead-lettered at once
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("ui") / "runs"
    orch = UnityMLOpsOrchestrator(ws, evaluation_episodes=30, show_progress=False)
    for i, seed in enumerate((1, 2)):
        cfg = RLTrainingConfig(trainer="fast", max_steps=6144, seed=seed, summary_freq=1024,
                               hyperparameters={"buffer_size": 1024, "batch_size": 256})
        result = orch.execute_training_job_sync(TrainingJob(job_id=f"nav-{i}", asset_spec=ASSET, rl_config=cfg))
        assert result.succeeded, result.error
    store, now = StateStore(ws / "_state"), datetime.now(timezone.utc)
    spec = TrainingSchedule(schedule_id="nightly-nav", cron_expression="0 2 * * *", asset_specs=[ASSET])
    store.upsert_schedule("nightly-nav", spec.model_dump(mode="json"), now)
    store.add_run(RunRow("nightly-nav|x|nav-001", "nightly-nav", "nav-001", now, "nightly-nav-1", "completed", 1,
                         now, model_version="unity-navagent-x-v001"), now)
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Gone)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    box = WebhookOutbox(ws / "_state" / "webhooks.db", [Endpoint(f"http://127.0.0.1:{receiver.server_port}/hook",
                                                                 name="ops-chat")])
    box.emit("job.completed", {"job_id": "nav-0"})
    box.deliver_due()
    receiver.shutdown()
    assert box.counts() == {"dead": 1}
    return ws


@pytest.fixture(scope="module")
def server(workspace):
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # held by us from the start: no other process can take the port in between
    port = sock.getsockname()[1]
    web = create_app(App(workspace=str(workspace)))
    srv = uvicorn.Server(uvicorn.Config(web, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not binary or not Path(driver_path).is_file():
        pytest.fail("the dashboard tests need a headless Chromium: apt-get install chromium chromium-driver "
                    "(`make test` does it)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
                "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_page_load_timeout(60)
    driver.implicitly_wait(30)  # elements of a page still loading are waited for, on a busy machine too
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _follow(driver, element) -> None:
    """Click something that loads a new page, and wait until the old page is gone (a click does not wait)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def old_page_gone(_driver) -> bool:
        try:
            element.is_enabled()
            return False
        except WebDriverException:  # stale, or Chrome's "does not belong to the document" mid-navigation
            return True

    element.click()
    WebDriverWait(driver, 60).until(old_page_gone)
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _shot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def _no_console_errors(driver) -> None:
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_a_user_browses_runs_compares_and_promotes_as_a_signed_in_operator(server, browser, workspace):
    from selenium.webdriver.common.by import By

    b = browser
    b.get(server + "/")
    rows = b.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
    assert {r.get_attribute("data-job") for r in rows} == {"nav-0", "nav-1"}
    assert "completed" in b.find_element(By.ID, "runs").text
    _shot(b, "runs")
    _no_console_errors(b)

    _follow(b, b.find_element(By.LINK_TEXT, "nav-0"))
    assert b.find_elements(By.CSS_SELECTOR, "svg.chart polyline"), "the run's curves are drawn"
    assert "success_rate" in b.page_source and "random baseline" in b.page_source
    _shot(b, "run")
    _no_console_errors(b)

    b.get(server + "/")
    for job in ("nav-0", "nav-1"):
        b.find_element(By.CSS_SELECTOR, f"#runs input[value='{job}']").click()
    _follow(b, b.find_element(By.ID, "compare-selected"))
    diff = b.find_element(By.ID, "config-diff").text
    assert "rl_config.seed" in diff and "rl_config.max_steps" not in diff, "only the differences"
    assert len(b.find_elements(By.CSS_SELECTOR, "#compare-metrics tr")) == 3
    _shot(b, "compare")
    _no_console_errors(b)

    b.get(server + "/models/navagent")
    first = b.find_element(By.CSS_SELECTOR, "#versions tr[data-version]")
    version = first.get_attribute("data-version")
    _follow(b, first.find_element(By.CSS_SELECTOR, "button.promote-staging"))  # anonymous: refused
    assert "sign in first" in b.find_element(By.ID, "outcome").text
    refused = b.get_log("browser")  # the browser logs the 403 it was meant to get: that one only
    assert [e for e in refused if e["level"] == "SEVERE" and "/act" not in e["message"]] == []
    assert App(workspace=str(workspace)).registry().ledger.aliases("navagent") == {}

    token = create_token(workspace / "_state" / "ui-tokens", "alice")
    b.get(server + "/login")
    b.find_element(By.ID, "token").send_keys(token)
    _follow(b, b.find_element(By.ID, "login"))
    assert "alice" in b.find_element(By.ID, "operator").text
    b.get(server + "/models/navagent")
    _follow(b, b.find_element(By.CSS_SELECTOR, f"tr[data-version='{version}'] button.promote-staging"))
    assert "Promoted" in b.find_element(By.TAG_NAME, "h1").text, b.find_element(By.TAG_NAME, "main").text
    ledger = App(workspace=str(workspace)).registry().ledger
    assert ledger.aliases("navagent") == {"staging": version}
    assert ledger.history("navagent")[-1].actor == "alice", "the signed-in operator acted, not a form field"
    b.get(server + "/models/navagent")
    assert b.find_element(By.ID, "alias-staging").text == version
    _shot(b, "models")
    _no_console_errors(b)

    b.get(server + "/schedules")
    assert "nightly-nav" in b.find_element(By.ID, "schedule-nightly-nav").text
    _shot(b, "schedules")
    b.get(server + "/webhooks")
    assert "ops-chat" in b.find_element(By.ID, "dead").text
    _shot(b, "webhooks")
    b.get(server + "/control-plane")
    assert "hash chain intact" in b.find_element(By.ID, "chain").text
    _shot(b, "control-plane")
    _no_console_errors(b)


# ------------------------------------------------------------------------------ the server's rules, without a browser
def test_changes_need_a_session_and_its_csrf_token_and_pages_carry_security_headers(workspace):
    client = TestClient(create_app(App(workspace=str(workspace))))
    page = client.get("/")
    assert page.status_code == 200
    for name, value in HEADERS.items():
        assert page.headers[name] == value
    assert client.post("/webhooks/replay", data={"id": "x"}).status_code == 403  # anonymous
    token = create_token(workspace / "_state" / "ui-tokens", "bob")
    assert client.post("/login", data={"token": "wrong"}, follow_redirects=False).status_code == 401
    login = client.post("/login", data={"token": token}, follow_redirects=False)
    assert login.status_code == 303
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    forged = client.post("/schedules/nightly-nav/act", data={"action": "pause", "csrf": "0" * 64})
    assert forged.status_code == 403 and "CSRF" in forged.text
    assert StateStore(workspace / "_state").get_schedule("nightly-nav")["paused"] is False
    tampered = TestClient(create_app(App(workspace=str(workspace))))
    tampered.cookies.set(SESSION_COOKIE, "mallory|9999999999|" + "0" * 64)
    assert tampered.post("/webhooks/replay", data={"id": "x", "csrf": "y"}).status_code == 403
    assert client.get("/runs/..%2F_state").status_code == 404
    assert client.get("/reports/v1/..%2F..%2Fregistry.db").status_code == 404


def test_the_cli_takes_asset_at_alias_and_lists_aliases_as_json(tmp_path, samples, capsys):
    import json as _json

    from mlops_unity_pipeline import cli
    from mlops_unity_pipeline.registry.base import RegistrationRequest
    from mlops_unity_pipeline.registry.local import LocalModelRegistry

    registry = LocalModelRegistry(tmp_path / "reg")
    v = registry.register(RegistrationRequest("nav-001", "NavAgent", "3DBall", "job-1",
                                              samples / "onnx" / "3DBall.onnx", git_sha="abc1234"))
    registry.ledger.move_alias("NavAgent", "staging", v.version, action="promote", reason="test")
    root = str(tmp_path / "reg")
    for ref in ("navagent@staging", "NavAgent:staging", "nav-001@staging", v.version):
        assert cli.main(["models", "--registry", root, "path", ref]) == 0
        assert capsys.readouterr().out.strip() == str(v.model_path)
    assert cli.main(["models", "--registry", root, "path", "navagent@production"]) == 2
    err = capsys.readouterr().err
    assert "no 'production' alias" in err and root in err
    assert cli.main(["models", "--registry", root, "list", "--json"]) == 0
    [listed] = _json.loads(capsys.readouterr().out)
    assert listed["version"] == v.version and listed["aliases"] == ["staging"]
    assert cli.main(["models", "--registry", root, "list"]) == 0
    assert "staging" in capsys.readouterr().out
    assert cli.main(["models", "--registry", root, "history", "nav-001"]) == 0  # the asset_id works too
    assert v.version in capsys.readouterr().out
    assert cli.main(["models", "--registry", root, "history", "nosuch"]) == 2
    assert root in capsys.readouterr().err


def test_tensorboard_shows_each_run_once_with_its_evaluation(workspace):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer().AddRunsFromDirectory(str(workspace))
    mux.Reload()
    runs = mux.Runs()
    assert runs and not [r for r in runs if "_registry" in r], "registered copies are not extra runs"
    tags = mux.Runs()[next(r for r in runs if r.startswith("nav-0"))]["scalars"]
    assert "Environment/Cumulative Reward" in tags and "Evaluation/Success Rate" in tags


def test_compare_shows_all_keys_or_only_the_differences(workspace):
    client = TestClient(create_app(App(workspace=str(workspace))))
    only = client.get("/compare?run=nav-0&run=nav-1&only_diff=0&only_diff=1").text  # the form: hidden 0, box 1
    everything = client.get("/compare?run=nav-0&run=nav-1&only_diff=0").text
    assert "rl_config.seed" in only and "rl_config.max_steps" not in only
    assert "rl_config.seed" in everything and "rl_config.max_steps" in everything
