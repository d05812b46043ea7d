"""A config's size is known before its model is built: the tensors, the parameter count and the memory, and a
model that cannot fit is refused in one line before anything is allocated."""

from __future__ import annotations

import threading

import pytest
import torch

from qkv.attention.positions import POSITION_SCHEMES
from qkv.errors import InputError, ShapeError, TooLargeError
from qkv.model import FAMILIES, PRESETS, Transformer, TransformerConfig, preset
from qkv.model import memory as memory_module
from qkv.model.memory import available_bytes, check_memory, describe_bytes

CONFIGS = [
    *(preset(name, vocab_size=50, layers=2) for name in [*PRESETS, *FAMILIES]),
    *(preset("tiny", positions=p, vocab_size=11) for p in POSITION_SCHEMES),
    preset("llama", layers=2, kv_heads=2, vocab_size=30, width=64, heads=4, head_width=8, mlp_width=40),
    preset("gpt2", layers=1, vocab_size=30, lm_head=False, tie_embeddings=False, final_norm=False),
    preset("bert", layers=1, vocab_size=30, norm_bias=False, token_types=3, attention_bias=False),
    preset("tiny", vocab_size=30, norm="rmsnorm", activation="swiglu", mlp_bias=False, tie_embeddings=False),
]


@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
def test_parameter_shapes_are_the_state_dict_of_the_built_model(config: TransformerConfig) -> None:
    model = Transformer(config)
    assert config.parameter_shapes() == {name: tuple(t.shape) for name, t in model.state_dict().items()}


@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
def test_parameter_count_is_the_number_of_distinct_parameters(config: TransformerConfig) -> None:
    model = Transformer(config)
    assert config.parameter_count() == sum(p.numel() for p in model.parameters())  # a tied head counted once


def test_the_size_of_an_absurd_config_costs_nothing_to_know() -> None:
    config = TransformerConfig(layers=10**9, width=10**9, heads=1, vocab_size=10**6)  # a walk over it would hang
    assert config.parameter_count() > 10**27 and config.estimated_bytes() > 4 * 10**27


@pytest.mark.parametrize(
    "fields",
    [{"layers": 100_000}, {"width": 10**9 // 4 * 4, "heads": 4}, {"vocab_size": 10**12}, {"context": 10**12}],
    ids=["100k layers", "width 1e9", "vocab 1e12", "context 1e12"],
)
def test_a_model_too_large_for_the_machine_is_refused_in_one_line_before_allocating(fields: dict[str, int]) -> None:
    config = TransformerConfig(**fields)  # type: ignore[arg-type]
    with pytest.raises(
        TooLargeError, match=r"^a model of [\d,]+ parameters .* needs about .* but only .* is free"
    ) as e:
        Transformer(config)
    assert "\n" not in str(e.value) and isinstance(e.value, InputError)


def test_the_memory_check_compares_the_estimate_with_what_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    config = preset("tiny", vocab_size=40)
    needed = config.estimated_bytes()
    monkeypatch.setattr(memory_module, "available_bytes", lambda device=None: int(needed / memory_module.HEADROOM))
    Transformer(config)  # just fits
    monkeypatch.setattr(memory_module, "available_bytes", lambda device=None: needed)
    with pytest.raises(TooLargeError, match=rf"needs about {describe_bytes(needed)}"):
        Transformer(config)
    monkeypatch.setattr(memory_module, "available_bytes", lambda device=None: None)  # unknown: nothing refused
    Transformer(config)


def test_the_estimate_covers_what_building_a_model_takes() -> None:
    config = preset("small", vocab_size=100)
    assert config.estimated_bytes() >= 4 * config.parameter_count()
    assert config.estimated_bytes(2) < config.estimated_bytes(4)


def test_available_memory_is_a_plausible_number_of_bytes() -> None:
    free = available_bytes("cpu")
    assert free is None or 10**6 < free < 10**15
    assert available_bytes("meta") is None


def test_check_memory_names_what_and_the_fix() -> None:
    with pytest.raises(TooLargeError, match=r"^a batch of 10 needs about 1,000.0 TB .*; use a smaller batch$"):
        check_memory(10**15, "a batch of 10", "use a smaller batch", device="cpu")


def test_initialise_false_skips_the_random_fill_and_leaves_every_parameter_in_place() -> None:
    config = preset("tiny", vocab_size=40)
    torch.manual_seed(0)
    Transformer(config, initialise=False)
    after_skip = torch.rand(1)
    torch.manual_seed(0)
    after_nothing = torch.rand(1)
    assert torch.equal(after_skip, after_nothing)  # no random numbers were drawn
    model = Transformer(config, initialise=False)
    assert {name for name, _ in model.named_parameters()} == {
        name for name, _ in Transformer(config).named_parameters()
    }


def test_skipping_the_initialisation_in_one_thread_leaves_another_threads_models_initialised() -> None:
    config = preset("tiny", vocab_size=40, layers=1)
    inside, done = threading.Event(), threading.Event()
    built: list[Transformer] = []

    def other() -> None:
        inside.wait()
        torch.manual_seed(1)
        built.append(Transformer(config))
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    from qkv.model.transformer import _SkipRandomInitialisation

    with _SkipRandomInitialisation():
        inside.set()
        assert done.wait(60)
    thread.join()
    torch.manual_seed(1)
    reference = Transformer(config)
    for (name, ours), (_, theirs) in zip(built[0].state_dict().items(), reference.state_dict().items(), strict=True):
        assert torch.equal(ours, theirs), name


def test_a_token_id_outside_the_vocabulary_is_one_line_naming_it_and_the_vocabulary() -> None:
    model = Transformer(TransformerConfig(vocab_size=13, context=8, width=16, heads=2, layers=1))
    with pytest.raises(InputError, match=r"^token id 13 at \(1, 2\) is out of range: the model has 13 token ids, 0…12"):
        model(torch.tensor([[1, 2, 3], [4, 5, 13]]))
    with pytest.raises(InputError, match=r"^token id -1 at \(0, 0\) is out of range"):
        model(torch.tensor([[-1, 2]]))
    with pytest.raises(ShapeError, match=r"token ids must be an int64 \(or int32\) tensor, got torch.float32"):
        model(torch.tensor([[1.0, 2.0]]))
    assert model(torch.tensor([[0, 12]], dtype=torch.int32)).shape == (1, 2, 13)


def test_a_token_type_outside_the_models_types_is_refused() -> None:
    model = Transformer(preset("bert", layers=1, vocab_size=30, width=16, heads=2))
    with pytest.raises(InputError, match=r"^token type 2 at \(0, 1\) is out of range: the model has 2 token types"):
        model(torch.tensor([[1, 2]]), token_types=torch.tensor([[0, 2]]))


def test_a_cached_decoding_step_checks_its_token_too() -> None:
    model = Transformer(TransformerConfig(vocab_size=13, context=8, width=16, heads=2, layers=1)).eval()
    cache = model.new_cache(1)
    model(torch.tensor([[1, 2]]), cache=cache)
    with pytest.raises(InputError, match=r"token id 99 at \(0, 0\)"):
        model(torch.tensor([[99]]), cache=cache)
