"""Flags from a config dataclass: the annotation gives the type (``X | None`` as X, a Literal as choices, a bool
as ``--flag``/``--no-flag``), the docstring under the field gives the help, and a flag left out is absent."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

import pytest

from qkv.cli.from_config import Flag, add_config_flags, config_values, field_docs


@dataclass(frozen=True)
class Toy:
    width: int = 8
    """how wide, in cells"""
    rate: float | None = None
    """how fast (none: as fast as it goes)"""
    mode: Literal["fast", "exact"] = "fast"
    """which path"""
    loud: bool = False
    """say more"""
    name: str = "toy"


FLAGS = ("width", Flag("rate", flag="--speed", metavar="R"), "mode", "loud")


def parser() -> argparse.ArgumentParser:
    built = argparse.ArgumentParser(prog="toy")
    add_config_flags(built, Toy, FLAGS)
    return built


def test_the_docstring_under_each_field_is_its_help() -> None:
    assert field_docs(Toy) == {
        "width": "how wide, in cells",
        "rate": "how fast (none: as fast as it goes)",
        "mode": "which path",
        "loud": "say more",
    }


def test_types_choices_and_switches_come_from_the_annotations() -> None:
    args = parser().parse_args(["--width", "3", "--speed", "0.5", "--mode", "exact", "--loud"])
    assert config_values(args, FLAGS) == {"width": 3, "rate": 0.5, "mode": "exact", "loud": True}
    assert config_values(parser().parse_args(["--no-loud"]), FLAGS) == {"loud": False}
    assert config_values(parser().parse_args([]), FLAGS) == {}  # nothing given: nothing overrides the config


def test_a_value_of_the_wrong_type_or_outside_the_choices_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--width", "wide"], ["--mode", "slow"]):
        with pytest.raises(SystemExit):
            parser().parse_args(argv)
    assert "invalid choice: 'slow'" in capsys.readouterr().err


def test_the_help_ends_with_the_default() -> None:
    text = " ".join(parser().format_help().split())
    assert "--width WIDTH how wide, in cells (default: 8)" in text
    assert "--speed R how fast (none: as fast as it goes)" in text and "(default: None)" not in text
    assert "--loud, --no-loud say more (default: off)" in text


def test_a_field_without_a_docstring_cannot_become_a_flag() -> None:
    with pytest.raises(TypeError, match=r"Toy\.name has no docstring"):
        add_config_flags(argparse.ArgumentParser(), Toy, ["name"])
