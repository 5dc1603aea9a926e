"""Headless player: serves the built-in worlds to `mlagents-learn` exactly as a Unity player build would.

`mlagents-learn --env <build>/<Behavior>` starts it as
``<exe> [-nographics -batchmode] --mlagents-port <port> -logFile <file> [env-args...]``. The trainer is the gRPC
server; we connect as the client, send our capabilities, receive the seed (and the number of areas: that many
arenas per agent), and then exchange observations for actions until the trainer says QUIT or goes away. Unknown
flags are ignored, like Unity does. A build may host several behaviours (player.json `behaviors`), each a world of
`behavior.tasks`: teams appear as `Name?team=N`, groups with their group rewards, cameras as PNG. Side channels go
both ways: engine configuration and environment parameters in (a curriculum lesson applies to the episodes that
start after it arrives), statistics out (`Episode/Success`, `Episode/Collision`, `Task/<parameter>`).

Extra flags (pass them after `--env-args`): ``--agents N`` agents per behaviour, ``--null`` serve constant
observations (benchmark ceiling), ``--uncompressed-camera`` camera images as floats instead of PNG, ``--config FILE``
the build's player.json.

Runs in the trainer environment: imports only numpy, grpc and this package's `behavior`/`player` modules.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..behavior.definition import COLLISION_STAT, EVALUATION_SEED, SUCCESS_STAT, BehaviorDefinition
from ..behavior.tasks import SlotFrame, SlotSpec, Task
from ..behavior.worlds import make_task
from .protocol import (
    CMD_QUIT,
    CMD_RESET,
    STATUS_OK,
    SlotEncoder,
    brain_parameters,
    empty_message,
    initialization_message,
    parse_trainer_message,
    rl_output,
)
from .side_channels import EnvironmentState, join_messages, stat_message

log = logging.getLogger("unity_mlops.player")

EXCHANGE = "/communicator_objects.UnityToExternalProto/Exchange"


class PlayerArgumentError(Exception):
    pass


@dataclass
class PlayerOptions:
    port: int
    log_file: str | None
    config: Path
    agents: int | None
    null: bool
    uncompressed: bool = False


def parse_args(argv: list[str], default_config: Path) -> PlayerOptions:
    port = log_file = agents = None
    config, null, uncompressed = default_config, False, False
    i = 0

    def value(flag: str) -> str:
        if i + 1 >= len(argv):
            raise PlayerArgumentError(f"{flag} needs a value")
        return argv[i + 1]

    while i < len(argv):
        a = argv[i]
        if a == "--mlagents-port":
            v = value(a)
            if not v.isdigit() or not 0 < int(v) < 65536:
                raise PlayerArgumentError(f"--mlagents-port must be a TCP port number, got {v!r}")
            port, i = int(v), i + 2
        elif a.lower() == "-logfile":
            log_file, i = value(a), i + 2
        elif a == "--agents":
            v = value(a)
            if not v.isdigit() or int(v) <= 0:
                raise PlayerArgumentError(f"--agents must be a positive integer, got {v!r}")
            agents, i = int(v), i + 2
        elif a == "--config":
            config, i = Path(value(a)), i + 2
        elif a == "--null":
            null, i = True, i + 1
        elif a == "--uncompressed-camera":
            uncompressed, i = True, i + 1
        else:
            i += 1  # -batchmode, -nographics and anything else Unity would accept
    if port is None:
        raise PlayerArgumentError(
            "missing --mlagents-port: this program is started by mlagents-learn "
            "(`mlagents-learn CONFIG --env <this file>`), not by hand"
        )
    return PlayerOptions(port, log_file if log_file not in (None, "-") else None, config, agents, null, uncompressed)


def _setup_logging(log_file: str | None) -> None:
    handler: logging.Handler
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def install_plugin_module(name: str) -> None:
    """Register what a plugin module defines (the product's entry points are not installed here)."""
    import importlib

    from ..behavior.archetypes import Archetype, register_archetype
    from ..behavior.observations import ObservationKind, register_observation

    for value in vars(importlib.import_module(name)).values():
        if isinstance(value, ObservationKind):
            register_observation(value)
        elif isinstance(value, Archetype):
            register_archetype(value)


def load_config(path: Path) -> tuple[list[BehaviorDefinition], int, bool]:
    """(behaviours, agents per behaviour, PNG cameras?) from the build's player.json."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlayerArgumentError(f"player config not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise PlayerArgumentError(f"cannot read player config {path}: {exc}") from None
    for module in data.get("plugins", []):  # the archetypes and observation kinds of plugins, copied into the build
        install_plugin_module(module)
    behaviors = data.get("behaviors") or [data["behavior"]]
    return ([BehaviorDefinition.from_dict(b) for b in behaviors], int(data.get("agents", 16)),
            data.get("camera_compression", "png") == "png")


class Player:
    """The exchange loop over one or more worlds (`behavior.tasks`). Every agent requests a decision every step."""

    def __init__(self, definitions: list[BehaviorDefinition] | BehaviorDefinition, agents: int, null: bool = False,
                 png: bool = True) -> None:
        self.definitions = [definitions] if isinstance(definitions, BehaviorDefinition) else list(definitions)
        self.definition = self.definitions[0]
        self.agents, self.null, self.png = agents, null, png
        self.num_areas = 1
        self.tasks: list[Task] = []
        self.slots: list[tuple[int, int, SlotSpec]] = []  # (task, slot of the task, spec), in message order
        self.encoders: list[SlotEncoder] = []
        self.ids: list[np.ndarray] = []
        self._next_id = 0
        self.exchanges = 0
        self.agent_steps = 0
        self.busy_s = 0.0
        self.environment = EnvironmentState()  # what the trainer set through side channels
        self._errors_logged = 0
        self._parameters_seen = 0

    # ------------------------------------------------------------------ worlds
    def _build(self, seed: int) -> None:
        self.tasks = [make_task(d, self.agents * self.num_areas, seed + 1000 * i, self.null)
                      for i, d in enumerate(self.definitions)]
        # in name order, as ML-Agents lists behaviours: the statistics of episodes that end in one step follow it
        self.slots = sorted(((t, j, spec) for t, task in enumerate(self.tasks) for j, spec in enumerate(task.slots)),
                            key=lambda x: x[2].name)
        names = [spec.name for _, _, spec in self.slots]
        if len(set(names)) != len(names):
            raise PlayerArgumentError(f"two behaviours of this build share a name: {names}")
        self.encoders = [SlotEncoder(spec.name, [(s.name, s.shape) for s in spec.sensors], self.png)
                         for _, _, spec in self.slots]
        self.ids = [np.zeros(spec.agents, np.int64) for _, _, spec in self.slots]
        for task in self.tasks:
            task.set_parameters(self.environment.get if self.environment.floats or self.environment.samplers
                                else None)

    def _new_ids(self, k: int, mask: np.ndarray) -> None:
        n = int(mask.sum())
        self.ids[k][mask] = (np.arange(self._next_id, self._next_id + n) % (2**31 - 1)) + 1
        self._next_id += n

    def _per_slot(self, per_task: list[list]) -> list:
        return [per_task[t][j] for t, j, _ in self.slots]

    def _task_frames(self, frames: list[SlotFrame], t: int) -> list[SlotFrame]:
        """The frames of task `t`, in the task's own slot order."""
        mine = sorted((j, k) for k, (task, j, _) in enumerate(self.slots) if task == t)
        return [frames[k] for _, k in mine]

    def reset_message(self, seed: int, first: bool) -> bytes:
        evaluation_seed = self.environment.get(EVALUATION_SEED, -1.0)
        if evaluation_seed >= 0:  # an evaluator asks for the same episodes after every reset (paired comparisons)
            self._build(int(evaluation_seed))
        elif not self.tasks:
            self._build(seed)
        obs = self._per_slot([task.reset() for task in self.tasks])
        entries = []
        for k, (_, _, spec) in enumerate(self.slots):
            everyone = np.ones(spec.agents, bool)
            self._new_ids(k, everyone)
            zeros = np.zeros(spec.agents, np.float32)
            entries.append((spec.name, self.encoders[k].agent_infos(self.ids[k], zeros, ~everyone, ~everyone,
                                                                     obs[k])))
        brains = [brain_parameters(spec.name, spec.continuous, spec.branches) for _, _, spec in self.slots] \
            if first else None
        return rl_output(entries, brains)

    def step_message(self, actions: dict[str, tuple[list[list[float]], list[list[int]]]]) -> bytes:
        per_task: list[list[tuple[np.ndarray, np.ndarray]]] = [[None] * len(task.slots) for task in self.tasks]
        for t, j, spec in self.slots:
            cont, disc = actions.get(spec.name, ([], []))
            if len(cont) != spec.agents and len(disc) != spec.agents:
                raise RuntimeError(f"trainer sent {max(len(cont), len(disc))} actions for the {spec.agents} agents "
                                   f"of {spec.name}")
            per_task[t][j] = (
                np.asarray(cont, np.float32).reshape(spec.agents, -1) if spec.continuous
                else np.zeros((spec.agents, 0), np.float32),
                np.asarray(disc, np.int64).reshape(spec.agents, -1) if spec.branches
                else np.zeros((spec.agents, 0), np.int64))
        frames = self._per_slot([task.step(per_task[t]) for t, task in enumerate(self.tasks)])
        entries: dict[str, list[bytes]] = {spec.name: [] for _, _, spec in self.slots}
        stats = []
        for k, (_, _, spec) in enumerate(self.slots):
            f = frames[k]
            done = np.flatnonzero(f.done)
            if done.size:
                entries[spec.name] += self.encoders[k].agent_infos(self.ids[k], f.reward, f.done, f.interrupted,
                                                                    f.obs, f.group_id, f.group_reward, done)
                for i in done:  # what the generated C# Agent records when an episode ends, in the agents' order
                    stats += [stat_message(SUCCESS_STAT, float(f.success[i])),
                              stat_message(COLLISION_STAT, float(f.collision[i]))]
                    stats += [stat_message(f"Task/{name}", float(v[i])) for name, v in f.params.items()]
        obs = self._per_slot([task.restart(self._task_frames(frames, t)) for t, task in enumerate(self.tasks)])
        for k, (_, _, spec) in enumerate(self.slots):
            f = frames[k]
            if f.done.any():
                self._new_ids(k, f.done)
            reward = np.where(f.done, 0.0, f.reward)
            group_reward = np.where(f.done, 0.0, f.group_reward)
            no = np.zeros(spec.agents, bool)
            entries[spec.name] += self.encoders[k].agent_infos(self.ids[k], reward, no, no, obs[k], f.group_id,
                                                                group_reward)
            self.agent_steps += spec.agents
        return rl_output(list(entries.items()), side_channel=join_messages(stats))

    def _side_channels(self, payload: bytes) -> None:
        if not payload:
            return
        self.environment.apply(payload)
        for error in self.environment.errors[self._errors_logged:]:
            log.warning("ignored a side-channel message: %s", error)
        self._errors_logged = len(self.environment.errors)
        seen = len(self.environment.floats) + len(self.environment.samplers) + self.environment.updates
        if seen != self._parameters_seen:  # new environment parameters: episodes from now on start with them
            self._parameters_seen = seen
            log.info("environment parameters: %s", self.environment.describe())
            for task in self.tasks:
                task.set_parameters(self.environment.get)

    def run(self, port: int) -> int:
        import grpc  # only available in the trainer environment

        channel = grpc.insecure_channel(
            f"localhost:{port}",
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
        )
        exchange = channel.unary_unary(EXCHANGE)  # no serializers: raw bytes both ways
        name = self.definition.behavior_name
        try:
            reply = parse_trainer_message(exchange(initialization_message(name), wait_for_ready=True, timeout=120))
            if reply.status != STATUS_OK:
                log.error("trainer refused the connection (status %s)", reply.status)
                return 1
            seed = reply.seed if reply.seed is not None else 0
            self.num_areas = max(1, reply.num_areas)
            log.info("connected to trainer on port %d, seed %d, %d agents per behaviour, %d area(s)", port, seed,
                     self.agents, self.num_areas)
            reply = parse_trainer_message(exchange(empty_message()))
            first = True
            while True:
                if reply.status != STATUS_OK or reply.command == CMD_QUIT:
                    log.info("trainer closed the session (status %s)", reply.status)
                    return 0
                t0 = time.perf_counter()
                self._side_channels(reply.side_channel)
                if first or reply.command == CMD_RESET or not reply.has_input:
                    msg = self.reset_message(seed, first)
                    first = False
                else:
                    msg = self.step_message(reply.actions)
                self.busy_s += time.perf_counter() - t0
                self.exchanges += 1
                data = exchange(msg)
                t0 = time.perf_counter()
                reply = parse_trainer_message(data)
                self.busy_s += time.perf_counter() - t0
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            if self.exchanges and code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                log.info("trainer went away (%s); exiting", code)
                return 0
            log.error("could not talk to the trainer on port %d: %s", port, exc)
            return 1
        finally:
            log.info(
                "player stats: exchanges=%d agent_steps=%d busy_s=%.3f", self.exchanges, self.agent_steps,
                self.busy_s,
            )
            channel.close()


def main(argv: list[str] | None = None, default_config: Path | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    default_config = default_config or Path(os.environ.get("UNITY_MLOPS_PLAYER_CONFIG", "player.json"))
    log_file = None
    for i, a in enumerate(argv[:-1]):
        if a.lower() == "-logfile":
            log_file = argv[i + 1] if argv[i + 1] != "-" else None
    _setup_logging(log_file)
    try:
        opts = parse_args(argv, default_config)
        definitions, agents, compressed = load_config(opts.config)
    except PlayerArgumentError as exc:
        log.error("%s", exc)
        print(f"headless player: {exc}", file=sys.stderr)
        return 2
    player = Player(definitions, opts.agents or agents, opts.null, compressed and not opts.uncompressed)
    log.info("headless player for %s", ", ".join(f"{d.behavior_name} ({d.archetype})" for d in definitions))
    return player.run(opts.port)


if __name__ == "__main__":
    sys.exit(main())
