"""The dashboard's pages and actions. Each reads one store through the product's own classes; each action is the
same call the CLI makes, as the signed-in operator."""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import UserError
from ..scheduler.scheduler import utc_now
from ..scheduler.store import StateStore
from . import charts
from .runs import CURVE_TAGS, detail, flatten

if TYPE_CHECKING:
    from .server import Dashboard

PAGE = 50
SAFE_ID = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _job_dir(dash: Dashboard, job_id: str) -> Path:
    path = dash.paths.workspace / job_id
    if not job_id or set(job_id) - SAFE_ID or job_id.startswith(("_", ".")) or not path.is_dir():
        raise LookupError(f"no run {job_id!r} in {dash.paths.workspace}")
    return path


def _int(value: Any, default: int) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return default


# ---------------------------------------------------------------------------------------------------- runs
def runs_page(dash: Dashboard, request: Request) -> Response:
    q = request.query_params
    page = _int(q.get("page"), 0)
    sort, desc = q.get("sort", "started_at"), q.get("desc", "1") == "1"
    rows, total = dash.index.query(text=q.get("q", ""), status=q.get("status", ""), sort=sort, descending=desc,
                                   offset=page * PAGE, limit=PAGE)
    return dash.render(request, "runs.html", rows=rows, total=total, page=page, pages=max(1, -(-total // PAGE)),
                       q=q.get("q", ""), status=q.get("status", ""), sort=sort, desc=desc)


def run_page(dash: Dashboard, request: Request) -> Response:
    d = detail(_job_dir(dash, request.path_params["job_id"]))
    evaluation = (d["metrics"].get("evaluation") or {})
    baseline = (evaluation.get("random_baseline") or {}).get("mean_reward")
    svgs = [charts.render(charts.Chart(tag, [charts.Series(tag.split("/")[-1], d["curves"][tag])],
                                       reference=("random policy", baseline)
                                       if tag == CURVE_TAGS[0] and baseline is not None else None))
            for tag in CURVE_TAGS if tag in d["curves"]]
    seconds = d["metrics"].get("stage_seconds") or {}
    stages = {name: seconds[name] for name in ("generate", "build", "train", "evaluate", "register") if name in seconds}
    return dash.render(request, "run.html", d=d, charts=svgs, stages=stages, total_s=sum(stages.values()) or 1,
                       evaluation=evaluation)


def compare_page(dash: Dashboard, request: Request) -> Response:
    ids = [i for i in request.query_params.getlist("run") if i][:8]
    only_diff = request.query_params.get("only_diff", "1") == "1"
    runs = [detail(_job_dir(dash, i)) for i in ids]
    chart = charts.render(charts.Chart("Cumulative reward", [
        charts.Series(r["summary"].job_id, r["curves"].get(CURVE_TAGS[0], [])) for r in runs]))
    configs = [flatten(r["job"]) for r in runs]
    keys = sorted(set().union(*configs)) if configs else []
    diff = [(k, [c.get(k) for c in configs]) for k in keys]
    if only_diff:
        diff = [(k, vals) for k, vals in diff if len({repr(v) for v in vals}) > 1]
    candidates, _ = dash.index.query(limit=200)
    return dash.render(request, "compare.html", runs=runs, chart=chart, diff=diff, ids=ids, only_diff=only_diff,
                       candidates=candidates)


# ---------------------------------------------------------------------------------------------------- models
def models_page(dash: Dashboard, request: Request) -> Response:
    registry = dash.app.registry()
    page = _int(request.query_params.get("page"), 0)
    listed, total = registry.assets_page(PAGE, page * PAGE)  # a page of assets: 1,000 of them stay fast
    assets = [(name, count, registry.ledger.aliases(name), registry.ledger.frozen(name)) for name, count in listed]
    return dash.render(request, "models.html", assets=assets, root=registry.root, page=page, total=total,
                       pages=max(1, -(-total // PAGE)))


def asset_page(dash: Dashboard, request: Request) -> Response:
    registry = dash.app.registry()
    asset = request.path_params["asset"]
    page = _int(request.query_params.get("page"), 0)
    versions, total = registry.page(asset, PAGE, page * PAGE)
    if total == 0:
        raise LookupError(f"no versions of {asset!r} in the registry at {registry.root}")
    ledger = registry.ledger
    aliases = ledger.aliases(asset)
    holders: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        holders.setdefault(version, []).append(alias)
    production = next((v for v in versions if v.version == aliases.get("production")), None)
    reference = None
    if aliases.get("production"):
        prod = production or registry.get(aliases["production"])
        rate = ((prod.metrics.get("evaluation") or {}).get("model") or {}).get("success_rate")
        reference = ("production", rate) if rate is not None else None
    series = registry.metric_series(asset, ("evaluation", "model", "success_rate"))
    lineage = charts.render(charts.Chart("Success rate across versions", [charts.Series("success", [
        (float(n), v) for n, v in series])], reference=reference, x_label="version", smoothing=0.0))
    reports = {v.version: (Path(registry.root) / "reports" / v.version / "report.md").is_file() for v in versions}
    return dash.render(request, "asset.html", asset=asset, versions=versions, total=total, page=page,
                       pages=max(1, -(-total // PAGE)), aliases=aliases, holders=holders,
                       frozen=ledger.frozen(asset), history=ledger.history(asset)[-50:][::-1],
                       incidents=ledger.incidents(asset), lineage=lineage, reports=reports,
                       more_actions=_more_actions("asset"))


BUILT_IN_BUTTONS = {"model.promote", "model.rollback", "model.freeze", "schedule.pause", "schedule.trigger",
                    "webhook.replay"}  # placed by hand in the templates; any other action gets a generated form


def _more_actions(page: str) -> list:
    from ..app.actions import page_commands

    return [(a, c) for a, c in page_commands(page) if a.id not in BUILT_IN_BUTTONS]


async def asset_action(dash: Dashboard, request: Request) -> Response:
    operator, form = await dash.acting(request)
    values = {"asset": request.path_params["asset"], **{k: str(v)[:500] for k, v in form.items()}}
    # gates may evaluate (or retrain): off the event loop
    return await asyncio.to_thread(perform_button, dash, request, operator, "asset", values,
                                   f"/models/{request.path_params['asset']}")


def perform_button(dash: Dashboard, request: Request, operator: str, page: str, values: dict[str, Any],
                   back: str) -> Response:
    """A dashboard button is an action's command (`app/actions.py`): the same action the command line and the MCP
    server run, with the signed-in operator as its actor."""
    from ..app.actions import Context, command_for, payload_of, perform
    from ..governance import GovernanceError, PromotionBlocked

    found = command_for(page, str(values.get("action", "")))
    if found is None:
        raise ValueError(f"unknown action {values.get('action')!r}")
    act, cmd = found
    try:
        result = perform(act, payload_of(act, cmd, values), Context(dash.app, actor=operator,
                                                                    state_dir=dash.paths.state_dir))
    except PromotionBlocked as exc:
        return dash.outcome(request, "Blocked by the gates", str(exc), False, back, status=409,
                            details=[g.to_dict() for g in exc.report.results])
    except (GovernanceError, UserError) as exc:
        return dash.outcome(request, "Refused", str(exc), False, back, status=409)
    title = {"promote": "Promoted", "rollback": "Rolled back"}.get(cmd.name, cmd.name.capitalize())
    return dash.outcome(request, title, act.text(result), True, back, details=result.get("gates"))


# ---------------------------------------------------------------------------------------------------- schedules
def _store(dash: Dashboard) -> StateStore:
    return StateStore(dash.paths.state_dir, dash.paths.database)


def schedules_page(dash: Dashboard, request: Request) -> Response:
    store = _store(dash)
    page, total = _int(request.query_params.get("page"), 0), 0
    schedules = []
    if dash.paths.database or dash.paths.scheduler_db.is_file():
        total = store.count_schedules()  # a page of them, each with its last runs: 10,000 schedules stay fast
        schedules = [(s, store.runs_for(s["schedule_id"], limit=10)) for s in store.list_schedules(PAGE, page * PAGE)]
    return dash.render(request, "schedules.html", schedules=schedules, page=page, total=total,
                       pages=max(1, -(-total // PAGE)))


async def schedule_action(dash: Dashboard, request: Request) -> Response:
    operator, form = await dash.acting(request)
    schedule_id = request.path_params["schedule_id"]
    _store(dash).get_schedule(schedule_id)  # KeyError -> 404 for an unknown schedule
    values = {"schedule_id": schedule_id, **{k: str(v)[:500] for k, v in form.items()}}
    return await asyncio.to_thread(perform_button, dash, request, operator, "schedules", values, "/schedules")


# ---------------------------------------------------------------------------------------------------- webhooks
def _outbox(dash: Dashboard):
    from ..webhooks.outbox import WebhookOutbox

    # no endpoints: it only reads and re-queues, it never sends
    return WebhookOutbox(dash.paths.outbox, database=dash.paths.database)


def webhooks_page(dash: Dashboard, request: Request) -> Response:
    exists = dash.paths.database is not None or dash.paths.outbox.is_file()
    box = _outbox(dash) if exists else None
    return dash.render(request, "webhooks.html", counts=box.counts() if box else {},
                       dead=box.dead_letters() if box else [])


async def webhooks_replay(dash: Dashboard, request: Request) -> Response:
    operator, form = await dash.acting(request)
    values = {"action": "replay", "id": str(form.get("id", ""))[:200]}
    return await asyncio.to_thread(perform_button, dash, request, operator, "webhooks", values, "/webhooks")


# ---------------------------------------------------------------------------------------------------- control plane
def control_plane_page(dash: Dashboard, request: Request) -> Response:
    from ..controlplane.eventlog import IntegrityError

    rt = dash.control_plane()
    chain: dict[str, Any]
    try:
        chain = {"ok": True, **rt.verify()}
    except IntegrityError as exc:
        chain = {"ok": False, "error": str(exc)}
    state = rt.replay_events() if chain["ok"] else None
    now = utc_now()
    facts = sorted(((name, subject, f) for (name, subject), f in state.facts.items()), key=lambda t: t[:2]) \
        if state else []
    pending = [a for aid, a in (state.approvals.items() if state else []) if aid not in state.used_approvals]
    events = list(deque(rt.events.read(), maxlen=30))[::-1] if chain["ok"] else []
    return dash.render(request, "control_plane.html", chain=chain, facts=facts, now=now, pending=pending,
                       events=events, log=rt.events.path, bundle=rt.bundle_path)
