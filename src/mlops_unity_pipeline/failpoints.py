"""Named points where a chaos test can freeze the process so that it is killed exactly there.

`UNITY_MLOPS_FAILPOINT=<name>` makes the process write `<name> <pid>` to `UNITY_MLOPS_FAILPOINT_FILE` on reaching
that point and then wait there forever (for the kill). Unset, a failpoint is one dictionary lookup. The windows
they expose are real but short (a registry commit and the next state write are milliseconds apart), which is why
`bench/chaos.py` uses them instead of hoping a random kill lands there.

Points: `generate`, `build`, `checkpointed` (a training checkpoint is in the shared artifact store), `trained`
(after the stage), `registered` (registry commit done, job state not yet moved),
`finished` (the job's result and state written, the scheduler's run record not yet updated).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from . import settings

POINTS = ("generate", "build", "checkpointed", "trained", "registered", "finished")


def failpoint(name: str) -> None:
    point, marker = settings.failpoint()
    if point != name:
        return
    if marker:
        tmp = Path(f"{marker}.tmp")
        tmp.write_text(f"{name} {os.getpid()}\n")
        os.replace(tmp, marker)
    while True:  # frozen here until killed
        time.sleep(3600)
