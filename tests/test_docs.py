"""The documentation is checked against the code: every command line it shows parses with the real CLI, every code
block is valid, and the reference generated from the code leaves out nothing the code has."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_unity_pipeline.cli import build_parser
from synopsis import check_line, command_lines

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # docs_reference: what the site's reference pages are generated from
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_line_matches_the_parsers(page, tmp_path):
    plugin = None
    if page.name == "extending.md":  # its commands are those of its example plugin: installed, as the page says
        from plugin_package import PluginPackage

        plugin = PluginPackage(tmp_path / "site", "annotate-plugin", {"annotate_plugin": (
            ROOT / "tests" / "thirdparty" / "annotate_plugin.py").read_text()},
            {"unity_mlops.actions": {"annotate": "annotate_plugin:ANNOTATE"}}).install()
    try:
        parser = build_parser()
        problems = {line: check_line(parser, line) for line in command_lines(page.read_text())}
    finally:
        if plugin is not None:
            plugin.uninstall()
    assert {line: p for line, p in problems.items() if p} == {}


@pytest.mark.parametrize("line, words", [
    ("unity-mlops schedule trigger ID CONFIG", "arguments in the order ['ID', 'CONFIG']"),
    ("unity-mlops models promote V --too production", "no option --too"),
    ("unity-mlops modles list", "'modles' is not one of"),
    ("unity-mlops schedule list | pauze CONFIG ID", "'pauze' is not a command here"),
    ("unity-mlops evaluate MODEL SPEC", "2 arguments"),
])
def test_the_checker_finds_what_drifted(line, words):
    """The README once gave `trigger ID CONFIG`; the CLI takes CONFIG first."""
    assert any(words in p for p in check_line(build_parser(), line)), check_line(build_parser(), line)


# ------------------------------------------------------------------------------- every code block is checked
def _blocks(page: Path) -> list[tuple[str, str, int]]:
    """(language, code, line) of each fenced block."""
    out, lang, start, code = [], None, 0, []
    for n, line in enumerate(page.read_text().splitlines(), 1):
        if line.startswith("```"):
            if lang is None:
                lang, start, code = line[3:].strip(), n, []
            else:
                out.append((lang, "\n".join(code), start))
                lang = None
        elif lang is not None:
            code.append(line)
    return out


BLOCKS = [(page, *block) for page in PAGES for block in _blocks(page)]


def _check_yaml(code: str, tmp_path: Path, samples: Path) -> None:
    import yaml

    from mlops_unity_pipeline.scheduler.config import KubernetesConfig
    from mlops_unity_pipeline.specs import load_job

    doc = yaml.safe_load(code)
    if isinstance(doc, dict) and "job_id" in doc:  # a job file: it loads, as `unity-mlops train` would load it
        (tmp_path / "config").mkdir(exist_ok=True)
        for f in (samples / "config").rglob("*.yaml"):  # a job may name a config of ML-Agents' samples
            target = tmp_path / "config" / f.relative_to(samples / "config")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f.read_text())
        job = tmp_path / "job.yaml"
        job.write_text(code)
        load_job(job)
    elif isinstance(doc, dict) and set(doc) == {"kubernetes"}:
        KubernetesConfig.model_validate(doc["kubernetes"])


def _check_csharp(code: str) -> None:
    from mlops_unity_pipeline.generate.csharp_check import _parser, _walk

    tree = _parser().parse(f"class Snippet {{ void Run() {{\n{code}\n}} }}".encode())
    assert not [n for n in _walk(tree.root_node) if n.type == "ERROR" or n.is_missing], code


@pytest.mark.parametrize("page, lang, code, line", BLOCKS,
                         ids=[f"{p.relative_to(ROOT)}:{n}" for p, _, _, n in BLOCKS])
def test_every_code_block_of_the_docs_is_valid(page, lang, code, line, tmp_path, samples):
    """Python compiles, YAML loads (a job file as a job, a kubernetes block as the config's), shell parses,
    C# parses; `text` is output or a synopsis (whose command lines the test above checks)."""
    assert lang in ("python", "yaml", "bash", "json", "toml", "csharp", "text"), f"untagged or unknown block: {lang!r}"
    if lang == "python":
        compile(code, f"{page.name}:{line}", "exec")
    elif lang == "yaml":
        _check_yaml(code, tmp_path, samples)
    elif lang == "bash":
        proc = subprocess.run(["bash", "-n"], input=code, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
    elif lang == "json":
        json.loads(code)
    elif lang == "toml":
        tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ parses TOML")
        tomllib.loads(code)
    elif lang == "csharp":
        _check_csharp(code)


def test_the_block_checks_can_fail(tmp_path, samples):
    with pytest.raises(SyntaxError):
        compile("def broken(:\n", "x", "exec")
    with pytest.raises(Exception, match="max_steps"):
        _check_yaml("job_id: j\nasset_spec: {asset_id: a, name: A}\nrl_config: {max_steps: -1}\n", tmp_path, samples)
    with pytest.raises(AssertionError):
        _check_csharp("Academy.Instance.StatsRecorder.Add(\"x\", 1f;")
    assert subprocess.run(["bash", "-n"], input="if then fi", capture_output=True, text=True).returncode != 0


# ----------------------------------------------------------- the generated reference leaves nothing out
def test_every_environment_variable_settings_reads_is_documented():
    import ast

    from docs_reference import environment_reference

    from mlops_unity_pipeline import settings

    source = Path(settings.__file__).read_text()
    read = {n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and re.fullmatch(r"(UNITY_|MLAGENTS_|WEBHOOK_|GOOGLE_|VERTEX_|CUDA_|OMP_)[A-Z0-9_]+", n.value)}
    documented = {name for group in settings.VARIABLES.values() for name in group}
    assert read - documented == set(), "read by settings.py but not in settings.VARIABLES"
    assert documented - read == set(), "documented but never read"
    page = environment_reference()
    assert [name for name in documented if f"`{name}`" not in page] == []
    assert len(read) >= 34


def test_every_cli_command_and_option_is_in_the_reference():
    from docs_reference import cli_commands, cli_reference

    page = cli_reference()
    commands = cli_commands()
    assert len(commands) >= 40
    for name, parser, _ in commands:
        assert f"## {name}\n" in page, name
        for action in parser._actions:
            for option in action.option_strings:
                assert option in ("-h", "--help") or f"`{option}`" in page, (name, option)


def test_every_config_key_event_mcp_tool_and_exit_code_is_in_the_reference():
    import ast

    from docs_reference import (
        config_keys,
        exit_code_reference,
        mcp_reference,
        mcp_tools,
        schema_reference,
        webhook_reference,
    )

    from mlops_unity_pipeline.cli import EXIT_CODES
    from mlops_unity_pipeline.events import EVENT_CLASSES

    schemas = schema_reference()
    keys = config_keys()
    assert {"TrainingJob", "RLTrainingConfig", "UnityAssetSpec", "Resources", "KubernetesConfig"} <= set(keys)
    missing = {f"{model}.{key}" for model, ks in keys.items() for key in ks if f"| `{key}` |" not in schemas}
    assert missing == set()
    assert "|  |\n" not in schemas, "every key says what it means"
    webhooks = webhook_reference()
    assert EVENT_CLASSES and all(f"## {t}\n" in webhooks for t in EVENT_CLASSES)
    mcp = mcp_reference()
    assert [t["id"] for t in mcp_tools() if f"## `{t['id']}`" not in mcp] == []
    codes = set()
    for path in (ROOT / "src" / "mlops_unity_pipeline" / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant) and \
                    isinstance(node.value.value, int):
                codes.add(node.value.value)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "SystemExit" and node.args and \
                    isinstance(node.args[0], ast.Constant):
                codes.add(node.args[0].value)
    from mlops_unity_pipeline.errors import TrainerEnvError, UserError

    codes |= {UserError.exit_code, TrainerEnvError.exit_code, 4, 130, 141}
    assert codes <= set(EXIT_CODES), codes - set(EXIT_CODES)
    page = exit_code_reference()
    assert all(f"| {c} |" in page for c in EXIT_CODES)
