"""The entry point: every command is reachable through the lazily built parser."""

from __future__ import annotations

import argparse

import pytest

from ledgformer.cli.main import COMMAND_MODULES, COMMANDS, build_parser, main


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_command_map_matches_the_modules() -> None:
    """A command added to a module but not to COMMANDS would vanish from single-command runs."""
    assert _commands(build_parser()) == set(COMMANDS)
    assert set(COMMANDS.values()) == set(COMMAND_MODULES)
    for command in COMMANDS:
        assert command in _commands(build_parser(command))


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in COMMANDS)


def test_unknown_command_lists_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--debug", "predcit", "x"])
    assert exit_info.value.code == 2
    assert "predict" in capsys.readouterr().err
