"""Evaluation report and changelog for a model version (Markdown + JSON + two PNG charts).

Written under `<registry>/reports/<version>/` (the version's own directory is immutable) and linked from the
ledger evidence when the version is promoted. Contents: the held-out evaluation with its intervals, the
random-policy contrast, the reward curve from the TensorBoard events, an outcome chart, the trainer-config diff
against the baseline (current production), the demonstrations used, the gate results recorded so far, and the
reproducibility fingerprint (spec, config, code sha, package versions, seeds).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..registry.base import TRAINING_EVENTS, ModelRegistry, ModelVersion

REWARD_TAG = "Environment/Cumulative Reward"


def report_dir(registry: ModelRegistry, version: str) -> Path:
    return registry.root / "reports" / version


def _file(v: ModelVersion, name: str) -> Path | None:
    p = v.model_path.parent / name
    return p if p.is_file() else None


def _reward_curve(v: ModelVersion) -> list[tuple[int, float]]:
    events = _file(v, TRAINING_EVENTS) or _file(v, "events.out.tfevents")  # the name before 0.1 kept it
    if events is not None:
        from ..evaluation.tfevents import read_scalars

        curve = read_scalars(events).get(REWARD_TAG)
        if curve:
            return curve
    return [(s, r) for s, r in (v.metrics.get("training") or {}).get("reward_curve", []) if r is not None]


def _charts(out: Path, v: ModelVersion, curve: list[tuple[int, float]], evaluation: dict[str, Any],
            baseline_version: str | None = None, baseline_evaluation: dict[str, Any] | None = None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..evaluation.curves import smooth

    written = []
    if curve:
        fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
        steps = [s for s, _ in curve]
        ax.plot(steps, [r for _, r in curve], "o", markersize=3, alpha=0.35, label="raw")
        ax.plot(steps, smooth([r for _, r in curve], 0.6), linewidth=2, label="smoothed")  # None: a gap, not a join
        baseline = (baseline_evaluation or {}).get("model") or {}
        if baseline.get("mean_reward") is not None:
            ax.axhline(baseline["mean_reward"], linestyle="--", color="grey",
                       label=f"production {baseline_version} (held-out mean)")
        ax.set_xlabel("step")
        ax.set_ylabel("mean cumulative reward")
        ax.set_title(f"{v.version}: training reward")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "reward_curve.png")
        plt.close(fig)
        written.append("reward_curve.png")
    model, base = evaluation.get("model"), evaluation.get("random_baseline")
    if model:
        labels = ["success", "collision", "timeout"]
        fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], [model["success_rate"], model["collision_rate"], model["timeout_rate"]], 0.4,
               label="model")
        if base:
            ax.bar([x + 0.2 for x in xs], [base["success_rate"], base["collision_rate"], base["timeout_rate"]], 0.4,
                   label="random policy")
        ax.set_xticks(list(xs), labels)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"share of {model['episodes']} held-out episodes")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "outcomes.png")
        plt.close(fig)
        written.append("outcomes.png")
    return written


def build_report(registry: ModelRegistry, version: str, promotion: dict[str, Any] | None = None) -> dict[str, Any]:
    v = registry.get(version)
    ledger = registry.ledger
    production = ledger.aliases(v.asset_name).get("production")
    baseline = registry.get(production) if production and production != version else None
    is_production = production == version
    config_diff = ""
    mine = _file(v, "trainer_config.yaml")
    theirs = _file(baseline, "trainer_config.yaml") if baseline else None
    if mine and theirs:
        config_diff = "".join(difflib.unified_diff(
            theirs.read_text().splitlines(True), mine.read_text().splitlines(True),
            fromfile=f"{baseline.version}/trainer_config.yaml", tofile=f"{v.version}/trainer_config.yaml"))
    gates = [e.to_dict() for e in ledger.history(v.asset_name) if e.to_version == version]
    return {
        "version": v.version, "asset_name": v.asset_name, "asset_id": v.asset_id, "job_id": v.job_id,
        "created_at": v.created_at, "model_sha256": v.model_sha256,
        "evaluation": v.metrics.get("evaluation", {}),
        "training": {k: val for k, val in (v.metrics.get("training") or {}).items() if k != "reward_curve"},
        "baseline": baseline.version if baseline else None, "is_production": is_production,
        "baseline_evaluation": baseline.metrics.get("evaluation", {}) if baseline else None,
        "config_diff": config_diff,
        "demonstrations": v.lineage.get("demonstrations", []),
        "fingerprint": {k: v.lineage.get(k) for k in ("spec_sha256", "rl_config_sha256", "trainer_config_sha256",
                                                       "behavior_sha256", "build", "git_sha", "git_dirty", "seeds",
                                                       "versions")},
        "ledger": gates,
        "promotion": promotion,
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _markdown(r: dict[str, Any], charts: list[str]) -> str:
    lines = [f"# Evaluation report: {r['version']}", "",
             f"Asset `{r['asset_name']}` ({r['asset_id']}), job `{r['job_id']}`, registered {r['created_at']}.",
             f"Model sha256 `{r['model_sha256']}`.", ""]
    ev = r["evaluation"]
    model, base = ev.get("model"), ev.get("random_baseline")
    lines += ["## Held-out evaluation", "", f"Source: {ev.get('source', 'n/a')}.", ""]
    if model:
        lines += ["| metric | model | random policy |", "|---|---|---|",
                  f"| success rate | {_pct(model['success_rate'])} [{_pct(model['success_ci95'][0])}, "
                  f"{_pct(model['success_ci95'][1])}] | {_pct(base['success_rate']) if base else '-'} |",
                  f"| mean reward | {model['mean_reward']:.3f} [{model['reward_ci95'][0]:.3f}, "
                  f"{model['reward_ci95'][1]:.3f}] | {base['mean_reward']:.3f} |" if base else "",
                  f"| collision rate | {_pct(model['collision_rate'])} | "
                  f"{_pct(base['collision_rate']) if base else '-'} |",
                  f"| mean episode length | {model['mean_episode_length']:.1f} | "
                  f"{base['mean_episode_length']:.1f} |" if base else "",
                  "", f"{model['episodes']} episodes, evaluation seed {model['seed']}; intervals are 95 %.", ""]
    for chart in charts:
        lines += [f"![{chart}]({chart})", ""]
    lines += ["## Changelog against the baseline", ""]
    if r["baseline"]:
        lines += [f"Baseline: current production `{r['baseline']}`.", ""]
        lines += ["```diff", r["config_diff"].rstrip() or "(trainer configuration unchanged)", "```", ""]
    elif r.get("is_production"):
        lines += ["This version is the current production version.", ""]
    else:
        lines += ["No production version yet: this is the first candidate.", ""]
    lines += ["## Demonstrations", ""]
    demos = r["demonstrations"]
    lines += [f"- `{d.get('path')}` sha256 `{d.get('sha256')}`" for d in demos] if demos else ["None (online RL)."]
    if r.get("promotion"):
        p = r["promotion"]
        lines += ["", f"## Gates for this promotion (baseline: {p.get('baseline')})", ""]
        lines += [f"- {'PASS' if g['passed'] else 'FAIL'} {g['gate']}: {g['message']}" for g in p.get("gates", [])]
    lines += ["", "## Gates and promotions", ""]
    if r["ledger"]:
        for e in r["ledger"]:
            lines.append(f"- {e['at']} {e['actor']}: {e['action']} {e['alias'] or ''} "
                         f"{e['from_version'] or '-'} -> {e['to_version']} ({e['reason']})")
            for g in (e["evidence"] or {}).get("gates", []):
                lines.append(f"  - {'PASS' if g['passed'] else 'FAIL'} {g['gate']}: {g['message']}")
    else:
        lines.append("Not promoted yet.")
    lines += ["", "## Reproducibility fingerprint", "", "```json",
              json.dumps(r["fingerprint"], indent=2, sort_keys=True, default=str), "```", ""]
    return "\n".join(line for line in lines if line is not None)


def write_report(registry: ModelRegistry, version: str, out: Path | None = None,
                 promotion: dict[str, Any] | None = None) -> Path:
    """Write report.md, report.json and the charts into a new directory; return the Markdown path.

    Reports are evidence, so they are write-once: each goes to its own directory
    (`reports/<version>/promotion-<time>/` for the one a promotion links from the ledger with its hash,
    `reports/<version>/report-<time>/` for `models report`), and a directory that already holds one is refused."""
    data = build_report(registry, version, promotion)
    if out is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        out = report_dir(registry, version) / f"{'promotion' if promotion else 'report'}-{stamp}"
    if (out / "report.md").exists():
        raise UserError(f"{out} already holds a report; reports are write-once evidence",
                        hint="give another --out (or none: a new directory is made)")
    out.mkdir(parents=True, exist_ok=True)
    charts = _charts(out, registry.get(version), _reward_curve(registry.get(version)), data["evaluation"],
                     data.get("baseline"), data.get("baseline_evaluation"))
    data["charts"] = charts
    (out / "report.json").write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    md = out / "report.md"
    md.write_text(_markdown(data, charts))
    for f in (md, out / "report.json", *(out / c for c in charts)):
        f.chmod(0o444)
    return md


def report_digest(md_path: Path) -> str:
    return hashlib.sha256(md_path.read_bytes()).hexdigest()
