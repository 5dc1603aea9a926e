"""Loading a control-plane bundle, fail closed: its actions, the JSON Schemas of their inputs, its workflow.

Load time refuses (naming the bundle and the fix): an action without a schema, an invalid schema, a `$ref` that
does not resolve locally (nothing is fetched), an unknown `$schema` dialect, a root that is not an object, an
unknown requirement name, a destructive action without a human-approval requirement, and a transition that is
unguarded or unreachable. `ControlPlaneRuntime` is this plus the event log, facts, approvals and gates.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable

from .eventlog import canonical

APPROVAL = "human_approval"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
MAX_REJECTED_CHARS = 300  # how much of a rejected input's error the log keeps (with the input's hash and size)


class BundleError(Exception):
    """The bundle is not safe to run; the message names the file and the fix."""


def _values_of(node: Any, keyword: str):
    """Every string value of `keyword` anywhere in a schema ($ref, format ...)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == keyword and isinstance(v, str):
                yield v
            else:
                yield from _values_of(v, keyword)
    elif isinstance(node, list):
        for v in node:
            yield from _values_of(v, keyword)


def _refs(node: Any):
    return _values_of(node, "$ref")


def _formats(node: Any):
    return _values_of(node, "format")


def _refuse(uri: str) -> Resource:
    raise NoSuchResource(uri)


class UnknownAction(KeyError):
    def __str__(self) -> str:
        return f"unknown action id {self.args[0]!r}"


def _installed_schema(action_id: str) -> dict[str, Any] | None:
    """The input schema of an installed action (the `unity_mlops.actions` plugins), for a bundle that lists it
    without a schema file of its own."""
    from .. import plugins

    try:
        found = [a for a in plugins.load_all("actions").values() if a.id == action_id]
    except plugins.PluginError:
        return None
    return dict(found[0].schema) if found else None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_REJECTED_CHARS else f"{text[:MAX_REJECTED_CHARS]}... ({len(text)} chars)"


def _non_finite(node: Any, path: str = "$") -> list[str]:
    """JSON Schema compares NaN as neither too small nor too large: refuse non-finite numbers explicitly."""
    if isinstance(node, float) and not math.isfinite(node):
        return [f"{path}: {node!r} is not a finite number"]
    if isinstance(node, dict):
        return [e for k, v in node.items() for e in _non_finite(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [e for i, v in enumerate(node) for e in _non_finite(v, f"{path}[{i}]")]
    return []


def _spec():
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


class BundleSchemas:
    bundle_path: Path
    schemas_dir: Path
    bundle: dict[str, Any]
    actions: dict[str, dict[str, Any]]
    schemas: dict[str, dict[str, Any]]
    validators: dict[str, Draft202012Validator]
    bundle_digest: str

    # ------------------------------------------------------------------ loading (fail closed)
    def _fail(self, problem: str, fix: str) -> None:
        raise BundleError(f"{self.bundle_path}: {problem}\n  fix: {fix}")

    def load_bundle(self) -> dict[str, Any]:
        try:
            bundle = yaml.safe_load(self.bundle_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise BundleError(f"{self.bundle_path}: cannot read the bundle: {exc}") from None
        except yaml.YAMLError as exc:
            raise BundleError(f"{self.bundle_path}: not valid YAML: {exc}") from None
        if not isinstance(bundle, dict):
            self._fail("the bundle must be a mapping", "see the shipped default bundle")
        self.bundle = bundle
        self.actions = {}
        for tool in (bundle.get("api_surface") or {}).get("tools") or []:
            for action in tool.get("actions") or []:
                aid = action.get("id")
                if not aid or not isinstance(aid, str):
                    self._fail(f"an action of tool {tool.get('name')!r} has no id", "give every action an `id`")
                if aid in self.actions:
                    self._fail(f"duplicate action id {aid!r}", "action ids must be unique")
                self.actions[aid] = {**action, "tool": tool.get("name")}
        if not self.actions:
            self._fail("no actions under api_surface.tools[].actions[]", "declare the actions the plane exposes")
        self._lint_workflow()
        return bundle

    def enumerate_action_ids(self, bundle: dict[str, Any] | None = None) -> list[str]:
        if bundle is not None and bundle is not self.bundle:
            self.bundle = bundle
        return sorted(self.actions)

    def _facts_declared(self) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in self.bundle.get("facts") or []}

    def _transitions(self) -> list[dict[str, Any]]:
        return list((self.bundle.get("workflow") or {}).get("transitions") or [])

    def _lint_workflow(self) -> None:
        facts = self._facts_declared()
        for f in facts.values():
            if not f.get("established_by"):
                self._fail(f"fact {f['name']!r} has no `established_by` event types", "name the events that set it")
        workflow = self.bundle.get("workflow") or {}
        states = set(workflow.get("states") or [])
        initial = workflow.get("initial")
        transitions = self._transitions()
        if transitions and initial not in states:
            self._fail(f"workflow.initial {initial!r} is not one of workflow.states", "set `initial` to a state")
        for g in self.bundle.get("guardrails") or []:
            if g.get("fact") not in facts:
                self._fail(f"guardrail {g.get('id')!r} uses unknown fact {g.get('fact')!r}",
                           f"declare it under `facts` (known: {', '.join(sorted(facts)) or 'none'})")
        reachable, frontier = {initial}, [initial]
        while frontier:
            state = frontier.pop()
            for t in transitions:
                sources = t.get("from") if isinstance(t.get("from"), list) else [t.get("from")]
                if state in sources and t.get("to") not in reachable:
                    reachable.add(t.get("to"))
                    frontier.append(t.get("to"))
        for t in transitions:
            tid = t.get("id")
            requires = t.get("requires") or []
            if not requires:
                self._fail(f"transition {tid!r} is unguarded (empty `requires`)",
                           "list the facts (or human_approval) it needs")
            for r in requires:
                if r != APPROVAL and r not in facts:
                    self._fail(f"transition {tid!r} requires unknown {r!r}",
                               f"use a declared fact or {APPROVAL} (declared: {', '.join(sorted(facts)) or 'none'})")
            if t.get("action") not in self.actions:
                self._fail(f"transition {tid!r} names unknown action {t.get('action')!r}", "use an action id")
            sources = t.get("from") if isinstance(t.get("from"), list) else [t.get("from")]
            if t.get("to") not in states or any(s not in states for s in sources):
                self._fail(f"transition {tid!r} uses states outside workflow.states", "declare them")
            if not any(s in reachable for s in sources):
                self._fail(f"transition {tid!r} is unreachable from {initial!r}", "connect it or remove it")
        for aid, action in self.actions.items():
            ann = action.get("annotations") or {}
            destructive = not ann.get("readOnlyHint", False) and ann.get("destructiveHint", True)
            if destructive:
                mine = [t for t in transitions if t.get("action") == aid]
                if not mine or any(APPROVAL not in (t.get("requires") or []) for t in mine):
                    self._fail(f"destructive action {aid!r} can run without human approval",
                               f"give every transition of {aid!r} `requires: [{APPROVAL}, ...]`, or mark it "
                               "`destructiveHint: false` / `readOnlyHint: true` if it is not destructive")

    def compile_schemas(self) -> None:
        if not self.actions:
            self.load_bundle()
        docs: dict[str, dict[str, Any]] = {}
        if not self.schemas_dir.is_dir():
            self._fail(f"schemas directory {self.schemas_dir} does not exist", "create schemas/<action_id>.json")
        for path in sorted(self.schemas_dir.glob("*.json")):
            try:
                docs[path.stem] = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                self._fail(f"schema {path.name} is not valid JSON: {exc}", f"fix {path}")
        for aid in self.actions:
            if aid not in docs and self.actions[aid].get("schema") == "installed":  # the operator's explicit
                docs[aid] = _installed_schema(aid)  # choice: the installed package's action brings its schema
                if docs[aid] is None:
                    self._fail(f"action {aid!r} takes its schema from its installed package, but no installed "
                               "package has it", "install it (`unity-mlops plugins --family actions` lists them)")
            if aid not in docs:
                self._fail(f"action {aid!r} has no schema", f"add {self.schemas_dir / (aid + '.json')}, or say "
                                                            "`schema: installed` to use its installed package's")
        resources = [(d["$id"], Resource.from_contents(d, default_specification=_spec())) for d in docs.values()
                     if isinstance(d, dict) and "$id" in d]
        registry = Registry(retrieve=_refuse).with_resources(resources)
        self.schemas, self.validators = {}, {}
        for aid in self.actions:
            schema = docs[aid]
            dialect = schema.get("$schema", DIALECT)
            if dialect != DIALECT:
                self._fail(f"schema for {aid!r} uses dialect {dialect!r}", f"use {DIALECT}")
            if schema.get("type") != "object":
                self._fail(f"schema for {aid!r} must have `type: object` at its root", "tool inputs are objects")
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                self._fail(f"schema for {aid!r} is invalid: {exc.message}", f"fix {aid}.json")
            checkable = Draft202012Validator.FORMAT_CHECKER.checkers
            for fmt in _formats(schema):
                if fmt not in checkable:  # jsonschema silently skips formats it cannot check: refuse instead
                    self._fail(f"schema for {aid!r} uses format {fmt!r}, which cannot be checked here",
                               "install its checker (jsonschema's format extras), or drop the format")
            base = schema.get("$id", f"urn:unity-mlops:action:{aid}")
            local = registry.with_resource(base, Resource.from_contents(schema, default_specification=_spec()))
            resolver = local.resolver(base_uri=base)
            for ref in _refs(schema):
                try:
                    resolver.lookup(ref)
                except (Unresolvable, NoSuchResource):
                    self._fail(f"schema for {aid!r} has a $ref {ref!r} that does not resolve locally (nothing is "
                               "fetched from the network)", "define it under $defs or in a local schema with that $id")
            self.schemas[aid] = schema
            self.validators[aid] = Draft202012Validator(schema, registry=local,
                                                        format_checker=Draft202012Validator.FORMAT_CHECKER)
        digest = hashlib.sha256(canonical(self.bundle))
        for aid in sorted(self.schemas):
            digest.update(canonical(self.schemas[aid]))
        self.bundle_digest = digest.hexdigest()

    def generate_mcp_stub_tools(self, action_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """MCP tool descriptors with the real input schemas (referenced schemas bundled into `$defs`)."""
        if not self.schemas:
            self.compile_schemas()
        tools = []
        for aid in action_ids or self.enumerate_action_ids():
            if aid not in self.actions:
                raise UnknownAction(aid)
            action = self.actions[aid]
            ann = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True,
                   **(action.get("annotations") or {})}
            tools.append({"name": aid, "description": action.get("description", f"Control-plane action {aid}"),
                          "inputSchema": self.published_schema(aid), "annotations": ann})
        return tools

    def published_schema(self, aid: str) -> dict[str, Any]:
        schema = dict(self.schemas[aid])
        defs = dict(schema.get("$defs") or {})
        wanted = {ref.split("#", 1)[0] for ref in _refs(schema) if not ref.startswith("#")}
        for uri in sorted(wanted):  # 2020-12 bundling: embedded resources keep their $id, so clients resolve them
            doc = next((d for d in self._resource_docs() if d.get("$id") == uri), None)
            if doc is not None:
                defs.setdefault(uri.rsplit(":", 1)[-1], doc)
        if defs:
            schema["$defs"] = defs
        return schema

    def _resource_docs(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(self.schemas_dir.glob("*.json"))]

    # ------------------------------------------------------------------ validation
    def validate_tool_input(self, action_id: str, payload: Any) -> list[str]:
        """Errors as 'JSON path: message' (empty when valid). Unknown ids raise `UnknownAction`."""
        if not self.validators:
            self.compile_schemas()
        if action_id not in self.validators:
            raise UnknownAction(action_id)
        errors = [_clip(f"{e.json_path}: {e.message}") for e in
                  sorted(self.validators[action_id].iter_errors(payload), key=lambda e: list(e.path))]
        return errors + _non_finite(payload)

