"""Runs `mlagents-learn` inside the trainer environment with the legacy ONNX exporter.

torch >= 2.9 makes `torch.onnx.export` use the dynamo exporter, which needs `onnxscript` and fails at
ML-Agents' first checkpoint. Wrapping the function here (instead of editing installed files) restores the
exporter ML-Agents was written for; the resulting file is self-contained and passes `onnx.checker`.

Executed by the trainer environment's Python: imports only what exists there.
"""

import sys


def _force_legacy_onnx_export() -> None:
    import functools

    import torch

    original = torch.onnx.export
    if getattr(original, "_unity_mlops_legacy", False):
        return

    @functools.wraps(original)
    def export(*args, **kwargs):
        kwargs.setdefault("dynamo", False)
        return original(*args, **kwargs)

    export._unity_mlops_legacy = True
    torch.onnx.export = export


def main() -> None:
    _force_legacy_onnx_export()
    from mlagents.trainers.learn import main as learn_main

    sys.argv[0] = "mlagents-learn"
    learn_main()


if __name__ == "__main__":
    main()
