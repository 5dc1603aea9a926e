"""The shape of the code, held by tests: sizes, import cycles, who reads the environment, the trainer-env boundary.

Each rule is checked on the source (AST), so a change that breaks one fails here with the module named.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "src" / "mlops_unity_pipeline"
ROOT = PKG.name
SHARED = {f"{ROOT}.behavior", f"{ROOT}.behavior.definition", f"{ROOT}.behavior.archetypes",
          f"{ROOT}.behavior.simulator", f"{ROOT}.behavior.tasks", f"{ROOT}.behavior.games", f"{ROOT}.behavior.worlds",
          f"{ROOT}.behavior.observations", f"{ROOT}.wire"}  # what both Python environments run


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import of ours, lazy ones included; `if TYPE_CHECKING:`
    blocks excluded (they never run)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: list[tuple[str, bool]] = []

    def walk(nodes: list[ast.stmt], top: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.extend((a.name, top) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
                found.append((base, top))
                found.extend((f"{base}.{a.name}", top) for a in node.names)
            inner = not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and top
            for field in ("body", "orelse", "finalbody", "handlers"):
                sub = getattr(node, field, None)
                if isinstance(sub, list):
                    walk(sub, inner)

    walk(ast.parse(path.read_text()).body, True)
    return [(m, top) for m, top in found if m != name]


def test_no_module_over_400_lines_and_the_orchestrator_reads_as_the_pipeline():
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {n: s for n, s in sizes.items() if s > 400} == {}
    assert sizes[f"{ROOT}.pipeline.orchestrator"] <= 250
    source = MODULES[f"{ROOT}.pipeline.orchestrator"].read_text()
    stages = [source.index(f"def {stage}(self, ctx") for stage in ("generate", "build", "train", "evaluate",
                                                                   "register")]
    assert stages == sorted(stages), "the stages appear in pipeline order"


def test_no_import_cycles_even_through_lazy_imports():
    graph = {name: {m for m, _ in _imports(name) if m in MODULES} for name in MODULES}
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            strongconnect(v)
    assert cycles == []


ENV_READ = re.compile(r"\bos\.environ\b|\bgetenv\s*\(|\benviron\s*\[")


def test_only_the_settings_module_reads_the_environment():
    readers = sorted(name for name, path in MODULES.items() if ENV_READ.search(path.read_text()))
    allowed = {f"{ROOT}.settings", f"{ROOT}.in_trainer_env.player"}  # the player is another program's launch
    assert set(readers) <= allowed, f"read the environment through settings.py instead: {set(readers) - allowed}"


def test_the_trainer_environment_code_imports_only_itself_and_the_shared_modules():
    inside = [name for name in MODULES if name.startswith(f"{ROOT}.in_trainer_env")]
    assert len(inside) >= 4  # player, protocol, launcher, pretrain_bc
    for name in inside + sorted(SHARED):
        ours = {m for m, _ in _imports(name) if m.split(".")[0] == ROOT and m != ROOT}
        outside = {m for m in ours if m in MODULES and not (m.startswith(f"{ROOT}.in_trainer_env") or m in SHARED)}
        assert outside == set(), f"{name} runs in the trainer environment but imports product code {outside}"
        third_party = {m.split(".")[0] for m, _ in _imports(name)} - {ROOT} - set(sys.stdlib_module_names)
        siblings = {"launcher", "frames"}  # scripts there import their neighbours by file
        trainer_env = {"numpy", "torch", "yaml", "grpc", "mlagents", "mlagents_envs", *siblings}
        assert third_party <= trainer_env, (name, third_party)


@pytest.mark.parametrize("module", ["settings", "events", "wire", "trainer.base"])
def test_the_small_interfaces_import_no_heavy_library(module):
    heavy = {"torch", "onnxruntime", "pydantic", "sqlalchemy", "google", "ray", "httpx"}
    used = {m.split(".")[0] for m, top in _imports(f"{ROOT}.{module}") if top}
    assert used & heavy == set()


def test_every_package_is_a_regular_package():
    """A folder of modules without `__init__.py` is left out of a wheel (and of the Docker image)."""
    folders = {p.parent for p in PKG.rglob("*.py")}
    assert sorted(str(f.relative_to(PKG)) for f in folders if not (f / "__init__.py").is_file()) == []


def test_the_command_line_declares_each_common_option_once():
    """--workspace, --registry, --state-dir and --json mean the same everywhere: one declaration (cli/options.py),
    which the commands take as parent parsers."""
    import re

    declared = {}
    for path in sorted((PKG / "cli").glob("*.py")):
        for option in re.findall(r"add_argument\(\s*\"(--workspace|--registry|--state-dir|--json)\"",
                                 path.read_text()):
            declared.setdefault(option, []).append(path.name)
    assert declared and all(files == ["options.py"] for files in declared.values()), declared
