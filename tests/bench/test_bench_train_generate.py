"""``qkv bench train`` and ``qkv bench generate``: they run end to end at a tiny size, the peer and qkv hold the
same weights and compute the same thing, a disagreement stops a benchmark before timing, the FLOP estimate is
the published formula, and the verdicts follow the targets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from qkv.bench import BenchmarkError, generate, memory, peers, timing, train
from qkv.cli.main import main
from qkv.model import Transformer, preset
from qkv.training.precision import resolve_precision

pytest.importorskip("transformers")

TINY_TRAIN = ["--layers", "1", "--heads", "2", "--width", "32", "--context", "16", "--batch", "2", "--repeats", "1"]
TINY_GENERATE = ["--layers", "1", "--heads", "2", "--width", "32", "--context", "16", "--tokens", "20"]


@pytest.fixture
def short_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timing, "MIN_SAMPLE_S", 0.01)  # a short sample is enough to prove it runs
    monkeypatch.setattr(train, "PEAK_MATMUL", 64)


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text("To be, or not to be, that is the question.\n" * 40, encoding="utf-8")
    return path


def test_the_peer_and_its_qkv_twin_compute_the_same_logits() -> None:
    config = preset("small", vocab_size=20, context=16, width=32, heads=2, layers=2)
    peer = peers.gpt2_peer(config, seed=3).eval()
    twin = peers.qkv_twin(peer, config)
    ids = torch.randint(20, (2, 16))
    with torch.inference_mode():
        torch.testing.assert_close(twin(ids), peer(ids).logits, rtol=1e-5, atol=1e-5)
    twin.embedding.tokens.weight.data.zero_()  # the twin holds copies: training one leaves the other alone
    assert peer.transformer.wte.weight.abs().sum() > 0


def test_the_flop_estimate_is_six_per_weight_plus_attention() -> None:
    config = preset("small", vocab_size=65)  # 4 layers, width 128, context 64
    model = Transformer(config)
    per_layer = 12 * 128 * 128 + 9 * 128 + 4 * 128  # q, k, v, out, hidden, out weights; their biases; two norms
    weights = 4 * per_layer + 65 * 128 + 2 * 128  # blocks, tied token embedding, final norm
    assert train.flops_per_token(model) == 6 * weights + 12 * 4 * 128 * 64


def test_the_train_benchmark_runs_every_case_through_the_cli(
    short_samples: None, text_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = "qkv,peer,qkv-foreach,peer-fused,qkv-float32,peer-bf16"
    assert main(["bench", "train", *TINY_TRAIN, "--cases", cases, "--text", str(text_file), "--no-memory"]) == 0
    out, err = capsys.readouterr()
    pattern = r"^(?P<case>[\w-]+)\s+(?P<precision>float32|bfloat16)\s+(?P<cells>[\d.,]+ .+)$"
    matches = list(re.finditer(pattern, out, re.M))
    rows = {m["case"]: m["cells"].split() for m in matches}
    assert set(rows) == set(cases.split(",")), out
    precisions = {m["case"]: m["precision"] for m in matches}
    auto = resolve_precision("auto", torch.device("cpu"))
    assert precisions == {
        "qkv": auto,
        "qkv-foreach": auto,
        "qkv-float32": "float32",
        "peer": "float32",
        "peer-fused": "float32",
        "peer-bf16": "bfloat16",
    }
    for case, cells in rows.items():
        ms, best_ms, tokens_per_s = float(cells[0]), float(cells[1]), float(cells[2].replace(",", ""))
        assert ms >= best_ms > 0 and tokens_per_s > 0, case
    assert rows["peer"][3] == "1.00×"
    assert re.search(r"^(PASS|FAIL)  qkv train trains at ≥ 2× the peer's tokens/s", out, re.M)
    assert "the losses agree" in err and "timing round 1/1" in err


def test_a_case_in_a_process_of_its_own_trains_like_the_same_case_here(text_file: Path) -> None:
    from qkv.bench.step_worker import StepWorker

    params = {"case": "qkv", "layers": 1, "heads": 2, "width": 32, "context": 16, "batch": 2}
    params.update(batches=4, seed=0, text=str(text_file))
    worker = StepWorker("qkv.bench.train", "timing_case", params, checked_steps=3, threads=1)
    try:
        here = train.timing_case(**params)  # type: ignore[arg-type]
        assert worker.losses == pytest.approx([float(here()) for _ in range(3)], abs=1e-6)
        worker.steps_per_call = 2
        worker()  # two more steps there; the pipe answers
    finally:
        worker.close()
    assert worker._process.returncode == 0


def test_the_train_benchmark_times_a_case_in_its_own_process_with_the_others(
    short_samples: None, text_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train, "IN_OWN_PROCESS", ("qkv-foreach",))  # the mechanism, without compiling
    arguments = [*TINY_TRAIN, "--cases", "qkv,peer,qkv-foreach", "--text", str(text_file), "--no-memory"]
    assert main(["bench", "train", *arguments]) == 0
    out, err = capsys.readouterr()
    assert "qkv-foreach: 3 checked steps (also the warm-up; in a process of its own)" in err
    assert "the losses agree" in err
    assert re.search(r"^qkv-foreach\s+\w+\s+[\d.]+\s+[\d.]+\s+[\d,]+\s+[\d.]+×", out, re.M), out


def test_a_case_that_computes_something_else_stops_the_train_benchmark(
    short_samples: None, text_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    original = train.build_case

    def unlike(name: str, *args: object, **kwargs: object) -> train.StepCase:
        case = original(name, *args, **kwargs)  # type: ignore[arg-type]
        if name == "peer":
            torch.nn.init.normal_(case.model.peer.transformer.wte.weight)  # type: ignore[union-attr]
        return case

    monkeypatch.setattr(train, "build_case", unlike)
    assert main(["bench", "train", *TINY_TRAIN, "--text", str(text_file), "--no-memory"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "do not compute the same thing" in err and "timing round" not in err


@pytest.mark.skipif(not memory.supported(), reason="needs Linux /proc/self/clear_refs")
def test_a_training_step_measures_its_memory_in_a_fresh_process() -> None:
    params = {"case": "qkv", "layers": 1, "heads": 2, "width": 32, "context": 16, "batch": 2, "vocab_size": 20}
    peak = memory.measure_peak_in_subprocess(
        memory.MemoryCase("qkv.bench.train", "memory_case", {**params, "seed": 0}), threads=1, timeout_s=120
    )
    assert peak.resident_before > 50e6  # Python and torch at least
    assert 0 < peak.peak_extra < 50e6 and peak.peak_resident == peak.resident_before + peak.peak_extra


def test_the_generate_benchmark_runs_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "generate", *TINY_GENERATE, "--repeats", "1", "--no-memory"]) == 0
    out, err = capsys.readouterr()
    rows = re.findall(r"^(qkv|qkv-uncached|peer)\s+(\d+)\s+[\d.]+\s+[\d,]+", out, re.M)
    assert rows == [("qkv", "20"), ("qkv-uncached", "20"), ("qkv", "15"), ("peer", "15")], out
    assert re.search(r"^(PASS|FAIL)  20 tokens cached ≥ 5× faster", out, re.M)
    assert re.search(r"^(PASS|FAIL)  ≥ 2× the peer's cached generate, 15 tokens each", out, re.M)
    assert "the cases agree on the first 15 tokens" in err


def test_cases_that_pick_different_tokens_stop_the_generate_benchmark() -> None:
    same, other = torch.tensor([[1, 2, 3, 4]]), torch.tensor([[1, 2, 5, 4]])
    assert generate._check_agreement({"a": same, "b": same.clone()}, 4) == 4
    with pytest.raises(BenchmarkError, match="b picks token 5 at position 2, a picks 3"):
        generate._check_agreement({"a": same, "b": other}, 4)
    assert generate._check_agreement({"a": same, "b": other}, 2) == 2  # past the compared length: no matter


@pytest.mark.parametrize(
    ("qkv_s", "uncached_s", "peer_s", "expected"), [(1, 6, 2.1, ["PASS", "PASS"]), (1, 4, 1.5, ["FAIL", "FAIL"])]
)
def test_the_generate_verdicts_follow_the_targets(
    qkv_s: float, uncached_s: float, peer_s: float, expected: list[str]
) -> None:
    config = generate.GenerateBenchConfig(tokens=500, context=256)

    def result(label: str, tokens: int, seconds: float) -> generate.RunResult:
        return generate.RunResult(label, label.split()[0], tokens, (seconds, seconds), seconds, None)

    runs = {
        "qkv 500": result("qkv 500", 500, qkv_s),
        "qkv-uncached 500": result("qkv-uncached 500", 500, uncached_s),
        "qkv 255": result("qkv 255", 255, qkv_s * 255 / 500),
        "peer 255": result("peer 255", 255, peer_s * 255 / 500),
    }
    report = generate.GenerateReport(config, 2, torch.__version__, "test", runs, 255, None)
    assert [v.status for v in generate.verdicts(report)] == expected
