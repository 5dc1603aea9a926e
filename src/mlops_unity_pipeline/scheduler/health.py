"""HTTP health endpoints for the 24/7 scheduler (Kubernetes probes and Prometheus).

`/healthz`: 200 while the loop's heartbeat is fresh (3 poll intervals, at least 30 s), else 503.
`/readyz`: 200 once the scheduler holds its state store and recovered its runs.
`/metrics`: Prometheus text format.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .scheduler import TrainingScheduler


def metrics_text(s: TrainingScheduler) -> str:
    lines = [
        "# HELP unity_mlops_scheduler_up 1 while the scheduler loop is alive.",
        "# TYPE unity_mlops_scheduler_up gauge",
        f"unity_mlops_scheduler_up {1 if _alive(s) else 0}",
        "# HELP unity_mlops_jobs_running Training jobs running now.",
        "# TYPE unity_mlops_jobs_running gauge",
        f"unity_mlops_jobs_running {len(s.running)}",
        "# HELP unity_mlops_schedules Schedules loaded.",
        "# TYPE unity_mlops_schedules gauge",
        f"unity_mlops_schedules {len(s.schedules)}",
        "# HELP unity_mlops_runs Runs in the state store, by status.",
        "# TYPE unity_mlops_runs gauge",
    ]
    for status, n in sorted(s.store.status_counts().items()):
        lines.append(f'unity_mlops_runs{{status="{status}"}} {n}')
    if s.heartbeat is not None:
        lines += ["# HELP unity_mlops_heartbeat_age_seconds Seconds since the loop last ran.",
                  "# TYPE unity_mlops_heartbeat_age_seconds gauge",
                  f"unity_mlops_heartbeat_age_seconds {time.monotonic() - s.heartbeat:.3f}"]
    outbox = s.orchestrator.webhooks
    if outbox is not None:
        lines += ["# HELP unity_mlops_webhook_deliveries Webhook deliveries, by status.",
                  "# TYPE unity_mlops_webhook_deliveries gauge"]
        for status, n in sorted(outbox.counts().items()):
            lines.append(f'unity_mlops_webhook_deliveries{{status="{status}"}} {n}')
    return "\n".join(lines) + "\n"


def _alive(s: TrainingScheduler) -> bool:
    limit = max(30.0, 3 * s.poll_interval_s)
    return s.heartbeat is not None and time.monotonic() - s.heartbeat < limit


def start_health_server(s: TrainingScheduler, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/healthz":
                ok = _alive(s)
                self._send(200 if ok else 503, "ok\n" if ok else "heartbeat stale\n")
            elif self.path == "/readyz":
                self._send(200 if s.ready else 503, "ready\n" if s.ready else "not ready\n")
            elif self.path == "/metrics":
                self._send(200, metrics_text(s), "text/plain; version=0.0.4")
            else:
                self._send(404, "not found\n")

        def _send(self, code: int, body: str, ctype: str = "text/plain") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:  # probes every few seconds: keep the logs quiet
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="unity-mlops-health", daemon=True).start()
    return server
