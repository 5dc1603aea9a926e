"""Headless player: serves the behavior simulator to `mlagents-learn` exactly as a Unity player build would.

`mlagents-learn --env <build>/<Behavior>` starts it as
``<exe> [-nographics -batchmode] --mlagents-port <port> -logFile <file> [env-args...]``. The trainer is the gRPC
server; we connect as the client, send our capabilities, receive the seed, and then exchange observations for
actions until the trainer says QUIT or goes away. Unknown flags are ignored, like Unity does.

Extra flags (pass them after `--env-args`): ``--agents N`` agents simulated in this process, ``--null`` serve
constant observations (benchmark ceiling), ``--config FILE`` the build's player.json.

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
from ..behavior.simulator import NullSimulator, Simulator
from .protocol import (
    CMD_QUIT,
    CMD_RESET,
    STATUS_OK,
    AgentInfoEncoder,
    brain_parameters,
    empty_message,
    initialization_message,
    parse_trainer_message,
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


def parse_args(argv: list[str], default_config: Path) -> PlayerOptions:
    port = log_file = agents = None
    config, null = default_config, False
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
        else:
            i += 1  # -batchmode, -nographics and anything else Unity would accept
    if port is None:
        raise PlayerArgumentError(
            "missing --mlagents-port: this program is started by mlagents-learn "
            "(`mlagents-learn CONFIG --env <this file>`), not by hand"
        )
    return PlayerOptions(port, log_file if log_file not in (None, "-") else None, config, agents, null)


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


def load_config(path: Path) -> tuple[BehaviorDefinition, int]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlayerArgumentError(f"player config not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise PlayerArgumentError(f"cannot read player config {path}: {exc}") from None
    return BehaviorDefinition.from_dict(data["behavior"]), int(data.get("agents", 16))


class Player:
    """The exchange loop. Every agent requests a decision on every step."""

    def __init__(self, definition: BehaviorDefinition, agents: int, null: bool = False) -> None:
        self.definition = definition
        self.agents = agents
        self.null = null
        self.encoder = AgentInfoEncoder(definition.behavior_name, definition.observation_size)
        self.sim: Simulator | NullSimulator | None = None
        self.ids = np.zeros(agents, np.int64)
        self._next_id = 0
        self.exchanges = 0
        self.agent_steps = 0
        self.busy_s = 0.0
        self.environment = EnvironmentState()  # what the trainer set through side channels
        self._errors_logged = 0

    def _new_ids(self, mask: np.ndarray) -> None:
        k = int(mask.sum())
        self.ids[mask] = (np.arange(self._next_id, self._next_id + k) % (2**31 - 1)) + 1
        self._next_id += k

    def _decision_infos(self, obs: np.ndarray, rewards: np.ndarray) -> list[bytes]:
        raw = np.ascontiguousarray(obs, dtype="<f4").tobytes()
        stride = 4 * obs.shape[1]
        enc = self.encoder.agent_info
        return [
            enc(int(self.ids[i]), float(rewards[i]), False, False, raw[i * stride : (i + 1) * stride])
            for i in range(self.agents)
        ]

    def reset_message(self, seed: int, first: bool) -> bytes:
        cls = NullSimulator if self.null else Simulator
        evaluation_seed = self.environment.get(EVALUATION_SEED, -1.0)
        if evaluation_seed >= 0:  # an evaluator asks for the same episodes after every reset (paired comparisons)
            self.sim = cls(self.definition, self.agents, int(evaluation_seed))
        elif self.sim is None:
            self.sim = cls(self.definition, self.agents, seed)
        obs = self.sim.reset(np.ones(self.agents, bool))
        self._new_ids(np.ones(self.agents, bool))
        infos = self._decision_infos(obs, np.zeros(self.agents, np.float32))
        a = self.definition.action
        brain = brain_parameters(self.definition.behavior_name, a.continuous, a.branches) if first else None
        return self.encoder.rl_output(infos, brain)

    def step_message(self, continuous: list[list[float]], discrete: list[list[int]]) -> bytes:
        assert self.sim is not None
        a = self.definition.action
        n = self.agents
        if a.is_continuous:
            if len(continuous) != n:
                raise RuntimeError(f"trainer sent {len(continuous)} actions for {n} agents")
            actions = np.asarray(continuous, np.float32).reshape(n, -1)
        else:
            if len(discrete) != n:
                raise RuntimeError(f"trainer sent {len(discrete)} actions for {n} agents")
            actions = np.asarray(discrete, np.int64).reshape(n, -1)
        res = self.sim.step(actions)
        infos: list[bytes] = []
        stats = []
        rewards = res.reward
        if res.done.any():
            raw = np.ascontiguousarray(res.obs, dtype="<f4").tobytes()
            stride = 4 * res.obs.shape[1]
            for i in np.flatnonzero(res.done):
                infos.append(
                    self.encoder.agent_info(
                        int(self.ids[i]), float(rewards[i]), True, bool(res.interrupted[i]),
                        raw[i * stride : (i + 1) * stride],
                    )
                )
                # what the generated C# Agent records when an episode ends, in the order of the agents above
                stats += [stat_message(SUCCESS_STAT, float(res.success[i])),
                          stat_message(COLLISION_STAT, float(res.collision[i]))]
            obs = self.sim.reset_done(res.done, res.obs)
            self._new_ids(res.done)
            rewards = np.where(res.done, 0.0, rewards)
        else:
            obs = res.obs
        infos.extend(self._decision_infos(obs, rewards))
        self.agent_steps += n
        return self.encoder.rl_output(infos, side_channel=join_messages(stats))

    def _side_channels(self, payload: bytes) -> None:
        if not payload:
            return
        self.environment.apply(payload)
        for error in self.environment.errors[self._errors_logged:]:
            log.warning("ignored a side-channel message: %s", error)
        self._errors_logged = len(self.environment.errors)

    def run(self, port: int) -> int:
        import grpc  # only available in the trainer environment

        channel = grpc.insecure_channel(
            f"localhost:{port}",
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
        )
        exchange = channel.unary_unary(EXCHANGE)  # no serializers: raw bytes both ways
        name = self.definition.behavior_name
        try:
            reply = parse_trainer_message(
                exchange(initialization_message(name), wait_for_ready=True, timeout=120), name
            )
            if reply.status != STATUS_OK:
                log.error("trainer refused the connection (status %s)", reply.status)
                return 1
            seed = reply.seed if reply.seed is not None else 0
            log.info("connected to trainer on port %d, seed %d, %d agents", port, seed, self.agents)
            reply = parse_trainer_message(exchange(empty_message()), name)
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
                    msg = self.step_message(reply.continuous, reply.discrete)
                self.busy_s += time.perf_counter() - t0
                self.exchanges += 1
                data = exchange(msg)
                t0 = time.perf_counter()
                reply = parse_trainer_message(data, name)
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
        definition, agents = load_config(opts.config)
    except PlayerArgumentError as exc:
        log.error("%s", exc)
        print(f"headless player: {exc}", file=sys.stderr)
        return 2
    player = Player(definition, opts.agents or agents, opts.null)
    log.info("headless player for behavior %s (%s)", definition.behavior_name, definition.archetype)
    return player.run(opts.port)


if __name__ == "__main__":
    sys.exit(main())
