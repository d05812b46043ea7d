"""qkv's error family: the validation helpers name what is wrong in one line, and what a user can get wrong in the
library is an InputError (the command line prints those as one line, exit status 2), not a bare ValueError."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from qkv.errors import ConfigError, InputError, check_seed, check_text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "caf\udce9",
            r"^the text is not valid UTF-8 text: the byte 0xe9 at character 3 is not UTF-8; give UTF-8 text$",
        ),
        ("a\ud800b", r"^the text is not valid UTF-8 text: it holds the lone surrogate U\+D800 at character 1"),
    ],
    ids=["an undecodable byte", "a lone surrogate"],
)
def test_check_text_names_the_first_character_no_encoder_takes(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_text("the text", text)


def test_check_text_passes_any_unicode_and_raises_the_error_asked_for() -> None:
    check_text("the text", "naïve 🙂 ünïcödé \U0010ffff")
    with pytest.raises(ConfigError):
        check_text("--prompt", "\udcff", ConfigError)


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, True, "3"])
def test_check_seed_takes_only_what_torch_takes(seed: object) -> None:
    with pytest.raises(ConfigError, match=r"^Config.seed must be a whole number from 0 to 2\*\*64 - 1"):
        check_seed("Config.seed", seed)
    check_seed("Config.seed", 0)
    check_seed("Config.seed", 2**64 - 1)


def _calls() -> dict[str, Callable[[], object]]:
    import torch

    from qkv.article.beyond import shuffled_difference, width_spread
    from qkv.article.messages import messages
    from qkv.article.one_head import choose_pair
    from qkv.article.part1_mixing import fixed_ratio_weights
    from qkv.article.part2_keys import normalise
    from qkv.text.corpus import split_train_validation
    from qkv.training.precision import resolve_precision

    return {
        "a mixing ratio outside [0, 1]": lambda: fixed_ratio_weights(3, ratio=2.0),
        "mixing one word": lambda: fixed_ratio_weights(1),
        "a tour language qkv does not speak": lambda: messages("fr"),
        "normalising negative relevances": lambda: normalise(torch.tensor([[1.0, -2.0]])),
        "a width spread of width 0": lambda: width_spread(0, generator=torch.Generator()),
        "a shuffle that is no permutation": lambda: shuffled_difference(lambda x: x, torch.zeros(3, 2), [0, 0, 1]),
        "a validation fraction of 1": lambda: split_train_validation([1, 2, 3], context=1, validation_fraction=1.0),
        "an unknown precision": lambda: resolve_precision("fp8", torch.device("cpu")),
        "a pair of one word": lambda: choose_pair(["dog"], torch.ones(2, 1, 1)),
    }


@pytest.mark.parametrize("case", list(_calls()))
def test_what_a_user_can_get_wrong_is_an_input_error(case: str) -> None:
    with pytest.raises(InputError):
        _calls()[case]()
