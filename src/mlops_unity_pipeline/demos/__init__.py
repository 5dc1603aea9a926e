"""Demonstrations: the .demo format, recording from the simulator, offline pretraining."""
