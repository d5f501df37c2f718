"""Every command (and every option) has help text and is documented in docs/cli.md."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from keeldb.cli import build_parser, main

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return dict(actions[0].choices)


def _sections() -> dict[str, str]:
    text = DOCS.read_text(encoding="utf-8")
    parts = re.split(r"^## keeldb (\S+)\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_the_expected_commands_exist() -> None:
    assert set(_subcommands()) == {
        "serve",
        "import",
        "export",
        "info",
        "stats",
        "text-search",
        "hybrid-search",
        "search",
        "check",
        "compact",
        "backup",
        "restore",
        "repair",
    }


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_command_has_help_and_a_docs_section(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    sub = _subcommands()[name]
    choice_help = {
        c.dest: c.help
        for a in parser._actions
        if isinstance(a, argparse._SubParsersAction)
        for c in a._choices_actions
    }
    assert choice_help.get(name), f"`keeldb {name}` has no one-line help"
    assert sub.description, f"`keeldb {name}` has no description"
    for action in sub._actions:
        if action.dest != "help":
            assert action.help, (
                f"`keeldb {name}`: {action.option_strings or action.dest} has no help"
            )
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    assert f"usage: keeldb {name}" in capsys.readouterr().out
    sections = _sections()
    assert name in sections, f"docs/cli.md has no '## keeldb {name}' section"
    for action in sub._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                assert f"`{option}" in sections[name], f"docs/cli.md: {name} lacks {option}"


def test_docs_describe_no_command_that_does_not_exist() -> None:
    assert set(_sections()) <= set(_subcommands())
