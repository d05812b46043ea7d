"""The command line explains itself: ``qkv`` alone says where to start, every command has a description, ``qkv
train``'s flags are its configs' fields (help, default, type), and building the parser loads no PyTorch."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

import pytest

import qkv
from qkv.cli import train as train_cli
from qkv.cli.from_config import field_docs
from qkv.cli.main import build_parser
from qkv.model.config import FAMILIES, PRESETS, TransformerConfig
from qkv.training.config import TrainConfig

from .conftest import run_cli
from .test_cli_errors import one_line_error


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def help_of(command: str) -> str:
    return subcommands()[command].format_help()


def test_qkv_alone_lists_the_commands_and_says_to_start_with_the_tour() -> None:
    result = run_cli([])
    assert result.code == 0 and "Start with `qkv tour`" in result.out
    assert all(name in result.out for name in subcommands())


@pytest.mark.parametrize("command", list(subcommands()))
def test_every_command_has_a_description(command: str) -> None:
    description = subcommands()[command].description
    assert description and len(description) > 40
    assert "".join(description.split()) in "".join(help_of(command).split())  # argparse refolds it


def test_help_qkv_opens_with_a_map_of_the_package() -> None:
    doc = qkv.__doc__ or ""
    assert doc.startswith("qkv: self-attention made real")
    assert all(f"\n    {layer} " in doc for layer in ("attention", "model", "training", "pretrained", "cli"))


def test_building_the_parser_and_train_help_import_no_torch() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from qkv.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['train', '--help'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)


@pytest.mark.parametrize("flag", train_cli.TRAIN_FLAGS, ids=lambda flag: flag.name)
def test_each_training_flag_is_a_train_config_field_with_its_help_and_default(flag: train_cli.Flag) -> None:
    action = next(a for a in subcommands()["train"]._actions if flag.name in a.option_strings)
    assert action.dest == flag.dest and action.default is None  # left out: the run's value on --resume
    help_text = action.help or ""
    if flag.help is None:
        assert help_text.startswith(field_docs(TrainConfig)[flag.field])
    default = {f.name: f.default for f in dataclasses.fields(TrainConfig)}[flag.field]
    if default is not None:
        shown = {True: "on", False: "off"}.get(default, str(default)) if isinstance(default, bool) else str(default)
        assert help_text.endswith(f"(default: {shown})")


def test_a_literal_field_gives_the_choices_and_a_bool_field_gives_on_and_off() -> None:
    parser = subcommands()["train"]
    precision = next(a for a in parser._actions if "--precision" in a.option_strings)
    assert tuple(precision.choices or ()) == ("auto", "float32", "bfloat16")
    compile_flag = next(a for a in parser._actions if "--compile" in a.option_strings)
    assert compile_flag.option_strings == ["--compile", "--no-compile"]


def test_context_help_is_the_transformer_config_field_doc() -> None:
    assert field_docs(TransformerConfig)["context"] in " ".join(help_of("train").split())


def test_train_help_and_the_encoder_refusal_list_the_same_presets() -> None:
    causal = [name for name, c in {**PRESETS, **FAMILIES}.items() if c.causal]
    assert "bert" not in causal and {"tiny", "small", "medium", "gpt2", "llama"} <= set(causal)
    preset_help = " ".join(
        next(a for a in subcommands()["train"]._actions if "--preset" in a.option_strings).help.split()  # type: ignore[union-attr]
    )
    error = one_line_error(run_cli(["train", "--preset", "bert"]), "train")
    listed = error.rsplit(": ", 1)[1].split(", ")
    assert listed == causal
    assert all(name in preset_help for name in causal) and "bert" not in preset_help


def test_the_flag_names_of_a_config_error_replace_its_field_names() -> None:
    from qkv.cli.from_config import speak_in_flags

    names = {"TrainConfig.learning_rate": "--lr", "SamplingConfig.top_p": "--top-p"}
    assert speak_in_flags("TrainConfig.learning_rate must be positive", names) == "--lr must be positive"
    assert speak_in_flags("SamplingConfig.top_p=2 is not valid", names) == "--top-p 2 is not valid"
    assert speak_in_flags("TrainConfig.beta1 must be in [0, 1)", names) == "TrainConfig.beta1 must be in [0, 1)"
