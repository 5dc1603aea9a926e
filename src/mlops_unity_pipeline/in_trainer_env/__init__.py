"""Code that runs inside the trainer environment (the ML-Agents virtualenv), never in the product's process.

`player` (the headless player `mlagents-learn --env` launches, with its `protocol`), `launcher` (`mlagents-learn`
with the legacy ONNX exporter) and `pretrain_bc` (offline behaviour cloning) are started as programs there. They
import only the standard library, numpy, ML-Agents and the two modules both sides share: `behavior` (the
definition and its simulator) and `wire` (the protobuf codec); `tests/test_architecture.py` holds that line.
Importing this package does nothing.
"""
