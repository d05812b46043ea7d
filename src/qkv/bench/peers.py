"""The peer of the training and generation benchmarks: ``transformers``' ``GPT2LMHeadModel``, and qkv's model
holding the very same weights.

The peer is built with its own random initialisation (GPT-2's), its default attention implementation, and no
dropout; :func:`qkv_twin` copies its weights into a qkv :class:`~qkv.model.Transformer` through the GPT-2
loader's renaming (:func:`qkv.pretrained.hf_dir.gpt2_tensors`), as copies, so that the two can be trained side
by side. Same weights, same maths: the benchmarks check that both compute the same losses and pick the same
tokens before anything is timed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from qkv.bench import BenchmarkError
from qkv.model import Transformer, TransformerConfig
from qkv.pretrained.assemble import Parts, build
from qkv.pretrained.hf_dir import gpt2_tensors
from qkv.shapes import Tensor

__all__ = ["PeerLogits", "gpt2_peer", "qkv_twin"]


def gpt2_peer(config: TransformerConfig, *, seed: int, initializer_range: float = 0.02) -> Any:
    """``GPT2LMHeadModel`` of the shape of ``config`` (a GPT-2-style qkv config), randomly initialised.

    GPT-2 draws its weights from ``N(0, initializer_range)``.
    """
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
        from transformers.utils import logging
    except ImportError:
        raise BenchmarkError(
            "the peer is transformers' GPT2LMHeadModel: pip install transformers (a dev dependency of qkv)"
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
        eos_token_id=None,  # generate the number of tokens asked for, whichever they are
        pad_token_id=0,
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(peer_config)


def qkv_twin(peer: Any, config: TransformerConfig) -> Transformer:
    """A qkv model holding copies of ``peer``'s weights (renamed and transposed as the GPT-2 loader does)."""
    weights = {name: tensor.detach().clone() for name, tensor in peer.state_dict().items()}
    tensors = gpt2_tensors(weights, config, Path("<peer>"))
    parts = Parts(config=config, tensors=tensors, tokenizer=None, source=Path("<peer>"), architecture="GPT2LMHeadModel")
    return build(parts)


class PeerLogits(nn.Module):
    """The peer as qkv's training step calls a model: token ids ``(B, T)`` → logits ``(B, T, V)``."""

    def __init__(self, peer: nn.Module) -> None:
        super().__init__()
        self.peer = peer

    def forward(self, ids: Tensor) -> Tensor:
        return self.peer(ids, use_cache=False).logits
