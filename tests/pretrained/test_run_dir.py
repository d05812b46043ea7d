"""One handle for every model: ``qkv.load`` opens a run directory written by training and returns the same
``qkv.Model`` as for a pretrained one — the same logits as the Transformer training's own reader builds, the
same tokens as ``qkv.generation.generate``, its own char or BPE tokenizer — and refuses an empty name or a path
of no known kind in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import qkv
from qkv.errors import InputError
from qkv.generation import SamplingConfig, generate
from qkv.model import Transformer, preset
from qkv.text.tokenizers import BPETokenizer, CharTokenizer, Tokenizer, train_tokenizer
from qkv.training import Progress, load_checkpoint, load_weights, save_checkpoint

TEXT = "the quick brown fox jumps over the lazy dog while cats sit on mats\n" * 20


def saved_run(directory: Path, tokenizer: Tokenizer, *, seed: int = 0, **fields: object) -> Path:
    """A run directory as ``qkv train --out`` leaves it: a random tiny model, saved by training's own writer."""
    torch.manual_seed(seed)
    config = preset("tiny", vocab_size=tokenizer.vocab_size, context=32, **fields)  # type: ignore[arg-type]
    model = Transformer(config)
    save_checkpoint(
        directory, model=model, model_config=config, tokenizer_json=tokenizer.to_json(), progress=Progress(step=7)
    )
    return directory


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_run(tmp_path_factory.mktemp("runs") / "char", CharTokenizer.train(TEXT))


def reference(run: Path) -> tuple[Transformer, Tokenizer]:
    """The run as training reads it back: load_checkpoint, then load_weights into a fresh Transformer."""
    from qkv.text.tokenizers import tokenizer_from_json

    checkpoint = load_checkpoint(run)
    model = Transformer(checkpoint.model_config)
    load_weights(model, checkpoint)
    return model.eval(), tokenizer_from_json(checkpoint.tokenizer_json)


@pytest.mark.parametrize("untied", [False, True], ids=["tied output layer", "own output layer"])
def test_a_run_gives_the_logits_of_the_transformer_training_reads_back(tmp_path: Path, untied: bool) -> None:
    path = saved_run(tmp_path / "run", CharTokenizer.train(TEXT), tie_embeddings=not untied)
    handle = qkv.load(path)
    model, tokenizer = reference(path)
    ids = torch.tensor([tokenizer.encode("the lazy dog sits")])
    assert handle.encode("the lazy dog sits") == ids[0].tolist()
    torch.testing.assert_close(handle.forward(ids), model(ids), rtol=0, atol=0)


def test_the_run_and_its_checkpoint_directory_load_the_same_model(run: Path) -> None:
    ids = [3, 1, 4, 1, 5]
    torch.testing.assert_close(qkv.load(run).forward(ids), qkv.load(run / "checkpoint").forward(ids), rtol=0, atol=0)


def test_generating_through_the_handle_equals_generate_with_the_same_seed(run: Path) -> None:
    handle = qkv.load(run)
    model, tokenizer = reference(run)
    sampling = SamplingConfig(temperature=0.8, top_k=10)
    prompt = tokenizer.encode("the ")
    expected = [
        int(token[0])
        for token in generate(model, torch.tensor([prompt]), 50, sampling, generator=torch.Generator().manual_seed(3))
    ]
    new = list(handle.stream("the ", 50, sampling=sampling, generator=torch.Generator().manual_seed(3)))
    assert new == expected  # 50 tokens: past the context of 32, so generation cropped along the way
    text = handle.generate("the ", 50, sampling=sampling, generator=torch.Generator().manual_seed(3))
    assert text == tokenizer.decode(expected)


def test_a_run_has_its_own_tokenizer_and_no_chat_template(run: Path) -> None:
    handle = qkv.load(run)
    assert isinstance(handle, qkv.Model) and isinstance(handle.tokenizer, CharTokenizer)
    assert handle.decode(handle.encode("a lazy fox")) == "a lazy fox"
    assert handle.chat_template is None and handle.is_causal and handle.stop_ids == ()
    with pytest.raises(InputError, match="has no chat template; give it plain text instead"):
        handle.chat_prompt("Hi")
    ids, keep = handle.encode_batch(["the dog", "a cat sits"])
    assert ids.shape == keep.shape == (2, 10) and keep.sum().item() == 7 + 10
    assert "qkv run, step 7" in repr(handle)


def test_a_bpe_run_loads_its_bpe_tokenizer(tmp_path: Path) -> None:
    tokenizer = train_tokenizer("bpe", TEXT, 300)
    handle = qkv.load(saved_run(tmp_path / "bpe", tokenizer))
    assert isinstance(handle.tokenizer, BPETokenizer)
    assert handle.encode("the lazy dog") == tokenizer.encode("the lazy dog")
    assert handle.decode(tokenizer.encode("the lazy dog")) == "the lazy dog"


def test_a_run_loads_in_bfloat16_close_to_float32(run: Path) -> None:
    ids = qkv.load(run).encode("the quick brown fox")
    full, low = qkv.load(run).forward(ids), qkv.load(run, dtype="bfloat16").forward(ids)
    assert (full - low).abs().mean() < 0.05 and (full.argmax(-1) == low.argmax(-1)).float().mean() > 0.8
    with pytest.raises(InputError, match="dtype 'int4' runs the 4-bit blocks a GGUF file stores"):
        qkv.load(run, dtype="int4")


def test_a_model_built_in_memory_gets_the_same_handle() -> None:
    tokenizer = CharTokenizer.train(TEXT)
    torch.manual_seed(0)
    model = Transformer(preset("tiny", vocab_size=tokenizer.vocab_size, context=32)).eval()
    handle = qkv.Model(model, tokenizer, name="mine")
    expected = [int(t[0]) for t in generate(model, torch.tensor([tokenizer.encode("the ")]), 12, SamplingConfig(0))]
    assert handle.generate("the ", 12, sampling=SamplingConfig(0)) == tokenizer.decode(expected)
    assert qkv.trace(handle, "the dog").model == "mine"


@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_name_is_refused_even_where_the_working_directory_holds_a_run(
    run: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(run)  # Path("") is "."; loading it would load this run
    with pytest.raises(InputError, match=r"^no model given \(an empty name\); give a known name") as caught:
        qkv.load(name)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda p: (p.mkdir(), (p / "notes.txt").write_text("hello")), "is not a qkv checkpoint .* nor a Hugging Face"),
        (lambda p: p.write_text("hello"), "is neither a GGUF file nor a model directory"),
        (lambda p: None, "unknown model .*: not a known name \\(minilm, smollm2\\) and no such path"),
    ],
    ids=["a directory of other files", "a file of no known format", "nothing there"],
)
def test_a_path_of_no_known_kind_is_one_line_naming_what_was_expected(tmp_path: Path, make: object, what: str) -> None:
    make(tmp_path / "thing")  # type: ignore[operator]
    with pytest.raises(InputError, match=what) as caught:
        qkv.load(tmp_path / "thing")
    assert "\n" not in str(caught.value) and str(tmp_path / "thing") in str(caught.value)


def test_a_damaged_run_is_refused_naming_its_checkpoint(tmp_path: Path) -> None:
    path = saved_run(tmp_path / "run", CharTokenizer.train(TEXT))
    (path / "checkpoint" / "state.safetensors").write_bytes(b"\0" * 8)  # optimizer state is checked, not read
    with pytest.raises(InputError, match=r"state\.safetensors: not a readable safetensors file"):
        qkv.load(path)
