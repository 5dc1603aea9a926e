"""Trainer 'mlagents': the real `mlagents-learn` (or `MLAGENTS_TRAIN_COMMAND`) against the built player.

Offline-first runs get their own step before it: behaviour cloning from the `.demo` files, in the trainer
environment, with no environment interaction; the online run then continues from it (`--initialize-from`), or,
with `offline_mode: offline_only`, the cloned policy is the result.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

from .. import settings
from ..build.builders import log_tail
from ..errors import StageError
from . import environment as trainer_env
from .base import Callback, TrainingOutcome, TrainRequest
from .ports import reserve_ports
from .runner import build_command, command_run_id, run_trainer

log = logging.getLogger("unity_mlops")

PORT_ATTEMPTS = 4  # trainer starts tried when a foreign process takes the reserved port first
PRETRAIN_SCRIPT = Path(__file__).resolve().parent.parent / "in_trainer_env" / "pretrain_bc.py"


def _config_of(custom_command: str | None, generated: Path) -> dict:
    """The trainer config the run reads: a custom command's own, else the generated one."""
    import shlex

    import yaml

    path = generated
    if custom_command:
        own = [a for a in shlex.split(custom_command) if a.endswith((".yaml", ".yml")) and Path(a).is_file()]
        path = Path(own[0]) if own else generated
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return doc if isinstance(doc, dict) else {}


def other_behaviors(config: dict, behavior: str, run_dir: Path) -> dict[str, tuple[Path, int | None, int]]:
    """The run's behaviours besides the job's own that trained (a build may not have every one its config lists):
    each one's model, final step and the max_steps of its own block."""
    from .mlagents_yaml import behavior_block
    from .runner import final_step

    out = {}
    for name in (config.get("behaviors") or {}):
        if name == behavior or not ((run_dir / name).is_dir() or (run_dir / f"{name}.onnx").is_file()):
            continue
        top = int(float(behavior_block(config, name).get("max_steps", 500_000)))
        out[name] = (run_dir / f"{name}.onnx", final_step(run_dir, name), top)
    return out


class MLAgentsTrainer:
    name = "mlagents"
    needs_player = True

    def __init__(self, trainer_env_path: Path | None = None) -> None:
        self.trainer_env_path = trainer_env_path
        self.custom_command = settings.train_command()
        self.run_id = command_run_id(self.custom_command)  # a command's own --run-id is kept

    def environment(self) -> trainer_env.TrainerEnvironment:
        return trainer_env.resolve(self.trainer_env_path)

    def checker_python(self) -> Path | None:
        return None if self.custom_command else self.environment().python

    def train(self, request: TrainRequest, callback: Callback) -> TrainingOutcome:
        cfg = request.config
        init_from, pretrain = None, None
        if cfg.use_offline_rl:
            pretrain = self.pretrain(request)
            init_from = pretrain["run_id"]
            if cfg.offline_mode == "offline_only":
                out = Path(pretrain["onnx"])
                return TrainingOutcome(returncode=0, run_dir=out.parent, onnx_path=out, final_step=0, max_steps=0,
                                       interrupted=False, timed_out=False, log_path=request.logs / "pretrain.log",
                                       pretrain=pretrain)
        resume = request.resume
        resumed_from = request.checkpoint_step() if resume else None
        if resume:
            log.info("train: resuming run %s from its checkpoint (step %s)", request.run_dir.name, resumed_from)
        callback.on_training_start(request)

        def on_progress(p) -> None:
            log.debug("step %d mean reward %s", p.step, p.mean_reward)
            if not callback.on_progress(p):
                request.stop.stopped_by_callback = True

        avoid: set[int] = set()
        written = _config_of(self.custom_command, request.trainer_config)
        envs = int((written.get("env_settings") or {}).get("num_envs") or cfg.num_envs)
        for _ in range(PORT_ATTEMPTS):
            with reserve_ports(envs, avoid=frozenset(avoid)) as ports:
                command = build_command(
                    None if self.custom_command else self.environment(), request.trainer_config,
                    request.build.env_path, request.run_dir.name, request.results_dir, num_envs=cfg.num_envs,
                    seed=cfg.seed, base_port=ports.base, resume=resume, custom_command=self.custom_command,
                    config=written, no_graphics=not request.definition.camera, device=request.device,
                )
                if init_from and not resume:
                    command[command.index("--force"):command.index("--force")] = ["--initialize-from", init_from]
                outcome = run_trainer(
                    command, run_dir=request.run_dir, behavior=request.behavior,
                    max_steps=request.settings.max_steps, log_path=request.logs / "trainer.log", cwd=request.cwd,
                    on_progress=on_progress, stop=request.stop, pid_file=request.pid_file,
                )
            if not (outcome.port_in_use and not outcome.progress and not request.stop.cancelled):
                break
            avoid |= set(ports.ports)  # a foreign process took a port between our check and the trainer's bind
            log.warning("train: port %d was taken by another process; retrying on another range", ports.base)
        outcome.resumed_from_step, outcome.pretrain, outcome.device = resumed_from, pretrain, request.device
        outcome.others = other_behaviors(written, request.behavior, outcome.run_dir)
        if outcome.progress:
            last = outcome.progress[-1]
            log.info("train: step %d, mean reward %s, %.0f s", last.step, last.mean_reward, last.elapsed_s)
        callback.on_training_end(outcome)
        return outcome

    def pretrain(self, request: TrainRequest) -> dict:
        """Offline behaviour cloning from the demonstrations; returns its summary, with the run id the online run
        continues from."""
        from ..demos.demofile import DemoError, read_demos
        from ..demos.record import check_compatible

        cfg = request.config
        assert cfg.demonstrations_path
        demo_path = Path(cfg.demonstrations_path).resolve()
        try:
            problems = check_compatible(read_demos(demo_path), request.definition)
        except DemoError as exc:
            raise StageError("train", f"demonstrations unusable: {exc}") from None
        if problems:
            raise StageError("train", "demonstrations do not match the behavior: " + "; ".join(problems))
        run_id = f"{request.run_dir.name}-bc"
        out = request.results_dir / run_id
        log_path = request.logs / "pretrain.log"
        cmd = [str(self.environment().python), "-s", "-W", "ignore", str(PRETRAIN_SCRIPT), "--config",
               str(request.trainer_config), "--behavior", request.behavior, "--demo", str(demo_path), "--out",
               str(out), "--updates", str(cfg.bc_updates), "--seed", str(cfg.seed)]
        log.info("train: offline behavior cloning from %s (%d updates)", demo_path, cfg.bc_updates)
        with log_path.open("w") as fh:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=trainer_env.clean_env(),
                                  cwd=request.cwd)
        onnx = out / f"{request.behavior}.onnx"
        if proc.returncode != 0 or not onnx.is_file():
            raise StageError("train", f"offline pretraining failed (exit {proc.returncode})",
                             log_tail=log_tail(log_path))
        try:
            summary = json.loads((out / "pretrain_bc.json").read_text())
        except (OSError, ValueError):
            summary = {}
        return {"run_id": run_id, "onnx": str(onnx), **summary}
