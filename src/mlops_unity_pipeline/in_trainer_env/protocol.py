"""The Unity side of the ML-Agents protocol (communication version 1.5.0), encoded by hand.

Field numbers are those of `communicator_objects/*.proto` in ML-Agents release_21/22. Only the messages a
player sends or receives are implemented. Observations are built with one `tobytes()` per step for all agents,
and the constant parts of each per-agent record are precomputed, so a 64-agent step costs well under a
millisecond.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..wire import (
    FIXED32,
    LEN,
    VARINT,
    bool_field,
    decode_action,
    int_field,
    iter_fields,
    key,
    len_field,
    packed_varints,
    signed32,
    str_field,
    varint,
)

COMMUNICATION_VERSION = "1.5.0"
PACKAGE_VERSION = "3.0.0"
STATUS_OK = 200
CMD_STEP, CMD_RESET, CMD_QUIT = 0, 1, 2

_F32 = struct.Struct("<f")


def _header(status: int = STATUS_OK) -> bytes:
    return len_field(1, int_field(1, status))  # UnityMessageProto.header = HeaderProto{status}


def _capabilities() -> bytes:
    return b"".join(bool_field(i, True) for i in range(1, 8))  # all seven UnityRLCapabilitiesProto flags


def initialization_message(name: str) -> bytes:
    """First message: who we are (UnityRLInitializationOutputProto)."""
    init = (
        str_field(1, name)
        + str_field(2, COMMUNICATION_VERSION)
        + str_field(7, PACKAGE_VERSION)
        + len_field(8, _capabilities())
    )
    return _header() + len_field(2, len_field(2, init))  # unity_output.rl_initialization_output


def empty_message() -> bytes:
    return _header()


def brain_parameters(behavior_name: str, continuous: int, branches: tuple[int, ...]) -> bytes:
    action_spec = (
        int_field(1, continuous) + int_field(2, len(branches)) + packed_varints(3, list(branches))
    )
    legacy = (
        packed_varints(3, [continuous] if continuous else list(branches))
        + int_field(6, 1 if continuous else 0)
    )
    return legacy + str_field(7, behavior_name) + bool_field(8, True) + len_field(9, action_spec)


class AgentInfoEncoder:
    """Builds `UnityRLOutputProto` bytes for one behavior with a single vector observation."""

    def __init__(self, behavior_name: str, obs_size: int) -> None:
        self.behavior_name = behavior_name
        self.obs_size = obs_size
        payload_len = 4 * obs_size
        float_data = key(1, LEN) + varint(payload_len)  # FloatData.data, packed
        obs_prefix = (
            packed_varints(1, [obs_size])  # shape
            + str_field(8, f"VectorSensor_size{obs_size}")  # name
            + key(4, LEN) + varint(len(float_data) + payload_len)  # float_data
            + float_data
        )
        self._obs_prefix = obs_prefix
        self._obs_len = len(obs_prefix) + payload_len
        self._obs_field = key(13, LEN) + varint(self._obs_len)

    def agent_info(self, agent_id: int, reward: float, done: bool, interrupted: bool, obs: bytes) -> bytes:
        body = (
            (key(7, FIXED32) + _F32.pack(reward) if reward else b"")
            + (b"\x40\x01" if done else b"")  # field 8, varint 1
            + (b"\x48\x01" if interrupted else b"")  # field 9, varint 1
            + int_field(10, agent_id)
            + self._obs_field
            + self._obs_prefix
            + obs
        )
        return key(1, LEN) + varint(len(body)) + body  # ListAgentInfoProto.value

    def rl_output(self, infos: list[bytes], brain: bytes | None = None, side_channel: bytes = b"") -> bytes:
        agent_list = b"".join(infos)
        entry = str_field(1, self.behavior_name) + len_field(2, agent_list)  # map entry {key, value}
        rl_output = len_field(2, entry) + (len_field(3, side_channel) if side_channel else b"")
        unity_output = len_field(1, rl_output)
        if brain is not None:  # the first step also declares the brain (UnityRLInitializationOutputProto)
            unity_output += len_field(2, len_field(5, brain))
        return _header() + len_field(2, unity_output)


@dataclass
class TrainerInput:
    """What the trainer sent: handshake parameters, a command and the actions for our behavior."""

    status: int = STATUS_OK
    has_input: bool = False
    seed: int | None = None
    num_areas: int = 1
    command: int = CMD_STEP
    side_channel: bytes = b""
    continuous: list[list[float]] = field(default_factory=list)
    discrete: list[list[int]] = field(default_factory=list)


def _parse_actions(buf: memoryview, out: TrainerInput) -> None:
    cont, disc, legacy = decode_action(buf)
    if not cont and not disc and legacy:  # very old trainers only fill the deprecated field
        cont = legacy
    out.continuous.append(cont)
    out.discrete.append(disc)


def parse_trainer_message(data: bytes, behavior_name: str) -> TrainerInput:
    """Decode a `UnityMessageProto` sent by the trainer."""
    out = TrainerInput()
    for f, _wt, v, _ in iter_fields(data):
        if f == 1:
            for hf, _hwt, hv, _ in iter_fields(v):
                if hf == 1:
                    out.status = hv
        elif f == 3:  # unity_input
            out.has_input = True
            for uf, _uwt, uv, _ in iter_fields(v):
                if uf == 2:  # rl_initialization_input
                    for ff, _fwt, fv, _ in iter_fields(uv):
                        if ff == 1:
                            out.seed = signed32(fv)
                        elif ff == 5:
                            out.num_areas = fv
                elif uf == 1:  # rl_input
                    for rf, _rwt, rv, _ in iter_fields(uv):
                        if rf == 4:
                            out.command = rv
                        elif rf == 5:
                            out.side_channel = bytes(rv)
                        elif rf == 1:  # map entry<string, ListAgentActionProto>
                            name, actions = None, None
                            for ef, _ewt, ev, _ in iter_fields(rv):
                                if ef == 1:
                                    name = bytes(ev).decode("utf-8")
                                elif ef == 2:
                                    actions = ev
                            if name == behavior_name and actions is not None:
                                for af, _awt, av, _ in iter_fields(actions):
                                    if af == 1:
                                        _parse_actions(av, out)
    return out


__all__ = [
    "AgentInfoEncoder",
    "TrainerInput",
    "brain_parameters",
    "empty_message",
    "initialization_message",
    "parse_trainer_message",
    "CMD_QUIT",
    "CMD_RESET",
    "CMD_STEP",
    "STATUS_OK",
    "VARINT",
]
