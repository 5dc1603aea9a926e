"""The fast trainer: PPO in-process on the vectorized simulator (optional extra: torch)."""
