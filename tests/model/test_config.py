"""TransformerConfig: validation that names the field, round-trips as data, presets and families."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from qkv.errors import ConfigError
from qkv.model import FAMILIES, PRESETS, Transformer, TransformerConfig, preset

INVALID = [
    ({"heads": 3}, "heads"),  # 3 does not divide the width 128
    ({"kv_heads": 3}, "kv_heads"),  # 3 does not divide 4 heads
    ({"kv_heads": 0}, "kv_heads"),
    ({"head_width": 0}, "head_width"),
    ({"activation": "tanh"}, "activation"),
    ({"norm": "batchnorm"}, "norm"),
    ({"norm_placement": "sandwich"}, "norm_placement"),
    ({"positions": "absolute"}, "positions"),
    ({"vocab_size": 0}, "vocab_size"),
    ({"context": -1}, "context"),
    ({"width": 0}, "width"),
    ({"layers": 0}, "layers"),
    ({"layers": 2.5}, "layers"),
    ({"layers": True}, "layers"),
    ({"heads": 0}, "heads"),
    ({"mlp_width": 0}, "mlp_width"),
    ({"token_types": -1}, "token_types"),
    ({"norm_eps": 0.0}, "norm_eps"),
    ({"dropout": 1.0}, "dropout"),
    ({"dropout": -0.1}, "dropout"),
    ({"dropout": float("nan")}, "dropout"),
    ({"positions": "rope", "width": 12, "heads": 4}, "head_width"),  # head width 3 cannot be rotated in pairs
    ({"positions": "rope", "head_width": 5}, "head_width"),
    ({"rope_theta": -1.0}, "rope_theta"),
    ({"rope_theta": float("nan")}, "rope_theta"),
    ({"lm_head": False, "tie_embeddings": True}, "tie_embeddings"),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID, ids=[f"{f}={o}" for o, f in INVALID])
def test_each_invalid_field_raises_a_config_error_naming_it(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"TransformerConfig\.{field}\b"):
        TransformerConfig(**overrides)  # type: ignore[arg-type]


def test_a_config_error_is_a_value_error_and_lists_the_valid_choices() -> None:
    with pytest.raises(ValueError, match=r"'gelu', 'gelu_tanh', 'relu', 'swiglu'"):
        TransformerConfig(activation="tanh")  # type: ignore[arg-type]


def test_from_dict_refuses_an_unknown_field_by_name() -> None:
    with pytest.raises(ConfigError, match=r"TransformerConfig has no field hidden_size"):
        TransformerConfig.from_dict({"width": 64, "hidden_size": 64})


def test_preset_refuses_an_unknown_name_and_an_unknown_override() -> None:
    with pytest.raises(ConfigError, match=r"unknown preset 'huge'.*tiny.*llama"):
        preset("huge")
    with pytest.raises(ConfigError, match=r"no field n_layer"):
        preset("tiny", n_layer=3)


@pytest.mark.parametrize("name", [*PRESETS, *FAMILIES])
def test_every_preset_and_family_round_trips_through_json(name: str) -> None:
    config = preset(name, vocab_size=77, kv_heads=2)
    assert TransformerConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_preset_overrides_fields_and_leaves_the_rest() -> None:
    config = preset("tiny", width=96, vocab_size=65)
    assert (config.width, config.vocab_size) == (96, 65)
    assert dataclasses.replace(config, width=64, vocab_size=PRESETS["tiny"].vocab_size) == PRESETS["tiny"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_gpt2_conventions_at_three_sizes(name: str) -> None:
    sizes = ("context", "width", "layers", "heads")
    gpt2 = FAMILIES["gpt2"]
    assert dataclasses.replace(PRESETS[name], **{field: getattr(gpt2, field) for field in sizes}) == gpt2


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["tiny"].width = 1  # type: ignore[misc]


@pytest.mark.parametrize("name", [*PRESETS, *FAMILIES])
@torch.no_grad()
def test_every_preset_and_family_builds_and_runs_forward(name: str) -> None:
    config = preset(name, vocab_size=50)
    model = Transformer(config).eval()
    ids = torch.randint(0, 50, (2, 9))
    output = model(ids)
    assert output.shape == (2, 9, 50 if config.lm_head else config.width)
    assert torch.isfinite(output).all()


def test_bert_is_a_post_norm_bidirectional_encoder_with_token_types() -> None:
    config = FAMILIES["bert"]
    model = Transformer(preset("bert", layers=1, vocab_size=30))
    assert config.norm_placement == "post" and not config.causal and config.token_types == 2
    assert not model.blocks[0].pre_norm and isinstance(model.blocks[0].attention_norm, nn.LayerNorm)
    assert model.lm_head is None and model.final_norm is None and model.embedding.norm is not None
    assert model.embedding.token_types is not None


def test_gpt2_ties_the_output_projection_to_the_token_embedding() -> None:
    model = Transformer(preset("gpt2", layers=1, vocab_size=30))
    assert model.lm_head is not None and model.lm_head.weight is model.embedding.tokens.weight
    assert model.blocks[0].pre_norm and isinstance(model.final_norm, nn.LayerNorm)
    assert model.blocks[0].mlp.activation == "gelu_tanh"


def test_llama_is_rmsnorm_swiglu_rope_without_biases_and_untied() -> None:
    config = FAMILIES["llama"]
    model = Transformer(preset("llama", layers=1, vocab_size=30, kv_heads=2))
    block = model.blocks[0]
    assert isinstance(block.attention_norm, nn.RMSNorm) and isinstance(model.final_norm, nn.RMSNorm)
    assert block.mlp.to_gate is not None and block.attention.rope is not None
    assert block.attention.to_q.bias is None and block.mlp.to_hidden.bias is None
    assert block.attention.to_k.out_features == block.attention.to_q.out_features // 2  # grouped-query
    assert model.lm_head is not None and model.lm_head.weight is not model.embedding.tokens.weight
    assert config.positions == "rope" and config.activation == "swiglu" and config.norm == "rmsnorm"


def test_families_differ_where_their_conventions_do() -> None:
    bert, gpt2, llama = FAMILIES["bert"], FAMILIES["gpt2"], FAMILIES["llama"]
    assert (bert.norm_placement, gpt2.norm_placement, llama.norm_placement) == ("post", "pre", "pre")
    assert (bert.causal, gpt2.causal, llama.causal) == (False, True, True)
    assert (bert.positions, gpt2.positions, llama.positions) == ("learned", "learned", "rope")
    assert (bert.tie_embeddings, gpt2.tie_embeddings, llama.tie_embeddings) == (False, True, False)


@pytest.mark.parametrize(
    ("field", "value"),
    [("causal", "false"), ("token_types", 1.5), ("kv_heads", 2.0), ("width", "128"), ("positions", 3)],
)
def test_from_dict_refuses_a_value_of_the_wrong_type_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"TransformerConfig\.{field}="):
        TransformerConfig.from_dict({field: value})
