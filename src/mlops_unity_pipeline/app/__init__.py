"""The application wiring shared by the command line and the MCP server: which registry, governance, control plane.

One `App` is built from command-line options (or MCP server arguments) and the environment (`settings`), and
hands out the parts; neither front end builds them itself.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import settings
from ..errors import UserError


class App:
    """Options (all optional: the environment and the defaults fill in the rest)."""

    def __init__(self, workspace: str | None = None, registry: str | None = None, **options: Any) -> None:
        self.workspace, self.registry_uri = workspace, registry
        for name in ("bundle", "schemas", "events", "checkpoints", "operator_key", "gates", "reproducibility"):
            setattr(self, name, options.get(name))
        self.operator_pub = list(options.get("operator_pub") or [])

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> App:
        names = ("workspace", "registry", "bundle", "schemas", "events", "checkpoints", "operator_pub",
                 "operator_key", "gates", "reproducibility")
        return cls(**{n: getattr(args, n, None) for n in names})

    @property
    def paths(self) -> settings.Paths:
        return settings.Paths.resolve(self.workspace, self.registry_uri)

    # ------------------------------------------------------------------ registry and governance
    def registry(self):
        """The registry the URI (or path) names, as it is: no remote calls."""
        from ..registry.base import RegistryError
        from ..registry.uri import open_registry

        try:
            return open_registry(self.paths.registry, local_root=self.paths.workspace / settings.REGISTRY_DIRNAME,
                                 database=self.paths.database)
        except RegistryError as exc:
            raise UserError(str(exc)) from None

    def governed_registry(self):
        """The registry governance moves aliases in: with the setup guide's Vertex AI variables set, Vertex AI's
        aliases follow the local ledger."""
        from ..registry.uri import vertex_registry
        from ..specs import VertexSettings

        registry = self.registry()
        vertex = VertexSettings.from_environment()
        if vertex is not None and registry.local_history:
            return vertex_registry(registry, vertex.project, vertex.region, vertex.bucket)
        return registry

    def gate_config(self):
        from ..governance import GateConfig

        gates = GateConfig()
        if self.gates:
            from ..specs import load_document

            try:
                gates = GateConfig.from_dict(load_document(self.gates))
            except (TypeError, ValueError) as exc:
                raise UserError(f"{self.gates}: {exc}") from None
        if self.reproducibility:
            gates.reproducibility = self.reproducibility
        return gates

    def governance(self):
        from ..governance import Governance

        gates = self.gate_config()
        hook = None
        if settings.control_plane_bundle():  # consequential moves go through the control plane
            from ..governance.service import ApprovalHook

            hook = ApprovalHook(self.control_plane())
        retrain = None
        if gates.reproducibility in ("auto", "retrain"):  # training is possible wherever the pipeline runs
            from ..governance.retrain import Retrainer

            retrain = Retrainer(self.paths.workspace)
        return Governance(self.governed_registry(), gates, approval_hook=hook, retrain=retrain,
                          workspace=self.paths.workspace, events=self.bus())

    def bus(self):
        """The event bus governance publishes on: every installed listener, and the webhook outbox when the setup
        guide's WEBHOOK_URL is set (a scheduler's endpoints receive the events its own processes publish)."""
        if getattr(self, "_events", None) is None:
            from ..webhooks import lifecycle_bus

            self._events = lifecycle_bus(self.paths)[0]
        return self._events

    # ------------------------------------------------------------------ control plane
    def control_plane(self):
        from ..controlplane.bundle_schemas import BundleError
        from ..controlplane.keys import KeyFileError, load_private, public_key_text, read_public
        from ..controlplane.runtime import DEFAULT_BUNDLE, ControlPlaneRuntime

        bundle = self.bundle or settings.control_plane_bundle() or DEFAULT_BUNDLE
        rt = ControlPlaneRuntime(bundle, self.schemas, self.events or self.paths.control_events)
        try:
            rt.load_bundle()
            rt.compile_schemas()
        except BundleError as exc:
            raise UserError(str(exc)) from None
        try:
            keys = [read_public(k) for k in self.operator_pub]
            if self.operator_key:
                keys.append(public_key_text(load_private(self.operator_key)))
        except KeyFileError as exc:
            raise UserError(str(exc)) from None
        rt.use_checkpoints(self.checkpoints or settings.checkpoints_path(), keys)
        return rt
