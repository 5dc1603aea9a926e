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
    from mlagents_envs.communicator_objects.unity_input_pb2 import UnityInputProto
    from mlagents_envs.communicator_objects.agent_action_pb2 import AgentActionProto
    from mlops_unity_pipeline.in_trainer_env.protocol import (AgentInfoEncoder, brain_parameters,
        initialization_message, parse_trainer_message)
    out = {}
    m = UnityMessageProto.FromString(initialization_message("Foo"))
    init = m.unity_output.rl_initialization_output
    out["init"] = [m.header.status, init.name, init.communication_version, init.capabilities.hybridActions,
                   init.capabilities.multiAgentGroups]
    enc = AgentInfoEncoder("Foo", 3)
    obs = np.array([[0.5, -1.25, 3.0]], np.float32).tobytes()
    infos = [enc.agent_info(7, 0.25, True, True, obs), enc.agent_info(8, 0.0, False, False, obs)]
    m = UnityMessageProto.FromString(enc.rl_output(infos, brain_parameters("Foo", 0, (3, 3))))
    agents = m.unity_output.rl_output.agentInfos["Foo"].value
    bp = m.unity_output.rl_initialization_output.brain_parameters[0]
    out["agents"] = [[a.id, a.reward, a.done, a.max_step_reached, list(a.observations[0].shape),
                      list(a.observations[0].float_data.data), a.observations[0].name] for a in agents]
    out["brain"] = [bp.brain_name, bp.is_training, bp.action_spec.num_continuous_actions,
                    list(bp.action_spec.discrete_branch_sizes)]
    reply = UnityMessageProto()
    reply.header.status = 200
    reply.unity_input.rl_initialization_input.seed = 1234
    reply.unity_input.rl_input.command = 0
    reply.unity_input.rl_input.side_channel = b"abc"
    for i in range(2):
        act = AgentActionProto()
        act.continuous_actions.extend([0.5 + i, -0.5])
        act.discrete_actions.extend([i, 2])
        act.vector_actions_deprecated.extend([9.0])
        reply.unity_input.rl_input.agent_actions["Foo"].value.extend([act])
    parsed = parse_trainer_message(reply.SerializeToString(), "Foo")
    out["reply"] = [parsed.status, parsed.seed, parsed.command, parsed.side_channel.decode(),
                    [list(map(float, c)) for c in parsed.continuous], parsed.discrete]
    print(json.dumps(out))
""")


def test_protocol_matches_mlagents_protobuf(trainer_env):
    proc = subprocess.run([str(trainer_env.python), "-c", f"SRC={str(SRC)!r}\n" + CROSSCHECK],
                          capture_output=True, text=True, env=clean_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["init"] == [200, "Foo", "1.5.0", True, True]
    assert out["agents"] == [
        [7, 0.25, True, True, [3], [0.5, -1.25, 3.0], "VectorSensor_size3"],
        [8, 0.0, False, False, [3], [0.5, -1.25, 3.0], "VectorSensor_size3"],
    ]
    assert out["brain"] == ["Foo", True, 0, [3, 3]]
    assert out["reply"] == [200, 1234, 0, "abc", [[0.5, -0.5], [1.5, -0.5]], [[0, 2], [1, 2]]]


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
