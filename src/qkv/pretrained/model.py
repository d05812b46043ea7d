"""``load(name_or_path)``: a model and its tokenizer behind one small interface, the :class:`Model` handle.

    import qkv
    minilm = qkv.load("minilm")
    minilm.embed(["a dog", "a puppy"])                      # (2, 384), unit vectors

    smol = qkv.load("smollm2")
    smol.generate(smol.chat_prompt("What is the capital of France?"), 20)

    mine = qkv.load("runs/latest")                          # a run `qkv train` wrote: the same kind of handle
    mine.generate("ROMEO:", 40)

``model`` is an ordinary :class:`~qkv.model.transformer.Transformer`, so everything in qkv — capturing
attention, traces, generation — works on it unchanged. ``dtype`` picks how its weights are held: ``"float32"``
(the default), ``"bfloat16"``, or ``"int4"`` (a GGUF's own 4-bit blocks; see :mod:`qkv.pretrained.lowbit`).
A model built in memory gets the same handle from its parts: ``Model(transformer, tokenizer, name="mine")``.

Text generation runs :func:`qkv.generation.generate`, which uses
:class:`~qkv.generation.fast_decoder.FastDecoder` (a fast twin of the Transformer's cached forward pass: the tests
hold the two to the same logits) for every pre-norm causal decoder, Llama-family and GPT-2 alike.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from qkv.data.registry import PACKAGED, PretrainedError, find_packaged, pickle_refusal, sniff_format
from qkv.errors import InputError
from qkv.generation.generate import generate
from qkv.generation.sampling import GREEDY, SamplingConfig
from qkv.model.config import TransformerConfig
from qkv.model.transformer import Transformer
from qkv.pretrained.assemble import Parts, build
from qkv.pretrained.chat import Message, render_chat
from qkv.pretrained.gguf_llama import read_gguf
from qkv.pretrained.hf_dir import read_hf_dir
from qkv.pretrained.lowbit import WEIGHT_FORMATS, WeightFormat
from qkv.pretrained.run_dir import read_run
from qkv.pretrained.tokenizer import PretrainedTokenizer
from qkv.shapes import ShapeError, Tensor
from qkv.text.tokenizers import Tokenizer
from qkv.training.checkpoint import is_run

__all__ = ["Model", "load", "read_parts"]

PATHS = "a run directory `qkv train` wrote, a Hugging Face model directory or a .gguf file"


def load(name_or_path: str | os.PathLike[str], *, dtype: str = "float32") -> Model:
    """A known model by name (``"minilm"``, ``"smollm2"``: see :func:`~qkv.pretrained.available`), a run
    directory written by ``qkv train`` (or its ``checkpoint/``), a Hugging Face directory (``config.json`` +
    ``model.safetensors``: BERT, GPT-2 or Llama), or a Llama-family ``.gguf``.

    ``dtype`` is ``"float32"`` (default), ``"bfloat16"``, or ``"int4"`` (GGUF files only: the file's Q4_0/Q4_1
    blocks run PyTorch's 4-bit kernel when decoding; everything else as ``"bfloat16"``).

    Every failure — an empty name, a missing package, a damaged file, an unsupported architecture — is one
    :class:`~qkv.errors.InputError` raised before any model is returned.
    """
    precision = check_precision(dtype)
    given = os.fspath(name_or_path)
    names = ", ".join(PACKAGED)
    if not given.strip():  # Path("") is the working directory: never load whatever happens to be there
        raise PretrainedError(f"no model given (an empty name); give a known name ({names}) or the path of {PATHS}")
    if isinstance(name_or_path, str) and given in PACKAGED:
        entry, location = find_packaged(given)
        return Model.from_parts(read_parts(location, precision), name=entry.name, precision=precision)
    path = Path(given).expanduser()
    if not path.exists():
        raise PretrainedError(
            f"unknown model {given!r}: not a known name ({names}) and no such path; give one of those names or "
            f"the path of {PATHS}"
        )
    return Model.from_parts(read_parts(path, precision), name=str(path), precision=precision)


def check_precision(dtype: str) -> WeightFormat:
    """``dtype`` if it is one qkv loads pretrained weights in, else an :class:`InputError` naming the choices."""
    for precision in WEIGHT_FORMATS:
        if dtype == precision:
            return precision
    raise InputError(f"dtype {dtype!r} is not one qkv loads pretrained weights in; choose {', '.join(WEIGHT_FORMATS)}")


def read_parts(path: Path, precision: WeightFormat = "float32") -> Parts:
    """Read a run directory, a model directory or a GGUF file, without building the model (the format is
    sniffed, not guessed from the name)."""
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if ggufs and not (path / "config.json").is_file():
            raise PretrainedError(f"{path} holds GGUF files, not a Hugging Face model; give the file, e.g. {ggufs[0]}")
        if precision == "int4":
            raise PretrainedError(
                f"dtype 'int4' runs the 4-bit blocks a GGUF file stores; {path} holds no GGUF. "
                "Use dtype 'bfloat16' (or 'float32')"
            )
        if is_run(path):
            return read_run(path)
        if not (path / "config.json").is_file():
            raise PretrainedError(
                f"{path} is not a qkv checkpoint (a run directory `qkv train` wrote) nor a Hugging Face model "
                "directory (it has no config.json; one holds config.json and model.safetensors)"
            )
        return read_hf_dir(path, precision)
    found = sniff_format(path)
    if found == "gguf":
        return read_gguf(path, precision)
    if found == "pickle":
        raise pickle_refusal(path)
    if found == "safetensors":
        raise PretrainedError(
            f"{path} is a bare safetensors file; load the directory that holds it with its config.json"
            f"{' (' + str(path.parent) + ')' if (path.parent / 'config.json').is_file() else ''}"
        )
    raise PretrainedError(
        f"{path} is neither a GGUF file nor a model directory (a run `qkv train` wrote, or config.json + "
        "model.safetensors); its first bytes match no weights format qkv reads"
    )


class Model:
    """A :class:`Transformer` with its tokenizer, whatever it came from (a known name, a run, a Hugging Face
    directory, a GGUF, or memory): encode, decode, forward, ``generate``/``stream`` (language models),
    ``embed`` (encoders) and ``chat_prompt`` (models with a chat template). ``qkv.trace(model, text)`` takes it.

    Built in memory: ``Model(transformer, tokenizer, name="mine")``; loaded: :func:`load`.
    """

    def __init__(
        self,
        model: Transformer,
        tokenizer: Tokenizer | None,
        *,
        name: str = "",
        source: Path | None = None,
        architecture: str = "qkv Transformer",
        chat_template: str | None = None,
        special_tokens: Mapping[str, str] | None = None,
        stop_ids: Sequence[int] = (),
        pad_id: int = 0,
        max_embed_tokens: int | None = None,
        precision: WeightFormat = "float32",
    ) -> None:
        self.model = model
        self.precision = precision
        self._tokenizer = tokenizer
        self.name = name
        self.source = source
        self.architecture = architecture
        self.chat_template = chat_template
        self.special_tokens = dict(special_tokens or {})
        self.stop_ids = tuple(stop_ids)
        self.pad_id = pad_id
        self.max_embed_tokens = max_embed_tokens

    @classmethod
    def from_parts(cls, parts: Parts, *, name: str, precision: WeightFormat = "float32") -> Model:
        """The model a loader read (:class:`Parts`), built in ``precision``."""
        return cls(
            build(parts, precision),
            parts.tokenizer,
            name=name,
            source=parts.source,
            architecture=parts.architecture,
            chat_template=parts.chat_template,
            special_tokens=parts.special_tokens,
            stop_ids=parts.stop_ids,
            pad_id=parts.pad_id,
            max_embed_tokens=parts.max_embed_tokens,
            precision=precision,
        )

    # -- what it is ----------------------------------------------------------------------------------------

    @property
    def config(self) -> TransformerConfig:
        return self.model.config

    @property
    def is_causal(self) -> bool:
        """A language model that predicts the next token (GPT-2, Llama), as opposed to an encoder (BERT)."""
        return self.config.causal and self.config.lm_head

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            where = f" (no tokenizer.json in {self.source})" if self.source is not None else ""
            raise InputError(f"{self._called} came without a tokenizer{where}")
        return self._tokenizer

    @property
    def _called(self) -> str:
        """How messages name the model."""
        return self.name or "this model"

    def __repr__(self) -> str:
        c = self.config
        return (
            f"Model({self.name!r}: {self.architecture}, {c.layers} layers × {c.heads} heads, "
            f"width {c.width}, vocabulary {c.vocab_size}, {self.precision})"
        )

    # -- text ↔ ids ----------------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, with the special tokens the model expects (``[CLS] … [SEP]`` for BERT)."""
        return self.tokenizer.encode(text)

    def encode_batch(self, texts: Sequence[str], *, max_tokens: int | None = None) -> tuple[Tensor, Tensor]:
        """``(ids (B, S), keep (B, S))``: the texts' ids padded on the right, and ``True`` on real tokens.

        ``max_tokens`` cuts longer texts (keeping their closing special token); by default nothing is cut.
        """
        if isinstance(texts, str) or not texts:
            raise InputError("give a non-empty list of texts")
        return self._padded(self._encode_rows(texts, max_tokens))

    def _encode_rows(self, texts: Sequence[str], max_tokens: int | None) -> list[list[int]]:
        """Each text's ids (unpadded), cut to ``max_tokens``; a pretrained tokenizer keeps the special tokens
        around a cut text, a run's tokenizer adds none."""
        tokenizer = self.tokenizer
        if isinstance(tokenizer, PretrainedTokenizer):
            return tokenizer.encode_batch(texts, max_length=max_tokens)
        return [tokenizer.encode(text)[:max_tokens] for text in texts]

    def _padded(self, rows: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
        longest = max(len(row) for row in rows)
        ids = torch.full((len(rows), longest), self.pad_id, dtype=torch.long)  # (B, S)
        keep = torch.zeros(len(rows), longest, dtype=torch.bool)  # (B, S)
        for index, row in enumerate(rows):
            ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
            keep[index, : len(row)] = True
        return ids, keep

    def decode(self, ids: Sequence[int] | Tensor, *, skip_special_tokens: bool = False) -> str:
        """The text of ``ids``; ``skip_special_tokens`` leaves out ``[CLS]``, ``<|im_end|>`` … (a run's tokenizer
        has none)."""
        values = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        tokenizer = self.tokenizer
        if isinstance(tokenizer, PretrainedTokenizer):
            return tokenizer.decode(values, skip_special_tokens=skip_special_tokens)
        return tokenizer.decode(values)

    # -- running it ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def forward(
        self, ids: Tensor | Sequence[int], *, keep: Tensor | None = None, token_types: Tensor | None = None
    ) -> Tensor:
        """Logits ``(B, T, V)`` for a language model, hidden states ``(B, T, D)`` for an encoder.

        ``ids`` are ``(B, T)`` (or one sequence: a list or ``(T,)``); ``keep`` ``(B, T)`` marks real tokens;
        ``token_types`` ``(B, T)`` are BERT's segment ids (all 0 when not given).
        """
        batch = torch.as_tensor(ids, dtype=torch.long)
        if batch.dim() == 1:
            batch = batch[None]
        return self.model(batch, keep=keep, token_types=token_types)

    __call__ = forward

    @torch.no_grad()
    def embed(self, texts: str | Sequence[str], *, batch_size: int = 32) -> Tensor:
        """Sentence embeddings as sentence-transformers computes them: the mean of the last hidden states over
        the real tokens, scaled to unit length. ``(D,)`` for one text, ``(N, D)`` for a list.

        Texts longer than the model's embedding length (256 tokens for MiniLM) are cut there, as
        sentence-transformers cuts them. The texts are embedded in batches of similar token counts (all are
        tokenized first, then sorted by length), so that little of each batch is padding; the result is in the
        order given.
        """
        if self.config.lm_head:
            raise InputError(f"embed() needs an encoder such as 'minilm'; {self._called} is a language model")
        single = isinstance(texts, str)
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items:
            raise InputError("no texts to embed")
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        rows = self._encode_rows(items, self.max_embed_tokens)
        # Longest first, by tokens: sentence-transformers sorts by characters, which left 10% of the positions
        # of 1,000 sentences padding in batches of 32; by tokens, 3%.
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
        chunks = []
        for start in range(0, len(order), batch_size):
            ids, keep = self._padded([rows[i] for i in order[start : start + batch_size]])
            hidden = self.model(ids, keep=keep)  # (B, S, D)
            weights = keep.unsqueeze(-1).to(hidden.dtype)  # (B, S, 1)
            mean = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)  # (B, D)
            chunks.append(F.normalize(mean, p=2.0, dim=-1))
        embeddings = torch.empty(len(items), self.config.width)  # (N, D), in the order given
        embeddings[torch.tensor(order)] = torch.cat(chunks)
        return embeddings[0] if single else embeddings

    def chat_prompt(self, messages: str | Sequence[Message], *, add_generation_prompt: bool = True) -> str:
        """The prompt the model's own chat template makes of ``messages`` (a string is one user message).

        Only a chat model has a template (SmolLM2 does; a run, MiniLM and GPT-2 do not): for the others
        ``chat_template`` is ``None`` and this is an :class:`InputError`.
        """
        if self.chat_template is None:
            raise InputError(f"{self._called} has no chat template; give it plain text instead")
        return render_chat(
            self.chat_template,
            messages,
            add_generation_prompt=add_generation_prompt,
            special_tokens=self.special_tokens,
        )

    @torch.inference_mode()
    def stream(
        self,
        prompt: str | Sequence[int],
        max_new_tokens: int = 64,
        *,
        sampling: SamplingConfig = GREEDY,
        generator: torch.Generator | None = None,
        stop_at_eos: bool = True,
    ) -> Iterator[int]:
        """Yield up to ``max_new_tokens`` new token ids, one at a time; stop before an end-of-turn token."""
        if not self.is_causal:
            raise InputError(f"{self._called} is an encoder; generating text needs a language model such as 'smollm2'")
        ids = self.encode(prompt) if isinstance(prompt, str) else [int(i) for i in prompt]
        if not ids:
            raise InputError("the prompt is empty: give at least one token")
        if max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be 0 or more, got {max_new_tokens}")
        context = self.config.context
        if len(ids) > context:
            raise ShapeError(f"the prompt has {len(ids)} tokens; {self._called} reads at most {context}")
        if max_new_tokens == 0:
            return
        stops = set(self.stop_ids) if stop_at_eos else set()
        prompt_ids = torch.tensor([ids], dtype=torch.long)  # (1, T)
        # generate runs the fast decoder where it computes this model (a capture hook set keeps the Transformer)
        # and crops the context as it fills; islice stops without asking for a read-back of the last token.
        new = generate(self.model, prompt_ids, max_new_tokens, sampling, generator=generator)
        for token in itertools.islice(new, max_new_tokens):
            if int(token) in stops:
                return
            yield int(token)

    def generate(
        self,
        prompt: str | Sequence[int],
        max_new_tokens: int = 64,
        *,
        sampling: SamplingConfig = GREEDY,
        generator: torch.Generator | None = None,
        stop_at_eos: bool = True,
    ) -> str:
        """The text the model writes after ``prompt`` (greedy by default), without the end-of-turn token."""
        new = list(self.stream(prompt, max_new_tokens, sampling=sampling, generator=generator, stop_at_eos=stop_at_eos))
        return self.decode(new)
