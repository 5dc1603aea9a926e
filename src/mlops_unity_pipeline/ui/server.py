"""`unity-mlops ui`: the dashboard, a Starlette app rendered on the server (Jinja2, inline SVG charts, one small
script for live updates over server-sent events).

It reads the same stores the pipeline writes — job folders, the registry, the scheduler's state, the webhook
outbox, the control-plane log — and changes state only through the same services as the CLI (`app.App`:
governance with its gates, ledger and control-plane hook; the scheduler's store; the outbox), as the signed-in
operator. Bound to 127.0.0.1 by default; every response carries a strict Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..app import App
from ..artifacts import open_artifacts
from ..errors import UserError
from . import pages
from .auth import SESSION_COOKIE, SESSION_TTL_S, Sessions
from .runs import RunIndex

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class Dashboard:
    def __init__(self, app: App, tokens_file: Path | None = None, session_key: bytes | None = None) -> None:
        self.app = app
        self.paths = app.paths
        self.index = RunIndex(self.paths.workspace, open_artifacts(self.paths.artifacts), database=self.paths.database)
        self._runtime: Any = None
        self._runtime_lock = threading.Lock()
        self.sessions = Sessions(tokens_file or self.paths.state_dir / "ui-tokens", session_key)
        self.templates = Environment(loader=PackageLoader("mlops_unity_pipeline.ui", "templates"),
                                     autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        self.templates.globals.update(version=__version__, urlencode=urlencode)
        self.templates.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.1f} %"
        self.templates.filters["num"] = lambda v, d=3: "–" if v is None else (f"{v:,}" if isinstance(v, int)
                                                                               else f"{v:.{d}f}")
        self.templates.filters["secs"] = lambda v: "–" if v is None else (
            f"{v:.1f} s" if v < 120 else f"{int(v // 60)}m{int(v % 60):02d}s")
        self.templates.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True, default=str)

    # ------------------------------------------------------------------ plumbing
    def render(self, request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
        cookie = request.cookies.get(SESSION_COOKIE)
        html = self.templates.get_template(template).render(
            request=request, operator=self.sessions.identity(cookie), csrf=self.sessions.csrf(cookie),
            workspace=self.paths.workspace, **context)
        return HTMLResponse(html, status_code=code)

    def operator(self, request: Request) -> str | None:
        return self.sessions.identity(request.cookies.get(SESSION_COOKIE))

    async def acting(self, request: Request) -> tuple[str, Any]:
        """(the signed-in operator, the form) for a state-changing request; refuses anonymous or forged ones."""
        form = await request.form()
        cookie = request.cookies.get(SESSION_COOKIE)
        name = self.sessions.identity(cookie)
        if name is None:
            raise PermissionError("sign in first: changes need an operator token (`unity-mlops ui token NAME`)")
        if not self.sessions.check_csrf(cookie, str(form.get("csrf", ""))):
            raise PermissionError("the form's CSRF token does not match this session; reload the page")
        return name, form

    def outcome(self, request: Request, title: str, message: str, ok: bool, back: str, status: int = 200,
                details: Any = None) -> HTMLResponse:
        return self.render(request, "outcome.html", code=status, title=title, message=message, ok=ok, back=back,
                           details=details)

    def control_plane(self):
        """Loaded once (bundle and schemas are compiled at start-up cost); the log is read anew on every page."""
        with self._runtime_lock:
            if self._runtime is None:
                self._runtime = self.app.control_plane()
            return self._runtime

    # ------------------------------------------------------------------ sign-in
    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self.render(request, "login.html", error=None)
        form = await request.form()
        name = self.sessions.login(str(form.get("token", "")))
        if name is None:
            return self.render(request, "login.html", code=401, error="unknown token")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, self.sessions.issue(name), max_age=SESSION_TTL_S, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # ------------------------------------------------------------------ live updates
    async def live(self, request: Request) -> Response:
        """Server-sent events: the running jobs' progress every 2 s (the stream ends after a minute and the browser
        reconnects, so an idle tab holds no server resources for long)."""
        async def stream():
            for _ in range(30):
                if await request.is_disconnected():
                    break
                rows, _ = await asyncio.to_thread(self.index.query, status="running", limit=100)
                data = [{"job_id": r.job_id, "steps": r.steps, "max_steps": r.max_steps, "fraction": r.fraction,
                         "reward": r.reward} for r in rows]
                yield f"data: {json.dumps(data)}\n\n"
                await asyncio.sleep(2.0)
        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    def report_file(self, request: Request) -> Response:
        version, name = request.path_params["version"], request.path_params["name"]
        registry = self.app.registry()
        folder = (Path(registry.root) / "reports" / version).resolve()
        path = (folder / name).resolve()
        if path.parent != folder or path.suffix not in (".png", ".md") or not path.is_file():
            return Response("not found", status_code=404)
        return FileResponse(path)


def _guard(handler: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapped(request: Request) -> Response:
        dash: Dashboard = request.app.state.dashboard
        try:
            if inspect.iscoroutinefunction(handler):
                return await handler(dash, request)
            return await asyncio.to_thread(handler, dash, request)  # file and SQLite reads: off the event loop
        except PermissionError as exc:
            return dash.outcome(request, "Not allowed", str(exc), False, "/login", status=403)
        except (UserError, LookupError, ValueError) as exc:
            return dash.outcome(request, "Refused", str(exc), False, request.headers.get("referer") or "/",
                                status=409 if not isinstance(exc, LookupError) else 404)
    return wrapped


def create_app(app: App | None = None, tokens_file: Path | None = None, session_key: bytes | None = None) -> Starlette:
    dash = Dashboard(app or App(), tokens_file, session_key)
    routes = [
        Route("/", _guard(pages.runs_page)),
        Route("/runs/{job_id}", _guard(pages.run_page)),
        Route("/compare", _guard(pages.compare_page)),
        Route("/models", _guard(pages.models_page)),
        Route("/models/{asset}", _guard(pages.asset_page)),
        Route("/models/{asset}/act", _guard(pages.asset_action), methods=["POST"]),
        Route("/reports/{version}/{name}", _guard(Dashboard.report_file)),
        Route("/schedules", _guard(pages.schedules_page)),
        Route("/schedules/{schedule_id}/act", _guard(pages.schedule_action), methods=["POST"]),
        Route("/webhooks", _guard(pages.webhooks_page)),
        Route("/webhooks/replay", _guard(pages.webhooks_replay), methods=["POST"]),
        Route("/control-plane", _guard(pages.control_plane_page)),
        Route("/login", _guard(Dashboard.login), methods=["GET", "POST"]),
        Route("/logout", _guard(Dashboard.logout), methods=["POST"]),
        Route("/live/runs", _guard(Dashboard.live)),
        Mount("/static", StaticFiles(directory=str(resources.files("mlops_unity_pipeline.ui") / "static")),
              name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette):
        # warm the caches in the background: the first visit does not pay for them
        threading.Thread(target=_warm, args=(dash,), daemon=True).start()
        yield

    web = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)], lifespan=lifespan)
    web.state.dashboard = dash
    return web


def _warm(dash: Dashboard) -> None:
    """Index a workspace never indexed and compile the control-plane bundle once, before the first visitor asks."""
    dash.index.start()
    try:
        dash.control_plane()
    except Exception:  # noqa: BLE001  (the page reports the problem when it is visited)
        pass


class SecurityHeaders:
    """A pure ASGI middleware (it does not buffer, so server-sent events still stream)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *[(k.lower().encode(), v.encode()) for k, v in HEADERS.items()
                                        if k.lower().encode() not in names]]
            await send(message)

        await self.app(scope, receive, with_headers)


def serve(app: App, host: str = "127.0.0.1", port: int = 8765) -> None:
    import uvicorn

    uvicorn.run(create_app(app), host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)
