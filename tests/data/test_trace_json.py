"""An AttentionTrace's JSON: streamed piece by piece, yet byte for byte the one document; read back exactly; and
saving a large trace holds no copy of its weights."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from qkv.data import trace as trace_module
from qkv.data.trace import AttentionTrace
from qkv.errors import InputError

Tensor = torch.Tensor

TOKENS = ("<s>", "Évan", "’s", " dög", " 🐕", "\n", '"q"', "\\")  # non-ASCII, quotes, a backslash, a newline


def small_trace(weights: Tensor | None = None) -> AttentionTrace:
    if weights is None:
        weights = torch.softmax(torch.randn(3, 2, 8, 8), dim=-1)  # (L, H, T, S): 1,536 bytes, not a multiple of 3
    return AttentionTrace(weights, TOKENS, (0, 4, 7), "".join(TOKENS), "smöl/model", (True, *(False,) * 7))


def expected_document(trace: AttentionTrace) -> str:
    """The document as one json.dumps of the whole thing, independently of qkv's writer."""
    array = trace.weights.detach().to(torch.float32).numpy().astype("<f4")
    return json.dumps(
        {
            "format": "qkv-attention-trace",
            "version": 1,
            "model": trace.model,
            "text": trace.text,
            "tokens": list(trace.tokens),
            "special": list(trace.special),
            "layers": list(trace.layers),
            "weights": {
                "shape": list(array.shape),
                "dtype": "float32",
                "byteorder": "little",
                "base64": base64.b64encode(array.tobytes()).decode("ascii"),
            },
        },
        ensure_ascii=False,
    )


@pytest.mark.parametrize("block_bytes", [4, 8, 20, 28, 4 * 1024**2])  # rows of 32 bytes: pieces that carry 1 or 2
def test_the_streamed_json_is_byte_for_byte_one_json_dumps_of_the_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    monkeypatch.setattr(trace_module, "_BLOCK_BYTES", block_bytes)
    trace = small_trace()
    expected = expected_document(trace)
    assert trace.to_json() == expected
    assert trace.save(tmp_path / "trace.json").read_bytes() == expected.encode("utf-8")
    written = io.BytesIO()
    trace.write_json(written)
    assert written.getvalue() == expected.encode("utf-8")
    one_token = AttentionTrace(torch.rand(5, 3, 1, 1), ("a",), (0, 1, 2, 3, 4), "a")  # blocks of 4 bytes
    assert one_token.to_json() == expected_document(one_token)


@pytest.mark.parametrize(
    "make",
    [
        lambda w: w.transpose(2, 3).contiguous().transpose(2, 3),  # not contiguous
        lambda w: w.to(torch.float64),
        lambda w: w.to(torch.bfloat16),
        lambda w: w.clone().requires_grad_(True),
        lambda w: w[:, :, :5, :5],  # a slice of a larger tensor
    ],
    ids=["strided", "float64", "bfloat16", "requires grad", "slice"],
)
def test_weights_of_any_layout_or_float_dtype_are_written_as_their_float32_values(make: object) -> None:
    weights = make(torch.softmax(torch.randn(3, 2, 8, 8), dim=-1))  # type: ignore[operator]
    T = weights.shape[-1]
    trace = AttentionTrace(weights, TOKENS[:T], (0, 4, 7), "".join(TOKENS[:T]))
    assert trace.to_json() == expected_document(trace)
    assert torch.equal(AttentionTrace.from_json(trace.to_json()).weights, weights.detach().to(torch.float32))


def test_a_saved_trace_loads_back_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace_module, "_BLOCK_CHARACTERS", 8)  # decoded 8 characters (6 bytes) at a time
    original = small_trace()
    for loaded in (
        AttentionTrace.load(original.save(tmp_path / "trace.json")),
        AttentionTrace.from_json(original.to_json()),
        AttentionTrace.from_json(original.to_json().encode("utf-8")),
    ):
        assert torch.equal(loaded.weights, original.weights) and loaded.weights.dtype == torch.float32
        assert loaded.weights.is_contiguous()
        assert (loaded.tokens, loaded.special, loaded.layers, loaded.text, loaded.model) == (
            original.tokens,
            original.special,
            original.layers,
            original.text,
            original.model,
        )
    loaded.weights.mul_(2)  # its own, writable memory


def damaged(change: str) -> str:
    document = json.loads(small_trace().to_json())
    stored = document["weights"]
    if change == "short":
        stored["base64"] = stored["base64"][:-4]
    elif change == "long":
        stored["base64"] += "AAAA"
    elif change == "not base64":
        stored["base64"] = "*" * len(stored["base64"])
    elif change == "padding inside":  # the right length, but '=' stops the first piece short
        stored["base64"] = "AA==" + stored["base64"][4:]
    elif change == "negative shape":
        stored["shape"] = [-3, 2, 8, 8]
    elif change == "not a string":
        stored["base64"] = 12
    elif change == "shape":
        stored["shape"] = [3, 2, 8, 9]
    return json.dumps(document)


@pytest.mark.parametrize(
    "change", ["short", "long", "not base64", "padding inside", "negative shape", "not a string", "shape"]
)
def test_damaged_weights_are_one_input_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    monkeypatch.setattr(trace_module, "_BLOCK_CHARACTERS", 8)
    path = tmp_path / "damaged.json"
    path.write_text(damaged(change), encoding="utf-8")
    with pytest.raises(InputError, match=rf"{path} is a damaged qkv attention trace \(.+\)"):
        AttentionTrace.load(path)


def test_bytes_that_are_not_utf8_are_not_json() -> None:
    with pytest.raises(InputError, match="the trace is not JSON"):
        AttentionTrace.from_json(b"\xff\xfe{")


def test_saving_replaces_the_file_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = small_trace().save(tmp_path / "trace.json")
    before = path.read_bytes()

    def fail(blocks: object) -> object:
        yield b"AAAA"
        raise RuntimeError("disk full")

    monkeypatch.setattr(trace_module, "_base64_pieces", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        small_trace(torch.full((3, 2, 8, 8), 0.125)).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.json"]  # no temporary file left behind


MEASURE = """
import resource, sys, torch
from qkv.data.trace import AttentionTrace

def peak():  # bytes; ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

mode, path, T = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "save":
    trace = AttentionTrace(torch.rand(4, 4, T, T), ("x",) * T, (0, 1, 2, 3), "x" * T)
    before = peak()
    trace.save(path)
else:
    before = peak()
    trace = AttentionTrace.load(path)
print(peak() - before, trace.weights.numel() * 4)
"""


def extra_memory(mode: str, path: Path, T: int) -> tuple[int, int]:
    """``(peak RSS beyond what the process held before, bytes of weights)`` of saving or loading, in a fresh
    process (ru_maxrss only ever grows)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MEASURE), mode, str(path), str(T)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    extra, weights = (int(n) for n in done.stdout.split())
    return extra, weights


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB is Linux's")
def test_saving_a_large_trace_holds_no_copy_of_its_weights_and_loading_at_most_three(tmp_path: Path) -> None:
    path = tmp_path / "large.json"
    extra, weights = extra_memory("save", path, 1024)  # 4 × 4 × 1024² float32: 64 MiB
    assert extra < 0.5 * weights, f"saving {weights / 2**20:.0f} MiB of weights took {extra / 2**20:.0f} MiB more"
    # Reading holds the file's text and the weights' base64 while it parses (2 × 4/3), then the weights.
    extra, weights = extra_memory("load", path, 1024)
    assert extra < 3.5 * weights, f"loading {weights / 2**20:.0f} MiB of weights took {extra / 2**20:.0f} MiB more"
