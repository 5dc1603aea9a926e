"""Offline behavior cloning from `.demo` files with ML-Agents' own policy, BC module and model saver.

Runs in the trainer environment (imports only what exists there). No environment interaction: the policy network
(the same `SimpleActor` PPO builds from the trainer YAML's network settings) is fitted to the demonstrations; its
observation normalizer is set from them. The result is ML-Agents' own artifacts: `<out>/<B>/checkpoint.pt` (which
`mlagents-learn --initialize-from <run>` continues from) and `<out>/<B>.onnx` (the v3 contract, legacy exporter).

    python pretrain_bc.py --config trainer_config.yaml --behavior B --demo PATH --out RESULTS/RUN --updates N
"""

import argparse
import json
import os
import shutil
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--behavior", required=True)
    ap.add_argument("--demo", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from launcher import _force_legacy_onnx_export  # same directory

    _force_legacy_onnx_export()
    import numpy as np
    import torch
    import yaml
    from mlagents.plugins.trainer_type import register_trainer_plugins
    from mlagents.trainers.demo_loader import demo_to_buffer
    from mlagents.trainers.model_saver.torch_model_saver import TorchModelSaver
    from mlagents.trainers.policy.torch_policy import TorchPolicy
    from mlagents.trainers.settings import BehavioralCloningSettings, RunOptions
    from mlagents.trainers.torch_entities.components.bc.module import BCModule
    from mlagents.trainers.torch_entities.networks import SimpleActor

    register_trainer_plugins()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    with open(args.config) as fh:
        options = RunOptions.from_dict(yaml.safe_load(fh))
    settings = options.behaviors[args.behavior]
    spec, buffer = demo_to_buffer(args.demo, 1)
    policy = TorchPolicy(args.seed, spec, settings.network_settings, SimpleActor,
                         {"conditional_sigma": False, "tanh_squash": False})
    if settings.network_settings.normalize:
        policy.actor.update_normalization(buffer)
    hyper = settings.hyperparameters
    bc = BCModule(policy, BehavioralCloningSettings(demo_path=args.demo, steps=0, strength=1.0, samples_per_update=0),
                  policy_learning_rate=float(hyper.learning_rate), default_batch_size=int(hyper.batch_size),
                  default_num_epoch=1)
    losses = []
    t0 = time.time()
    for i in range(args.updates):
        losses.append(float(bc.update()["Losses/Pretraining Loss"]))
        if i % max(1, args.updates // 10) == 0 or i == args.updates - 1:
            print(f"[INFO] BC update {i + 1}/{args.updates}: loss {losses[-1]:.5f} ({time.time() - t0:.1f} s)",
                  flush=True)
    model_dir = os.path.join(args.out, args.behavior)
    saver = TorchModelSaver(settings, model_dir)
    saver.register(policy)
    onnx_path, _ = saver.save_checkpoint(args.behavior, 0)
    shutil.copyfile(onnx_path, os.path.join(args.out, f"{args.behavior}.onnx"))
    with open(os.path.join(args.out, "pretrain_bc.json"), "w") as fh:
        json.dump({"demo": args.demo, "experiences": buffer.num_experiences, "updates": args.updates,
                   "first_loss": losses[0], "final_loss": losses[-1], "seconds": time.time() - t0}, fh, indent=2)
    print(f"[INFO] BC done: {buffer.num_experiences} experiences, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
