"""Checks command lines written in documentation against the real argparse parsers: every command path exists,
every option is one the command takes, and positional placeholders come in the parser's order."""

from __future__ import annotations

import argparse
import re

PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(\.\.\.)?$")


def _children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {o: a for a in parser._actions for o in a.option_strings}


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]


def _matches(placeholder: str, action: argparse.Action) -> bool:
    word = placeholder.rstrip(".").lower()
    names = {action.dest.lower(), (action.metavar or "").lower()}
    return any(word == n or word in n.split("_") or n in word.split("_") for n in names if n)


def check_line(root: argparse.ArgumentParser, line: str, prog: str = "unity-mlops") -> list[str]:
    """Problems with one synopsis line such as `unity-mlops schedule list | pause ID | trigger CONFIG SCHEDULE_ID`
    (alternatives after the first are sibling commands of the first one's last command)."""
    text = re.split(r" #|\s{3,}", line.strip())[0]  # a comment, or prose after a wide gap
    text = re.sub(r"^(\S*/)?unity-mlops\b", prog, text)
    if not text.startswith(prog + " ") and text != prog:
        return []
    problems: list[str] = []
    alternatives = [a.strip() for a in text[len(prog):].split(" | ")]
    group = root
    for n, alt in enumerate(alternatives):
        tokens = [t for t in re.split(r"\s+", alt.replace("[", " ").replace("]", " ")) if t]
        parser, path = group, []
        while tokens and tokens[0] in _children(parser):
            if n == 0:
                group = parser
            parser = _children(parser)[tokens[0]]
            path.append(tokens.pop(0))
        if n > 0 and not path and tokens:
            problems.append(f"{alt!r}: {tokens[0]!r} is not a command here")
            continue
        if _children(parser) and tokens and not tokens[0].startswith("-"):
            problems.append(f"{' '.join(path)}: {tokens[0]!r} is not one of {sorted(_children(parser))}")
            continue
        options = {**_options(root), **_options(parser)}
        positionals, seen = _positionals(parser), []
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok.startswith("-"):
                name = tok.split("=")[0]
                if name not in options:
                    problems.append(f"{' '.join(path)}: no option {name}")
                elif options[name].nargs != 0 and "=" not in tok:
                    i += 1  # its value
            elif PLACEHOLDER.match(tok):
                seen.append(tok)
            else:
                break  # prose after the synopsis ("... [--out D] evaluation report and changelog")
            i += 1
        if len(seen) > len(positionals) and not any(a.nargs in ("*", "+", argparse.REMAINDER) for a in positionals):
            problems.append(f"{' '.join(path)}: {len(seen)} arguments {seen}, the command takes "
                            f"{[a.dest for a in positionals]}")
            continue
        order = []
        for placeholder in seen:
            index = next((k for k, a in enumerate(positionals) if _matches(placeholder, a)), None)
            if index is not None:
                order.append((index, placeholder))
        if [k for k, _ in order] != sorted(k for k, _ in order):
            problems.append(f"{' '.join(path)}: arguments in the order {[p for _, p in order]}, the command takes "
                            f"{[a.dest for a in positionals]}")
    return problems


def command_lines(markdown: str) -> list[str]:
    """The lines of fenced code blocks (and inline code) that invoke the CLI."""
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", markdown, flags=re.S):
        lines += [ln for ln in block.splitlines() if re.match(r"^\s*(\$ )?(\S*/)?unity-mlops\s", ln)]
    lines += re.findall(r"`((?:\S*/)?unity-mlops [^`]+)`", markdown)
    return [re.sub(r"^\s*\$ ", "", ln) for ln in lines]
