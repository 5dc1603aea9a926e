"""Webhooks against a real HTTP receiver on 127.0.0.1 that verifies Standard Webhooks signatures."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from mlops_unity_pipeline.errors import SpecError
from mlops_unity_pipeline.webhooks import Endpoint, WebhookOutbox, redact_url, sign

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_signature_matches_the_spec_test_vector():
    body = b'{"test": 2432232314}'
    assert sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


class Receiver:
    """Verifies each request; answers from a script of status codes (then 200); can be taken down."""

    def __init__(self, statuses=(), retry_after=None, delay_s=0.0):
        self.statuses = list(statuses)
        self.delay_s = delay_s
        self.retry_after = retry_after
        self.received: list[dict] = []
        self.attempts: list[str] = []
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                try:
                    payload = Webhook(SECRET).verify(body, dict(self.headers))
                except Exception:
                    receiver.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                time.sleep(receiver.delay_s)  # a slow receiver: the delivery stays in flight that long
                receiver.attempts.append(self.headers["webhook-id"])
                code = receiver.statuses.pop(0) if receiver.statuses else 200
                if code == 200:
                    receiver.received.append({"id": self.headers["webhook-id"], **payload})
                self.send_response(code)
                if receiver.retry_after and code == 503:
                    self.send_header("Retry-After", str(receiver.retry_after))
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Clock:
    def __init__(self):
        self.t = 1_800_000_000.0

    def __call__(self):
        return self.t


def outbox(tmp_path, url, clock, **kw):
    return WebhookOutbox(tmp_path / "webhooks.db", [Endpoint(url, SECRET)], clock=clock, **kw)


def test_signed_delivery_with_retries_after_500s(tmp_path, database):
    rx = Receiver(statuses=[500, 503])
    clock = Clock()
    box = outbox(tmp_path, rx.url, clock, database=database)
    try:
        msg = box.emit("job.failed", {"job_id": "j1", "asset_id": "a1", "model_version": None, "stage": "train",
                                      "message": "boom", "log_tail": "..."})
        for _ in range(6):
            box.deliver_due()
            clock.t += 400  # past any backoff
        assert rx.attempts == [msg, msg, msg], "the same webhook-id on every attempt"
        assert len(rx.received) == 1 and rx.bad_signatures == 0
        event = rx.received[0]
        assert event["type"] == "job.failed" and event["data"]["stage"] == "train"
        assert event["text"].startswith("Training job j1 failed in stage train")
        assert box.counts() == {"delivered": 1}
    finally:
        rx.stop()


def test_retry_after_is_honoured(tmp_path, database):
    rx = Receiver(statuses=[503], retry_after=120)
    clock = Clock()
    box = outbox(tmp_path, rx.url, clock, database=database)
    try:
        box.emit("job.started", {"job_id": "j", "asset_id": "a", "model_version": None})
        box.deliver_due()
        clock.t += 100
        assert box.deliver_due() == 0, "not before Retry-After"
        clock.t += 25
        assert box.deliver_due() == 1 and len(rx.received) == 1
    finally:
        rx.stop()


def test_receiver_down_then_back_exactly_once_across_a_restart(tmp_path, database):
    clock = Clock()
    rx = Receiver()
    port = rx.port
    rx.stop()  # the receiver is down
    box = outbox(tmp_path, f"http://127.0.0.1:{port}/hooks", clock, database=database)
    ids = [box.emit(t, {"job_id": "j", "asset_id": "a", "model_version": "v"})
           for t in ("job.started", "model.registered", "job.completed")]
    box.deliver_due()
    assert box.counts() == {"pending": 3}
    # the process restarts (a new outbox on the same file) and the receiver comes back on the same port
    rx2 = Receiver.__new__(Receiver)
    Receiver.__init__(rx2)
    rx2.stop()
    from http.server import ThreadingHTTPServer as S
    rx2.server = S(("127.0.0.1", port), rx2.server.RequestHandlerClass)
    threading.Thread(target=rx2.server.serve_forever, daemon=True).start()
    try:
        box2 = outbox(tmp_path, f"http://127.0.0.1:{port}/hooks", clock, database=database)
        for _ in range(5):
            clock.t += 400
            box2.deliver_due()
            box.deliver_due()  # the old instance too: nothing may be delivered twice
        assert sorted(e["id"] for e in rx2.received) == sorted(ids)
        assert len(rx2.received) == 3
    finally:
        rx2.server.shutdown()
        rx2.server.server_close()


def test_dead_letters_and_replay(tmp_path, database):
    rx = Receiver(statuses=[400])
    clock = Clock()
    box = outbox(tmp_path, rx.url, clock, retry_schedule_s=(1, 1), database=database)
    try:
        msg = box.emit("model.registered", {"job_id": "j", "asset_id": "a", "model_version": "v1"})
        box.deliver_due()
        assert box.counts() == {"dead": 1} and box.dead_letters()[0]["error"] == "HTTP 400"
        assert box.replay() == 1
        box.deliver_due()
        assert [e["id"] for e in rx.received] == [msg] and box.counts() == {"delivered": 1}
    finally:
        rx.stop()


def test_endpoint_rules_and_redaction():
    for bad in ("ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "not a url"):
        with pytest.raises(SpecError, match="http"):
            Endpoint(bad)
    with pytest.raises(SpecError, match="whsec_"):
        Endpoint("https://example.com", "plain-secret")
    with pytest.raises(SpecError, match="unknown webhook event"):
        Endpoint("https://example.com", None, ("job.exploded",))
    assert redact_url("https://user:pw@hooks.example.com/a/b?token=s3cret") == "https://hooks.example.com/a/b"


def test_orchestrator_events_reach_the_receiver(tmp_path, monkeypatch, clean_build_env, trainer_env):
    from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator

    rx = Receiver()
    monkeypatch.setenv("WEBHOOK_URL", rx.url)
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("UNITY_BUILD_COMMAND", "false")  # a fast failure
    try:
        with UnityMLOpsOrchestrator(tmp_path / "runs", show_progress=False) as orch:
            job = TrainingJob(job_id="hooked", asset_spec=UnityAssetSpec(asset_id="a9", name="Hooked"),
                              rl_config=RLTrainingConfig(max_steps=1000))
            result = orch.execute_training_job_sync(job)
            assert result.failed_stage == "build"
            types = [e["type"] for e in rx.received]
            assert types == ["job.started", "job.failed"]
            failed = rx.received[1]["data"]
            assert failed["job_id"] == "hooked" and failed["asset_id"] == "a9" and failed["stage"] == "build"
            assert "model_version" in failed and "log_tail" in failed
            log = (tmp_path / "runs" / "hooked" / "logs" / "pipeline.log").read_text()
            assert SECRET not in log and SECRET[6:] not in json.dumps(rx.received)
    finally:
        rx.stop()


def test_the_default_retry_schedule_spans_more_than_a_day_before_a_dead_letter(tmp_path, database):
    from mlops_unity_pipeline.webhooks.outbox import DEFAULT_RETRY_SCHEDULE_S, JITTER

    assert sum(DEFAULT_RETRY_SCHEDULE_S) * (1 - JITTER) > 86400, "even with the earliest jitter"
    clock = Clock()
    rx = Receiver()
    port = rx.port
    rx.stop()  # down for the whole day
    box = outbox(tmp_path, f"http://127.0.0.1:{port}/hooks", clock, database=database)
    box.emit("job.completed", {"job_id": "j", "asset_id": "a", "model_version": "v"})
    start, attempts = clock.t, 0
    while box.counts().get("pending") and attempts < 20:
        attempts += box.deliver_due()
        due = box._next_due_in()
        clock.t += (due or 0) + 0.001
    assert box.counts() == {"dead": 1} and attempts == len(DEFAULT_RETRY_SCHEDULE_S) + 1 == 8
    assert clock.t - start > 86400


def test_an_event_emitted_again_with_its_key_is_one_message(tmp_path, database):
    rx = Receiver()
    clock = Clock()
    box = outbox(tmp_path, rx.url, clock, database=database)
    try:
        a = box.emit("job.completed", {"job_id": "j", "asset_id": "a", "model_version": "v"}, key="run-1")
        b = box.emit("job.completed", {"job_id": "j", "asset_id": "a", "model_version": "v"}, key="run-1")
        c = box.emit("model.registered", {"job_id": "j", "asset_id": "a", "model_version": "v"}, key="run-1")
        box.deliver_due()
        assert a == b != c and sorted(e["id"] for e in rx.received) == sorted([a, c])
    finally:
        rx.stop()


def test_concurrent_senders_never_post_the_same_message(tmp_path, database):
    """Eight senders (each its own outbox, as separate processes would have) drain 60 events at once."""
    rx = Receiver()
    try:
        producer = WebhookOutbox(tmp_path / "webhooks.db", [Endpoint(rx.url, SECRET)], database=database)
        ids = [producer.emit("job.started", {"job_id": f"j{i}", "asset_id": "a", "model_version": None})
               for i in range(60)]
        senders = [WebhookOutbox(tmp_path / "webhooks.db", [Endpoint(rx.url, SECRET)], database=database)
                   for _ in range(8)]
        barrier = threading.Barrier(len(senders))

        def drain(box):
            barrier.wait()
            box.deliver_due()

        threads = [threading.Thread(target=drain, args=(s,)) for s in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(rx.attempts) == sorted(ids), "every message posted exactly once"
        assert producer.counts() == {"delivered": 60}
    finally:
        rx.stop()


def test_a_lease_held_by_a_dead_sender_expires_and_is_retried(tmp_path, database):
    """A sender process is killed while its POST hangs: nobody else posts until its lease expires, then one does."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    hang = socket.socket()  # accepts connections, never answers
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    url = f"http://127.0.0.1:{hang.getsockname()[1]}/hooks"
    db = tmp_path / "webhooks.db"
    box = WebhookOutbox(db, [Endpoint(url, SECRET)], database=database)
    msg = box.emit("job.failed", {"job_id": "j", "asset_id": "a", "model_version": None})
    code = ("import sys; from pathlib import Path; from mlops_unity_pipeline.webhooks import Endpoint, WebhookOutbox;"
            f"WebhookOutbox(Path({str(db)!r}), [Endpoint({url!r}, {SECRET!r})], timeout_s=120, "
            f"database={database!r}).deliver_due()")
    proc = subprocess.Popen([sys.executable, "-c", code])
    conn, _ = hang.accept()  # the sender has claimed the delivery and is posting it
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    conn.close()
    hang.close()
    rx = Receiver()
    try:
        clock = Clock()
        clock.t = time.time()
        mover = WebhookOutbox(db, [Endpoint(url, SECRET)], clock=clock, database=database)
        mover.endpoints = [Endpoint(rx.url, SECRET, name=mover.endpoints[0].ref)]  # the endpoint moved
        assert mover.deliver_due() == 0, "the dead sender's lease still holds"
        clock.t += 3 * 120 + 31  # past the lease (3 x its 120 s timeout + 30 s)
        assert mover.deliver_due() == 1
        assert [e["id"] for e in rx.received] == [msg]
    finally:
        rx.stop()


def test_the_outbox_stores_a_reference_not_the_credentials(tmp_path):
    url = "http://hook:pa55-word-x@127.0.0.1:9/in?token=tok-abcdef"
    box = WebhookOutbox(tmp_path / "webhooks.db", [Endpoint(url, SECRET)])
    box.emit("job.started", {"job_id": "j", "asset_id": "a", "model_version": None, "note": url})
    raw = (tmp_path / "webhooks.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("webhooks.db-*"))
    for secret in ("pa55-word-x", "tok-abcdef", SECRET, SECRET[6:]):
        assert secret.encode() not in raw, secret
    assert Endpoint(url).ref == "http://127.0.0.1:9/in"


def test_flush_waits_for_a_delivery_its_sender_is_posting(tmp_path, database):
    """A delivery being posted holds its lease, which hides it from the query of what is due: flush must still wait
    for it (a job's last event used to be lost at exit when the receiver was slow)."""
    rx = Receiver(delay_s=1.0)
    box = WebhookOutbox(tmp_path / "webhooks.db", [Endpoint(rx.url, SECRET)], database=database)
    try:
        box.start()
        for kind in ("job.started", "job.failed"):
            box.emit(kind, {"job_id": "j", "asset_id": "a"})
            time.sleep(0.2)  # the sender has claimed it and is posting
            box.flush(10.0)
            assert rx.received and rx.received[-1]["type"] == kind, kind
    finally:
        box.close()
        rx.stop()
