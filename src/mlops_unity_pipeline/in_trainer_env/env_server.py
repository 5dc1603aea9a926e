"""An environment executable (a Unity build or the headless player) behind ML-Agents' own `UnityEnvironment`,
served to the product over stdin/stdout frames (`frames.py`), so the product can play a policy in it.

The policy runs in the product (onnxruntime cannot live beside ML-Agents' protobuf pin); this process only steps
the environment. ML-Agents' Python API is the gRPC server and launches the executable, exactly as `mlagents-learn`
does: same ports, same handshake, same side channels (engine configuration for the time scale, environment
parameters for the evaluation seed, statistics for what an episode meant in the game).

    python env_server.py --exe PLAYER --base-port P --seed S [--time-scale T] [--graphics] [--timeout-wait W]

Requests: {"cmd": "reset", "parameters": {...}}, {"cmd": "step"} with `<b>/continuous` and `<b>/discrete` arrays
for every behaviour index b that had decisions to make, {"cmd": "close"}. Every reply is either {"type": "steps",
...} with the decision and terminal steps of every behaviour and the statistics received since the last reply, or
{"type": "error", "message": ...}.

Runs in the trainer environment: mlagents_envs, numpy and this package's shared modules only.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run as a script: its sibling, nothing else
from frames import FrameError, read_frame, write_frame  # noqa: E402


def _spec(spec) -> dict:
    return {"obs": [list(o.shape) for o in spec.observation_specs],
            "obs_names": [o.name for o in spec.observation_specs],
            "continuous": int(spec.action_spec.continuous_size),
            "branches": [int(b) for b in spec.action_spec.discrete_branches]}


def _steps(env, names: list[str], stats_channel) -> tuple[dict, dict[str, np.ndarray]]:
    arrays: dict[str, np.ndarray] = {}
    counts = {}
    for b, name in enumerate(names):
        decision, terminal = env.get_steps(name)
        for tag, steps in (("d", decision), ("t", terminal)):
            n = len(steps)
            arrays[f"{b}/{tag}/id"] = np.asarray(steps.agent_id, np.int64).reshape(n)
            arrays[f"{b}/{tag}/reward"] = np.asarray(steps.reward, np.float32).reshape(n)
            arrays[f"{b}/{tag}/group"] = np.asarray(steps.group_id, np.int64).reshape(n)
            arrays[f"{b}/{tag}/group_reward"] = np.asarray(steps.group_reward, np.float32).reshape(n)
            for k, obs in enumerate(steps.obs):
                arrays[f"{b}/{tag}/obs{k}"] = np.asarray(obs, np.float32)
        arrays[f"{b}/t/interrupted"] = np.asarray(terminal.interrupted, bool).reshape(len(terminal))
        if decision.action_mask is not None:  # ML-Agents: True = masked
            arrays[f"{b}/d/mask"] = np.concatenate(decision.action_mask, axis=1).astype(bool)
        counts[name] = [len(decision), len(terminal)]
    stats = {k: [[float(v), int(agg.value)] for v, agg in values]
             for k, values in stats_channel.get_and_reset_stats().items()}
    return {"type": "steps", "counts": counts, "stats": stats}, arrays


def serve(args: argparse.Namespace) -> int:
    from mlagents_envs.base_env import ActionTuple
    from mlagents_envs.environment import UnityEnvironment
    from mlagents_envs.side_channel.engine_configuration_channel import EngineConfigurationChannel
    from mlagents_envs.side_channel.environment_parameters_channel import EnvironmentParametersChannel
    from mlagents_envs.side_channel.stats_side_channel import StatsSideChannel

    out = os.fdopen(os.dup(1), "wb")  # frames only on the original stdout; stray prints go to stderr
    os.dup2(2, 1)
    stdin = os.fdopen(os.dup(0), "rb")
    engine, params, stats = EngineConfigurationChannel(), EnvironmentParametersChannel(), StatsSideChannel()
    engine.set_configuration_parameters(time_scale=args.time_scale)
    env = None

    def stop(*_: object) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, stop)
    try:
        env = UnityEnvironment(file_name=args.exe, worker_id=0, base_port=args.base_port, seed=args.seed,
                               no_graphics=not args.graphics, timeout_wait=args.timeout_wait,
                               side_channels=[engine, params, stats], log_folder=args.log_folder,
                               additional_args=args.env_args)
        env.reset()
        names = sorted(env.behavior_specs)
        process = getattr(env, "_process", None)
        write_frame(out, {"type": "ready", "behaviors": {n: _spec(env.behavior_specs[n]) for n in names},
                          "names": names, "player_pid": process.pid if process else None})
        first = True
        while True:
            try:
                request, arrays = read_frame(stdin)
            except FrameError:
                return 0  # the product went away
            cmd = request.get("cmd")
            if cmd == "close":
                return 0
            if cmd == "reset":
                for key, value in (request.get("parameters") or {}).items():
                    params.set_float_parameter(key, float(value))
                if not first or request.get("parameters"):
                    env.reset()  # the ready step already reset once; a seed needs a reset to take effect
                first = False
            elif cmd == "step":
                for b, name in enumerate(names):
                    cont, disc = arrays.get(f"{b}/continuous"), arrays.get(f"{b}/discrete")
                    if cont is None and disc is None:
                        continue
                    env.set_actions(name, ActionTuple(continuous=cont, discrete=disc))
                env.step()
            else:
                write_frame(out, {"type": "error", "message": f"unknown command {cmd!r}"})
                return 2
            header, data = _steps(env, names, stats)
            write_frame(out, header, data)
    except SystemExit:
        raise
    except BaseException as exc:  # everything the environment can raise goes back to the product, in words
        message = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()  # the full story in the server's log
        try:
            write_frame(out, {"type": "error", "message": message, "traceback": traceback.format_exc()[-4000:]})
        except OSError:
            pass
        return 1
    finally:
        if env is not None:
            env.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exe", required=True)
    p.add_argument("--base-port", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-scale", type=float, default=20.0)
    p.add_argument("--timeout-wait", type=int, default=60)
    p.add_argument("--graphics", action="store_true", help="render (camera sensors need it)")
    p.add_argument("--log-folder")
    p.add_argument("--env-args", nargs=argparse.REMAINDER, default=[])
    return serve(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
