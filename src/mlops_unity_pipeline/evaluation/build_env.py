"""Evaluation on an executable that speaks ML-Agents' protocol: the headless player or a team's own Unity build.

The executable is driven by ML-Agents' own `UnityEnvironment`, in an `env_server` process of the trainer
environment (on a port range reserved like training's, with the job's time scale, without graphics unless a policy
has camera inputs); the policy runs here, batched over every environment process. Several processes run at once,
each with its own seed.

Episodes are played in *rounds*: every round resets the environment with an `evaluation_seed` environment parameter
and counts each agent's first episode after the reset. A build that seeds its episode starts from that parameter
(the headless player does; the generated C# Agent shows the two lines) plays the same starts for every policy,
which the first-observation digests prove, so gates can compare policies episode by episode; a build that does not
is compared by two independent samples instead. What an episode meant comes from the statistics the game records
when an episode ends (`Episode/Success`, `Episode/Collision`, or the job's `success_stat`).

Every process is stopped on success, on error and on cancellation (`stop`), the player included.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from ..behavior.definition import COLLISION_STAT, EVALUATION_SEED, SUCCESS_STAT
from .environments import Progress
from .envserver import EnvServer, EvaluationError
from .onnx_policy import PolicySpec
from .outcomes import EpisodeOutcomes, digest_rows
from .policies import Policy, RandomPolicy


def base_name(behavior: str) -> str:
    """`Soccer?team=1` -> `Soccer`."""
    return behavior.split("?", 1)[0]


def team_of(behavior: str) -> int:
    """`Soccer?team=1` -> 1. The policy under evaluation plays team 0; the other teams are its random opponents."""
    _, _, team = behavior.partition("?team=")
    return int(team) if team.isdigit() else 0


class _Episodes:
    """The episodes admitted for counting on one server, for one behaviour, each followed to its end. Admission
    happens when an episode starts (an agent id first seen) and never depends on how it goes, so stopping at a
    quota of starts biases nothing; long episodes are waited for, not cut."""

    def __init__(self, quota: int) -> None:
        self.quota = quota
        self.index: dict[int, int] = {}
        self.digests: list[int] = []
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.ended: list[bool] = []
        self.success: list[bool] = []
        self.collision: list[bool] = []
        self.timeout: list[bool] = []

    def admit(self, ids: np.ndarray, obs: list[np.ndarray]) -> None:
        fresh = [j for j, a in enumerate(ids) if int(a) not in self.index][:max(0, self.quota - len(self.index))]
        if not fresh:
            return
        digests = digest_rows([o[fresh] for o in obs])
        for j, d in zip(fresh, digests, strict=True):
            self.index[int(ids[j])] = len(self.returns)
            self.digests.append(int(d))
            self.returns.append(0.0)
            self.lengths.append(0)
            for column in (self.ended, self.success, self.collision, self.timeout):
                column.append(False)

    @property
    def done(self) -> bool:
        return len(self.index) >= self.quota and all(self.ended)

    def outcomes(self, keys_from: int) -> EpisodeOutcomes:
        n = len(self.returns)
        return EpisodeOutcomes(np.array(self.returns), np.array(self.lengths, np.int64), np.array(self.success),
                               np.array(self.collision), np.array(self.timeout),
                               keys_from + np.arange(n, dtype=np.int64), np.array(self.digests, np.uint64))


class BuildEnvironment:
    """An executable that speaks ML-Agents' protocol, as an evaluation environment."""

    def __init__(self, executable: str | Path, *, kind: str = "unity", digest: str = "", python: Path | None = None,
                 time_scale: float = 20.0, graphics: bool = False, envs: int = 2, timeout_s: float = 60.0,
                 success_stat: str | None = SUCCESS_STAT, collision_stat: str | None = COLLISION_STAT,
                 log_dir: Path | None = None, env_args: list[str] | None = None, max_round_steps: int = 20_000,
                 stop: threading.Event | None = None, root: Path | None = None) -> None:
        self.executable, self.kind, self.digest = Path(executable), kind, digest
        self.root = Path(root) if root else self.executable.parent
        self.python = python
        self.time_scale, self.graphics, self.envs, self.timeout_s = time_scale, graphics, max(1, envs), timeout_s
        self.success_stat, self.collision_stat = success_stat, collision_stat
        self.log_dir = log_dir or Path(self.executable).parent / "evaluation-logs"
        self.env_args = list(env_args or [])
        self.max_round_steps = max_round_steps
        self.stop = stop or threading.Event()
        self._specs: dict[str, PolicySpec] | None = None
        self._servers: list[EnvServer] = []
        self.last_run: dict = {}

    # ------------------------------------------------------------------ interface
    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.executable), "root": str(self.root), "digest": self.digest,
                "envs": self.envs,
                "time_scale": self.time_scale, "graphics": self.graphics, "success_stat": self.success_stat,
                "collision_stat": self.collision_stat, **self.last_run}

    def specs(self) -> dict[str, PolicySpec]:
        if self._specs is None:
            server = self._open(1)[0]
            self._specs = {base_name(n): s for n, s in server.specs.items()}
        return self._specs

    def close(self) -> None:
        """Stop every environment process (and the executables they launched)."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()

    def __enter__(self) -> BuildEnvironment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, policies: dict[str, Policy], episodes: int, seed: int, progress: Progress | None = None,
            paired: bool = False) -> dict[str, EpisodeOutcomes]:
        """`paired`: rounds of each agent's first episode after a seeded reset, the same starts for every policy
        (what the gates compare); else every episode that starts until the quota is reached, each followed to its
        end (faster: nobody waits for the slowest agent of a round). The processes stay up between runs (until
        `close()`): each run reseeds the build, so the next policy pays for no restart."""
        if episodes <= 0:
            raise ValueError("episodes must be > 0")
        t0 = time.perf_counter()
        try:
            servers = self._open(self.envs)
            names = servers[0].names
            self._specs = {base_name(n): s for n, s in servers[0].specs.items()}
            unknown = set(policies) - set(self._specs)
            if unknown:
                raise EvaluationError(f"{self.executable} has no behaviour {sorted(unknown)}; it has "
                                      f"{sorted(self._specs)}")
            acting = {n: policies[base_name(n)] if team_of(n) == 0 and base_name(n) in policies
                      else RandomPolicy(self._specs[base_name(n)], seed + i) for i, n in enumerate(names)}
            collected: dict[str, list[EpisodeOutcomes]] = {b: [] for b in policies}
            steps, rounds, saw_success, saw_collision = 0, 0, False, False
            while min(sum(len(o) for o in collected[b]) for b in policies) < episodes:
                if self.stop.is_set():
                    raise EvaluationError("evaluation cancelled")
                have = min(sum(len(o) for o in collected[b]) for b in policies)
                quota = None if paired else -(-(episodes - have) // len(servers))  # per server
                got, s, succ, coll = self._round(servers, names, acting, policies, seed, rounds, progress,
                                                 episodes, collected, quota)
                for b, parts in got.items():
                    collected[b].extend(parts)
                steps, rounds = steps + s, rounds + 1
                saw_success, saw_collision = saw_success or succ, saw_collision or coll
        except BaseException:
            self.close()  # on error and on cancellation: nothing may outlive the evaluation
            raise
        seconds = time.perf_counter() - t0
        self.last_run = {"paired": paired, "rounds": rounds, "env_steps": steps, "seconds": round(seconds, 3),
                         "steps_per_s": round(steps / max(seconds, 1e-9), 1),
                         "success_stat_seen": saw_success, "collision_stat_seen": saw_collision}
        out = {}
        for b in policies:
            o = EpisodeOutcomes.concat(collected[b]).take(episodes)
            o.has_success, o.has_collision = saw_success, saw_collision
            o.steps, o.seconds = steps, seconds
            out[b] = o
        return out

    # ------------------------------------------------------------------ internals
    def _open(self, count: int) -> list[EnvServer]:
        """At least `count` running processes, started together (each waits for its executable)."""
        missing = range(len(self._servers), count)
        if missing:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(missing)) as pool:
                futures = [pool.submit(self._server, k) for k in missing]
            started = [f.result() for f in futures if f.exception() is None]
            self._servers.extend(started)
            failed = next((f.exception() for f in futures if f.exception() is not None), None)
            if failed is not None:
                self.close()
                raise failed
        return self._servers[:count]

    def _server(self, seed: int) -> EnvServer:
        if self.python is None:
            from ..trainer import environment as trainer_env

            self.python = trainer_env.resolve(None).python
        return EnvServer(self.python, self.executable, seed, time_scale=self.time_scale, graphics=self.graphics,
                         timeout_s=self.timeout_s, log_dir=self.log_dir, env_args=self.env_args)

    def _round(self, servers: list[EnvServer], names: list[str], acting: dict[str, Policy],
               policies: dict[str, Policy], seed: int, index: int, progress: Progress | None, wanted: int,
               collected: dict[str, list[EpisodeOutcomes]], quota: int | None):
        """One round on every server: a reset with a seed, then steps until every admitted episode ended. `quota`
        None admits the agents of the reset only (paired rounds); a number admits new episodes as they start,
        up to it."""
        replies = []
        for k, server in enumerate(servers):
            server.send({"cmd": "reset", "parameters": {EVALUATION_SEED: _round_seed(seed, k, index)}})
        for server in servers:
            replies.append(server.receive())
        tracked: list[dict[str, _Episodes]] = []
        for _, arrays in replies:
            per_name = {}
            for b, n in enumerate(names):
                if base_name(n) in policies and team_of(n) == 0:
                    ids, obs = _ids_obs(arrays, b, "d")
                    per_name[n] = _Episodes(len(ids) if quota is None else quota)
                    per_name[n].admit(ids, obs)
            tracked.append(per_name)
        live = list(range(len(servers)))
        steps, saw_success, saw_collision, turns = 0, False, False, 0
        have = min(sum(len(o) for o in collected[b]) for b in policies)
        while live:
            turns += 1
            if self.stop.is_set():
                raise EvaluationError("evaluation cancelled")
            if turns > self.max_round_steps:
                for k in live:  # agents whose episodes never end: what they have so far, as timeouts
                    for t in tracked[k].values():
                        t.timeout = [to or not e for to, e in zip(t.timeout, t.ended, strict=True)]
                        t.ended = [True] * len(t.ended)
                break
            actions = self._decide(names, acting, live, replies)
            for k in live:
                servers[k].send({"cmd": "step"}, actions[k])
            for k in live:
                replies[k] = servers[k].receive()
                header, arrays = replies[k]
                steps += sum(int(c[0]) for c in header["counts"].values())
                succ, coll = _account(tracked[k], names, header, arrays, self.success_stat, self.collision_stat,
                                      acting, k)
                saw_success, saw_collision = saw_success or succ, saw_collision or coll
                if quota is not None:  # new episodes start: admit them up to the quota
                    for b, n in enumerate(names):
                        if n in tracked[k]:
                            tracked[k][n].admit(*_ids_obs(arrays, b, "d"))
            live = [k for k in live if not all(t.done for t in tracked[k].values())]
            if progress:
                ended = min(sum(sum(t[n].ended) for t in tracked for n in t if base_name(n) == b) for b in policies)
                progress(min(wanted, have + ended), wanted)
        out: dict[str, list[EpisodeOutcomes]] = {b: [] for b in policies}
        for k, per_name in enumerate(tracked):
            for b_index, n in enumerate(names):
                if n in per_name:
                    first = (k << 48) + (index << 24) + (b_index << 16)
                    out[base_name(n)].append(per_name[n].outcomes(first))
        return out, steps, saw_success, saw_collision

    @staticmethod
    def _decide(names: list[str], acting: dict[str, Policy], live: list[int],
                replies: list) -> dict[int, dict[str, np.ndarray]]:
        """One batched policy call per behaviour over every live server's deciding agents."""
        actions: dict[int, dict[str, np.ndarray]] = {k: {} for k in live}
        for b, name in enumerate(names):
            rows = [(k, *_ids_obs(replies[k][1], b, "d"), replies[k][1].get(f"{b}/d/mask")) for k in live]
            rows = [r for r in rows if len(r[1])]
            if not rows:
                continue
            obs = [np.concatenate([r[2][i] for r in rows]) for i in range(len(rows[0][2]))]
            masks = [r[3] for r in rows]
            mask = None if any(m is None for m in masks) else np.concatenate(masks)
            keys = np.concatenate([(np.int64(r[0]) << 40) + r[1] for r in rows])
            out = acting[name].act(obs, mask, keys)
            start = 0
            for k, ids, *_ in rows:
                n = len(ids)
                actions[k][f"{b}/continuous"] = np.ascontiguousarray(out.continuous[start:start + n], np.float32)
                actions[k][f"{b}/discrete"] = np.ascontiguousarray(out.discrete[start:start + n], np.int32)
                start += n
        return actions


def _round_seed(seed: int, server: int, index: int) -> int:
    """Below 2**24: environment parameters travel as float32, which holds integers exactly up to there."""
    return (seed * 7919 + server * 104_729 + index * 15_485_863) % (1 << 24)


def _ids_obs(arrays: dict[str, np.ndarray], b: int, tag: str) -> tuple[np.ndarray, list[np.ndarray]]:
    obs, i = [], 0
    while f"{b}/{tag}/obs{i}" in arrays:
        obs.append(arrays[f"{b}/{tag}/obs{i}"])
        i += 1
    return arrays[f"{b}/{tag}/id"], obs


def _account(tracked: dict[str, _Episodes], names: list[str], header: dict, arrays: dict[str, np.ndarray],
             success_stat: str | None, collision_stat: str | None, acting: dict[str, Policy],
             server: int) -> tuple[bool, bool]:
    """Add a step's rewards to the admitted episodes, end the terminated ones, and attribute the step's statistics
    to the episodes that ended in it, in the order the environment reported them."""
    ended_rows: list[tuple[_Episodes | None, int, float]] = []
    for b, name in enumerate(names):
        t = tracked.get(name)
        for tag in ("d", "t"):
            ids = arrays[f"{b}/{tag}/id"]
            reward = arrays[f"{b}/{tag}/reward"] + arrays[f"{b}/{tag}/group_reward"]
            for j, agent in enumerate(ids):
                i = t.index.get(int(agent)) if t is not None else None
                if i is not None and not t.ended[i]:
                    t.returns[i] += float(reward[j])
                    t.lengths[i] += 1
                    if tag == "t":
                        t.ended[i] = True
                        t.timeout[i] = bool(arrays[f"{b}/t/interrupted"][j])
                if tag == "t":
                    ended_rows.append((t if i is not None else None, -1 if i is None else i, float(reward[j])))
        terminal = arrays[f"{b}/t/id"]
        if len(terminal):
            acting[name].end((np.int64(server) << 40) + terminal)
    stats = header.get("stats") or {}
    seen = []
    for stat, attr in ((success_stat, "success"), (collision_stat, "collision")):
        values = [v for v, _agg in stats.get(stat or "", [])] if stat else []
        seen.append(bool(values))
        if not values or not ended_rows:
            continue
        if len(values) == len(ended_rows):  # one value per ended episode, in the same order
            pairs = zip(ended_rows, values, strict=True)
        else:  # a game that records only the events: the best-rewarded episodes of the step had them
            ranked = sorted(ended_rows, key=lambda r: -r[2])
            pairs = zip(ranked, [1.0] * min(len(ranked), int(round(sum(values)))), strict=False)
        for (t, i, _), value in pairs:
            if t is not None and i >= 0:
                getattr(t, attr)[i] = value > 0.5
    return seen[0], seen[1]
