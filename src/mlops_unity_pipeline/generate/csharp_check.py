"""Check generated C# with a real C# grammar (tree-sitter), before anything reaches a Unity project.

Checks: zero syntax errors; the `using` directives ML-Agents code needs and none of the renamed inference
namespaces; a class deriving from `Agent` with each required override's exact signature (ML-Agents release_21
`Agent.cs`); and the number of floats `CollectObservations` adds, counted statically, against the spec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

REQUIRED_USINGS = ("Unity.MLAgents", "Unity.MLAgents.Actuators", "Unity.MLAgents.Sensors")
FORBIDDEN_NAMESPACES = ("Unity.Sentis", "Unity.InferenceEngine", "Unity.Barracuda")
REQUIRED_OVERRIDES = {
    "Initialize": "public override void Initialize()",
    "OnEpisodeBegin": "public override void OnEpisodeBegin()",
    "CollectObservations": "public override void CollectObservations(VectorSensor)",
    "OnActionReceived": "public override void OnActionReceived(ActionBuffers)",
    "Heuristic": "public override void Heuristic(in ActionBuffers)",
}
# floats added by one call, by the argument's static type (only what the generator emits is recognised)
_ADD_SIZES = {"AddObservation": 1}


@dataclass
class CSharpReport:
    errors: list[str] = field(default_factory=list)
    class_name: str | None = None
    observation_count: int | None = None
    signatures: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _parser():
    import tree_sitter_c_sharp
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_c_sharp.language()))


def _walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def _text(node) -> str:
    return node.text.decode("utf-8")


def _signature(method) -> tuple[str, str]:
    mods = [_text(c) for c in method.children if c.type == "modifier"]
    name = _text(method.child_by_field_name("name"))
    returns = method.child_by_field_name("returns") or method.child_by_field_name("type")
    params = []
    plist = method.child_by_field_name("parameters")
    for p in (plist.named_children if plist else []):
        if p.type != "parameter":
            continue
        ptype = p.child_by_field_name("type")
        pmods = [_text(c) for c in p.children if c.type in ("modifier", "parameter_modifier")]
        params.append(" ".join([*pmods, _text(ptype) if ptype else "?"]))
    ret = _text(returns) if returns else "?"
    return name, f"{' '.join(mods)} {ret} {name}({', '.join(params)})"


def _loop_multiplier(node) -> int | None:
    """Product of the literal trip counts of the `for` loops around `node` (None if one is not literal)."""
    mult = 1
    parent = node.parent
    while parent is not None and parent.type != "method_declaration":
        if parent.type == "for_statement":
            header = _text(parent).split(")", 1)[0]
            m = re.search(r"=\s*0\s*;\s*\w+\s*<\s*(\d+)\s*;\s*\w+\s*\+\+", header)
            if not m:
                return None
            mult *= int(m.group(1))
        elif parent.type in ("while_statement", "do_statement", "foreach_statement"):
            return None
        parent = parent.parent
    return mult


def _count_observations(method) -> int | None:
    total = 0
    for n in _walk(method):
        if n.type != "invocation_expression":
            continue
        fn = n.child_by_field_name("function")
        if fn is None or fn.type != "member_access_expression":
            continue
        name = _text(fn.child_by_field_name("name"))
        if name == "AddOneHotObservation" or name not in _ADD_SIZES:
            if name.startswith("Add") and "Observation" in name:
                return None
            continue
        mult = _loop_multiplier(n)
        if mult is None:
            return None
        total += _ADD_SIZES[name] * mult
    return total


def _syntax_errors(root) -> list[str]:
    errors = []
    if root.has_error:
        for n in _walk(root):
            if n.type == "ERROR" or n.is_missing:
                line, col = n.start_point
                what = f"missing {n.type}" if n.is_missing else f"unexpected {_text(n)[:40]!r}"
                errors.append(f"syntax error at line {line + 1}, column {col + 1}: {what}")
        errors = errors or ["syntax error"]
    return errors


def check_syntax(source: str) -> list[str]:
    """Syntax errors in any C# file (empty when it parses cleanly)."""
    return _syntax_errors(_parser().parse(source.encode("utf-8")).root_node)


def check_agent_source(source: str, expected_observations: int | None = None) -> CSharpReport:
    report = CSharpReport()
    root = _parser().parse(source.encode("utf-8")).root_node
    report.errors = _syntax_errors(root)
    if report.errors:
        return report
    usings = {_text(n.child_by_field_name("name") or n.named_children[-1]) for n in _walk(root)
              if n.type == "using_directive"}
    for ns in REQUIRED_USINGS:
        if ns not in usings:
            report.errors.append(f"missing `using {ns};`")
    for n in _walk(root):
        if n.type in ("qualified_name", "identifier") and any(_text(n).startswith(f) for f in FORBIDDEN_NAMESPACES):
            report.errors.append(f"references {_text(n)}, which ML-Agents 4.0 renamed; do not use it")
            break
    agent_class = None
    for n in _walk(root):
        if n.type == "class_declaration":
            bases = next((c for c in n.children if c.type == "base_list"), None)
            if bases is not None and any(_text(b) in ("Agent", "Unity.MLAgents.Agent") for b in bases.named_children):
                agent_class = n
                break
    if agent_class is None:
        report.errors.append("no class derives from Unity.MLAgents.Agent")
        return report
    report.class_name = _text(agent_class.child_by_field_name("name"))
    methods = {}
    for n in _walk(agent_class):
        if n.type == "method_declaration":
            name, sig = _signature(n)
            methods[name] = n
            report.signatures[name] = sig
    for name, expected in REQUIRED_OVERRIDES.items():
        got = report.signatures.get(name)
        if got is None:
            report.errors.append(f"missing override: {expected}")
        elif got != expected:
            report.errors.append(f"wrong signature: `{got}`, expected `{expected}`")
    if "CollectObservations" in methods:
        report.observation_count = _count_observations(methods["CollectObservations"])
        if expected_observations is not None:
            if report.observation_count is None:
                report.errors.append("cannot count the observations CollectObservations adds")
            elif report.observation_count != expected_observations:
                report.errors.append(f"CollectObservations adds {report.observation_count} floats, the spec "
                                     f"declares {expected_observations}")
    return report
