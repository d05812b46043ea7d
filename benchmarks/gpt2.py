"""The peer of the training and generation benchmarks: ``transformers``' ``GPT2LMHeadModel``, and a qkv model
holding copies of its weights (renamed and transposed by qkv's GPT-2 loader), so that the two start equal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.harness import BenchmarkError
from qkv.model import Transformer, TransformerConfig
from qkv.pretrained.assemble import Parts, build
from qkv.pretrained.hf_dir import gpt2_tensors
from qkv.shapes import Tensor


def gpt2_peer(config: TransformerConfig, *, seed: int, initializer_range: float = 0.02) -> Any:
    """``GPT2LMHeadModel`` of the shape of a GPT-2-style qkv config, its weights drawn from N(0, initializer_range)."""
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
        from transformers.utils import logging
    except ImportError:
        raise BenchmarkError(
            "the peer is transformers' GPT-2: python -m pip install transformers (qkv's dev extra)"
        ) from None
    logging.set_verbosity_error()  # it warns that GPT-2's bos/eos ids lie outside a 65-token vocabulary
    peer_config = GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.context,
        n_embd=config.width,
        n_layer=config.layers,
        n_head=config.heads,
        n_inner=config.hidden_width,
        activation_function="gelu_new",  # GPT-2's tanh approximation, qkv's "gelu_tanh"
        layer_norm_epsilon=config.norm_eps,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,  # generate as many tokens as asked, whichever they are
        pad_token_id=0,
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(peer_config)


def qkv_twin(peer: Any, config: TransformerConfig) -> Transformer:
    """A qkv model holding copies of ``peer``'s weights."""
    weights = {name: tensor.detach().clone() for name, tensor in peer.state_dict().items()}
    source = Path("<peer>")
    tensors = gpt2_tensors(weights, config, source)
    return build(Parts(config=config, tensors=tensors, tokenizer=None, source=source, architecture="GPT2LMHeadModel"))


class PeerLogits(nn.Module):
    """The peer as qkv's training step calls a model: token ids ``(B, T)`` → logits ``(B, T, V)``."""

    def __init__(self, peer: nn.Module) -> None:
        super().__init__()
        self.peer = peer

    def forward(self, ids: Tensor) -> Tensor:
        return self.peer(ids, use_cache=False).logits
