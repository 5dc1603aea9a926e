"""The headless player: a stand-in for a Unity player build that serves the behavior simulator over the
ML-Agents protocol. Runs inside the trainer environment, so this package imports nothing at import time."""
