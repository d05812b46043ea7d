"""Which configs each format can express: the stock class is chosen from the fields alone, anything else is refused
with the field named, and every TransformerConfig field is accounted for."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from qkv.export.hf import hf_config
from qkv.export.support import ExportError, check_gguf, hf_family
from qkv.model.config import FAMILIES, PRESETS, TransformerConfig, preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_a_gpt2(name: str) -> None:
    assert hf_family(PRESETS[name]) == "gpt2"


def test_the_llama_family_is_a_llama_and_fits_gguf() -> None:
    assert hf_family(FAMILIES["llama"]) == "llama"
    check_gguf(FAMILIES["llama"])  # no error


@pytest.mark.parametrize(
    ("base", "changes", "field"),
    [
        ("tiny", {"positions": "alibi"}, "positions"),
        ("tiny", {"norm_placement": "post"}, "norm_placement"),
        ("tiny", {"causal": False}, "causal"),
        ("tiny", {"lm_head": False, "tie_embeddings": False}, "lm_head"),
        ("tiny", {"final_norm": False}, "final_norm"),
        ("tiny", {"embedding_norm": True}, "embedding_norm"),
        ("tiny", {"token_types": 2}, "token_types"),
        ("tiny", {"norm": "rmsnorm"}, "norm"),
        ("tiny", {"norm_bias": False}, "norm_bias"),
        ("tiny", {"attention_bias": False}, "attention_bias"),
        ("tiny", {"mlp_bias": False}, "mlp_bias"),
        ("tiny", {"activation": "swiglu"}, "activation"),
        ("tiny", {"kv_heads": 2}, "kv_heads"),
        ("tiny", {"head_width": 8}, "head_width"),
        ("llama", {"norm": "layernorm"}, "norm"),
        ("llama", {"activation": "gelu"}, "activation"),
        ("llama", {"norm_placement": "post"}, "norm_placement"),
        ("bert", {}, "causal"),  # BERT's learned positions would pass; its bidirectional attention does not
    ],
)
def test_a_config_no_stock_class_computes_is_refused_by_its_field(
    base: str, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ExportError, match=f"^TransformerConfig.{field}=") as error:
        hf_family(preset(base, **changes))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"positions": "learned"}, "positions"),
        ({"attention_bias": True}, "attention_bias"),
        ({"mlp_bias": True}, "mlp_bias"),
        ({"norm": "layernorm"}, "norm"),
        ({"causal": False}, "causal"),
    ],
)
def test_gguf_refuses_what_its_llama_architecture_cannot_hold(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ExportError, match=f"^TransformerConfig.{field}="):
        check_gguf(preset("llama", **changes))


# Every field is either written to config.json, decided by the family check (refused when it differs), or does not
# change what a model computes at inference.
WRITTEN = {
    "vocab_size",
    "context",
    "width",
    "layers",
    "heads",
    "kv_heads",
    "head_width",
    "mlp_width",
    "activation",
    "norm_eps",
    "rope_theta",
    "attention_bias",
    "mlp_bias",
    "tie_embeddings",
    "dropout",
}
CHECKED = {
    "positions",
    "norm",
    "norm_placement",
    "causal",
    "norm_bias",
    "token_types",
    "embedding_norm",
    "final_norm",
    "lm_head",
}


def test_every_config_field_is_written_or_checked() -> None:
    fields = {field.name for field in dataclasses.fields(TransformerConfig)}
    assert fields == WRITTEN | CHECKED, "a new TransformerConfig field: write it to config.json or refuse it"


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_config_json_states_the_sizes(family: str) -> None:
    config: TransformerConfig
    if family == "gpt2":
        config = preset("tiny", vocab_size=70, mlp_width=100)
        written = hf_config(config, "gpt2")
        assert (written["n_embd"], written["n_layer"], written["n_head"], written["n_inner"]) == (64, 2, 4, 100)
        assert written["n_positions"] == 64 and written["activation_function"] == "gelu_new"
    else:
        config = preset("llama", vocab_size=70, kv_heads=2, head_width=16, rope_theta=500.0)
        written = hf_config(config, "llama")
        assert (written["num_key_value_heads"], written["head_dim"], written["intermediate_size"]) == (2, 16, 512)
        assert written["rope_parameters"] == {"rope_type": "default", "rope_theta": 500.0}
    assert written["vocab_size"] == 70
