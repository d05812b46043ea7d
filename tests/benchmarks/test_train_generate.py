"""The training and generation benchmarks: the peer and its qkv twin compute the same thing, disagreeing cases
stop a benchmark before timing, the FLOP estimate is the published formula, a case in a worker process trains
like the same case here, and both run end to end at a tiny size."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks import generate, gpt2, harness, train
from qkv.model import Transformer, preset

TINY = ["--layers", "1", "--heads", "2", "--width", "32", "--context", "16", "--rounds", "1", "--no-memory"]
needs_transformers = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text("To be, or not to be, that is the question.\n" * 40, encoding="utf-8")
    return path


@pytest.fixture
def short_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "MIN_SAMPLE_S", 0.01)
    monkeypatch.setattr(train, "PEAK_MATMUL", 64)


def test_the_flop_estimate_is_six_per_weight_plus_attention() -> None:
    model = Transformer(preset("small", vocab_size=65))  # 4 layers, width 128, context 64
    per_layer = 12 * 128 * 128 + 9 * 128 + 4 * 128  # q, k, v, out, hidden, out weights; their biases; two norms
    weights = 4 * per_layer + 65 * 128 + 2 * 128  # blocks, tied token embedding, final norm
    assert train.flops_per_token(model) == 6 * weights + 12 * 4 * 128 * 64


def test_cases_that_pick_different_tokens_stop_the_generate_benchmark() -> None:
    same, other = torch.tensor([[1, 2, 3, 4]]), torch.tensor([[1, 2, 5, 4]])
    generate.check_agreement({"a": same, "b": same.clone()}, 4)
    generate.check_agreement({"a": same, "b": other}, 2)  # past the compared length: no matter
    with pytest.raises(harness.BenchmarkError, match="b picks token 5 at position 2, a picks 3"):
        generate.check_agreement({"a": same, "b": other}, 4)


@pytest.mark.slow
def test_the_peer_and_its_qkv_twin_compute_the_same_logits() -> None:
    pytest.importorskip("transformers")
    config = preset("small", vocab_size=20, context=16, width=32, heads=2, layers=2)
    peer = gpt2.gpt2_peer(config, seed=3).eval()
    twin = gpt2.qkv_twin(peer, config)
    ids = torch.randint(20, (2, 16))
    with torch.inference_mode():
        torch.testing.assert_close(twin(ids), peer(ids).logits, rtol=1e-5, atol=1e-5)
    twin.embedding.tokens.weight.data.zero_()  # the twin holds copies: training one leaves the other alone
    assert peer.transformer.wte.weight.abs().sum() > 0


@pytest.mark.slow
def test_train_runs_with_a_case_in_a_worker_process_and_ends_with_a_json_line(
    short_samples: None, text_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("transformers")
    monkeypatch.setattr(train, "IN_OWN_PROCESS", ("qkv-foreach",))  # the mechanism, without compiling
    flags = [*TINY, "--batch", "2", "--cases", "qkv,peer,qkv-foreach,qkv-float32,peer-bf16", "--text", str(text_file)]
    assert harness.main("train", train.Config, train.run, train.QUICK, flags) == 0
    out, err = capsys.readouterr()
    result = json.loads(out.splitlines()[-1])
    rows = {row["case"]: row for row in next(iter(result["tables"].values()))}
    assert set(rows) == {"qkv", "peer", "qkv-foreach", "qkv-float32", "peer-bf16"} and rows["peer"]["× peer"] == "1.00×"
    assert rows["peer-bf16"]["forward"] == "bfloat16" and rows["qkv-float32"]["forward"] == "float32"
    assert all(float(row["tokens/s"].replace(",", "")) > 0 for row in rows.values())
    assert [v["measure"] for v in result["verdicts"]] == ["qkv_over_peer", "qkv-compiled_over_peer"]
    assert result["verdicts"][1]["status"] == "SKIP" and "timing round 1/1" in err


@pytest.mark.slow
def test_a_worker_case_trains_like_the_same_case_here(text_file: Path) -> None:
    pytest.importorskip("transformers")
    config = train.Config(layers=1, heads=2, width=32, context=16, batch=2, batches=4, text=str(text_file))
    params = {"case": "qkv", "vocab_size": None, **vars(config)}
    with harness.worker("benchmarks.train", "worker_case", params, threads=1, timeout_s=300) as process:
        here = train.worker_case(**params)
        assert process.ask("run 3")["values"] == pytest.approx([float(here()) for _ in range(3)], abs=1e-6)


@pytest.mark.slow
def test_a_case_that_computes_something_else_stops_the_train_benchmark(
    short_samples: None, text_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("transformers")
    original = train.build_case

    def unlike(case: str, *args: Any, **kwargs: Any) -> Callable[[], torch.Tensor]:
        step = original(case, *args, **kwargs)
        return (lambda: step() + 1) if case == "peer" else step

    monkeypatch.setattr(train, "build_case", unlike)
    flags = [*TINY, "--batch", "2", "--cases", "qkv,peer", "--text", str(text_file)]
    assert harness.main("train", train.Config, train.run, train.QUICK, flags) == 1
    out, err = capsys.readouterr()
    assert out == "" and "do not compute the same thing" in err and "timing round" not in err


@pytest.mark.slow
@pytest.mark.skipif(not harness.memory_supported(), reason="needs Linux /proc/self/clear_refs")
def test_a_training_step_measures_its_memory_in_a_fresh_process() -> None:
    params = {"case": "qkv", "vocab_size": 20, **vars(train.Config(layers=1, heads=2, width=32, context=16, batch=2))}
    peak = harness.peak_in_fresh_process("benchmarks.train", "worker_case", params, threads=1, timeout_s=120)
    assert peak.resident_before > 50e6 and 0 < peak.peak_extra < 50e6  # Python and torch at rest, one small step


@pytest.mark.slow
def test_generate_runs_end_to_end_and_ends_with_a_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    assert harness.main("generate", generate.Config, generate.run, generate.QUICK, [*TINY, "--tokens", "20"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out.splitlines()[-1])
    rows = [(row["case"], row["tokens"]) for row in next(iter(result["tables"].values()))]
    assert rows == [("qkv", "20"), ("qkv-uncached", "20"), ("qkv", "15"), ("peer", "15")]
    assert {v["status"] for v in result["verdicts"]} <= {"PASS", "FAIL"} and "agree on the first 15 tokens" in err
