"""The headless player: its hand-written protocol against ML-Agents' own protobuf classes, and its command line."""

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from mlops_unity_pipeline import wire
from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.build.headless import build_headless_player
from mlops_unity_pipeline.trainer.environment import clean_env

SRC = Path(__file__).resolve().parents[1] / "src"

pytestmark = pytest.mark.trainer


def test_varint_roundtrip():
    for n in (0, 1, 127, 128, 300, 2**31 - 1, 2**63):
        assert wire.read_varint(wire.varint(n), 0)[0] == n
    assert wire.signed32(wire.read_varint(wire.varint(-7), 0)[0]) == -7
    with pytest.raises(wire.WireError, match="offset 0"):
        wire.read_varint(b"\x80", 0)


CROSSCHECK = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, SRC)
    import numpy as np
    from mlagents_envs.communicator_objects.unity_message_pb2 import UnityMessageProto
    from mlagents_envs.communicator_objects.agent_action_pb2 import AgentActionProto
    from mlagents_envs.rpc_utils import _observation_to_np_array
    from mlagents_envs.side_channel.environment_parameters_channel import EnvironmentParametersChannel
    from mlagents_envs.side_channel.engine_configuration_channel import EngineConfigurationChannel
    from mlagents_envs.side_channel.side_channel_manager import SideChannelManager
    from mlagents_envs.side_channel.stats_side_channel import StatsSideChannel
    from mlops_unity_pipeline.in_trainer_env.protocol import (SlotEncoder, brain_parameters,
        initialization_message, parse_trainer_message, rl_output)
    from mlops_unity_pipeline.in_trainer_env.side_channels import EnvironmentState, join_messages, stat_message
    out = {}
    m = UnityMessageProto.FromString(initialization_message("Foo"))
    init = m.unity_output.rl_initialization_output
    out["init"] = [m.header.status, init.name, init.communication_version, init.capabilities.hybridActions,
                   init.capabilities.multiAgentGroups]
    vec = SlotEncoder("Foo?team=0", [("VectorSensor_size3", (3,))])
    obs = [np.array([[0.5, -1.25, 3.0], [1.0, 2.0, 3.0]], np.float32)]
    infos = vec.agent_infos(np.array([7, 8]), np.array([0.25, 0.0]), np.array([True, False]),
                            np.array([True, False]), obs, np.array([3, 0]), np.array([0.5, 0.0]))
    image = (np.arange(3 * 4 * 5).reshape(3, 4, 5) % 256 / 255.0).astype(np.float32)
    cams = {}
    for png in (True, False):
        cam = SlotEncoder("Cam?team=1", [("CameraSensor", (3, 4, 5)), ("VectorSensor_size2", (2,))], png=png)
        cams[png] = cam.agent_infos(np.array([9]), np.zeros(1), np.zeros(1, bool), np.zeros(1, bool),
                                    [image[None], np.ones((1, 2), np.float32)])
    stats = join_messages([stat_message("Episode/Success", 1.0), stat_message("Task/num_obstacles", 3.0)])
    msg = rl_output([("Foo?team=0", infos), ("Cam?team=1", cams[True])],
                    [brain_parameters("Foo?team=0", 0, (3, 3)), brain_parameters("Cam?team=1", 2, (2,))], stats)
    m = UnityMessageProto.FromString(msg)
    agents = m.unity_output.rl_output.agentInfos["Foo?team=0"].value
    out["agents"] = [[a.id, a.reward, a.done, a.max_step_reached, list(a.observations[0].shape),
                      list(a.observations[0].float_data.data), a.observations[0].name, a.group_id, a.group_reward]
                     for a in agents]
    camera = m.unity_output.rl_output.agentInfos["Cam?team=1"].value[0].observations
    out["camera"] = [list(camera[0].shape), camera[0].name, camera[1].name,
                     float(np.abs(_observation_to_np_array(camera[0], (3, 4, 5)) - image).max())]
    raw = UnityMessageProto.FromString(rl_output([("Cam?team=1", cams[False])])).unity_output.rl_output
    out["raw_camera"] = float(np.abs(_observation_to_np_array(
        raw.agentInfos["Cam?team=1"].value[0].observations[0], (3, 4, 5)) - image).max())
    out["brains"] = [[bp.brain_name, bp.is_training, bp.action_spec.num_continuous_actions,
                      list(bp.action_spec.discrete_branch_sizes)]
                     for bp in m.unity_output.rl_initialization_output.brain_parameters]
    channel = StatsSideChannel()
    SideChannelManager([channel]).process_side_channel_message(m.unity_output.rl_output.side_channel)
    out["stats"] = {k: [[v, a.value] for v, a in vals] for k, vals in channel.get_and_reset_stats().items()}
    params, engine = EnvironmentParametersChannel(), EngineConfigurationChannel()
    params.set_float_parameter("num_obstacles", 2.0)
    params.set_uniform_sampler_parameters("goal_distance", 2.0, 4.0, 7)
    engine.set_configuration_parameters(time_scale=12.5)
    payload = bytes(SideChannelManager([params, engine]).generate_side_channel_messages())
    state = EnvironmentState()
    state.apply(payload)
    draws = [state.get("goal_distance", -1.0) for _ in range(50)]
    out["env"] = [state.floats, state.engine.get("time_scale"), min(draws) >= 2.0 and max(draws) <= 4.0,
                  len(set(draws)) > 10, list(state.errors)]
    state.apply(b"\x01\x02garbage")
    out["garbage_errors"] = len(state.errors)
    reply = UnityMessageProto()
    reply.header.status = 200
    reply.unity_input.rl_initialization_input.seed = 1234
    reply.unity_input.rl_initialization_input.num_areas = 3
    reply.unity_input.rl_input.command = 0
    reply.unity_input.rl_input.side_channel = b"abc"
    for i in range(2):
        act = AgentActionProto()
        act.continuous_actions.extend([0.5 + i, -0.5])
        act.discrete_actions.extend([i, 2])
        act.vector_actions_deprecated.extend([9.0])
        reply.unity_input.rl_input.agent_actions["Foo?team=0"].value.extend([act])
    other = AgentActionProto()
    other.continuous_actions.extend([0.25])
    reply.unity_input.rl_input.agent_actions["Cam?team=1"].value.extend([other])
    parsed = parse_trainer_message(reply.SerializeToString())
    out["reply"] = [parsed.status, parsed.seed, parsed.num_areas, parsed.command, parsed.side_channel.decode(),
                    {k: [[list(map(float, c)) for c in v[0]], v[1]] for k, v in parsed.actions.items()}]
    print(json.dumps(out))
""")


def test_protocol_matches_mlagents_protobuf(trainer_env):
    """Several behaviours with teams, vector and camera sensors (PNG and raw), groups, statistics and environment
    parameters: what the hand-written encoder sends is what ML-Agents' own classes and decoders read."""
    proc = subprocess.run([str(trainer_env.python), "-c", f"SRC={str(SRC)!r}\n" + CROSSCHECK],
                          capture_output=True, text=True, env=clean_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["init"] == [200, "Foo", "1.5.0", True, True]
    assert out["agents"] == [
        [7, 0.25, True, True, [3], [0.5, -1.25, 3.0], "VectorSensor_size3", 3, 0.5],
        [8, 0.0, False, False, [3], [1.0, 2.0, 3.0], "VectorSensor_size3", 0, 0.0],
    ]
    assert out["camera"][:3] == [[3, 4, 5], "CameraSensor", "VectorSensor_size2"]
    assert out["camera"][3] < 1 / 255 and out["raw_camera"] < 1e-6  # PNG is 8-bit; raw floats are exact
    assert out["brains"] == [["Foo?team=0", True, 0, [3, 3]], ["Cam?team=1", True, 2, [2]]]
    assert out["stats"] == {"Episode/Success": [[1.0, 0]], "Task/num_obstacles": [[3.0, 0]]}
    assert out["env"] == [{"num_obstacles": 2.0}, 12.5, True, True, []]
    assert out["garbage_errors"] == 1, "a malformed side channel is reported, not raised"
    assert out["reply"] == [200, 1234, 3, 0, "abc", {"Foo?team=0": [[[0.5, -0.5], [1.5, -0.5]], [[0, 2], [1, 2]]],
                                                     "Cam?team=1": [[[0.25]], [[]]]}]


@pytest.fixture
def player(tmp_path, trainer_env):
    d = build_behavior(behavior_name="Runner", description="reach the target")
    return build_headless_player(d, tmp_path / "build" / "Runner", trainer_env.python, agents=4)


def test_player_without_port_fails_clearly_in_its_log(player, tmp_path):
    log = tmp_path / "Player-0.log"
    proc = subprocess.run([str(player), "-batchmode", "-nographics", "-logFile", str(log)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "missing --mlagents-port" in log.read_text()


def test_player_rejects_bad_arguments(player, tmp_path):
    log = tmp_path / "p.log"
    proc = subprocess.run([str(player), "--mlagents-port", "notaport", "-logFile", str(log)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "--mlagents-port must be a TCP port" in log.read_text()
    proc = subprocess.run([str(player), "--mlagents-port", "5999", "--agents", "0", "-logFile", str(log)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--agents must be a positive integer" in log.read_text()


def test_player_build_is_self_contained(player):
    root = player.parent
    assert (root / "player.json").is_file() and (root / "lib" / "mlops_unity_pipeline" / "behavior").is_dir()
    assert not any(s in str(player) for s in (".x86", ".exe", ".app"))
    cfg = json.loads((root / "player.json").read_text())
    assert cfg["agents"] == 4 and cfg["behavior"]["behavior_name"] == "Runner"
    assert [b["behavior_name"] for b in cfg["behaviors"]] == ["Runner"] and cfg["camera_compression"] == "png"
