"""Mixed precision: bfloat16 products in the forward pass, float32 everywhere else, chosen once per run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qkv.attention import layer as layer_module
from qkv.errors import ConfigError
from qkv.shapes import Tensor
from qkv.training import CompileFailed, TrainConfig, configure_optimizer, load_checkpoint, loop, train_step
from qkv.training.data import get_batch
from qkv.training.precision import mixed_precision, native_bfloat16, resolve_precision

from .conftest import QUICK, Tiny

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "chosen"),
    [(True, False, "bfloat16"), (False, True, "bfloat16"), (True, True, "bfloat16"), (False, False, "float32")],
)
def test_auto_is_bfloat16_exactly_where_the_processor_multiplies_it_natively(
    amx: bool, avx512_bf16: bool, chosen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert native_bfloat16(CPU) == (chosen == "bfloat16")
    assert resolve_precision("auto", CPU) == chosen
    assert resolve_precision("float32", CPU) == "float32" and resolve_precision("bfloat16", CPU) == "bfloat16"
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16, got 'fp16'"):
        resolve_precision("fp16", CPU)


def test_an_unknown_precision_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"TrainConfig\.precision='half' is not one of"):
        TrainConfig(precision="half")  # type: ignore[arg-type]


def record_dtypes(model: nn.Module, monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.dtype]:
    """The output dtype of every projection and the dtype attention's scores are computed in, per call."""
    seen: dict[str, torch.dtype] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            module.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.dtype))
    real_attend = layer_module.attend

    def attend(queries: Tensor, keys: Tensor, values: Tensor, **options: object) -> tuple[Tensor, Tensor | None]:
        output, weights = real_attend(queries, keys, values, **options)  # type: ignore[arg-type]
        index = len([k for k in seen if k.startswith("attention")])
        seen[f"attention {index}"] = output.dtype  # what the scores and softmax were computed in
        return output, weights

    monkeypatch.setattr(layer_module, "attend", attend)
    return seen


def test_bfloat16_multiplies_the_projections_in_bfloat16_and_keeps_attention_and_state_float32(
    tiny: Tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny.model()
    dtypes = record_dtypes(model, monkeypatch)
    inputs, targets = get_batch(tiny.train_ids, 4, 16, torch.Generator().manual_seed(0))
    with mixed_precision("bfloat16", CPU):
        logits = model(inputs)
    projections = {name: dtype for name, dtype in dtypes.items() if not name.startswith("attention")}
    assert projections and set(projections.values()) == {torch.bfloat16}
    attention = {name: dtype for name, dtype in dtypes.items() if name.startswith("attention")}
    assert len(attention) == len(model.blocks) and set(attention.values()) == {torch.float32}  # scores, softmax
    F.cross_entropy(logits.float().flatten(0, 1), targets.flatten()).backward()
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert {p.grad.dtype for p in model.parameters() if p.grad is not None} == {torch.float32}


def losses(tiny: Tiny, precision: str, steps: int = 6) -> list[float]:
    model = tiny.model()
    optimizer = configure_optimizer(model, QUICK)
    generator = torch.Generator().manual_seed(1)
    values = []
    for _ in range(steps):
        inputs, targets = get_batch(tiny.train_ids, 4, 16, generator)
        values.append(train_step(model, optimizer, inputs, targets, 1.0, precision).item())
    return values


def test_a_bfloat16_step_follows_the_float32_step_closely_but_not_exactly(tiny: Tiny) -> None:
    full, mixed = losses(tiny, "float32"), losses(tiny, "bfloat16")
    assert mixed == pytest.approx(full, abs=2e-2)  # bfloat16 keeps 8 bits of mantissa: about 3 digits
    assert mixed != full  # it did run in a different precision


@pytest.mark.parametrize(("native", "chosen"), [(True, "bfloat16"), (False, "float32")])
def test_a_run_records_the_precision_auto_chose(
    tiny: Tiny, tmp_path: Path, native: bool, chosen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    config = TrainConfig(**{**QUICK.to_dict(), "steps": 2, "precision": "auto"})
    tiny.train(tiny.model(), tmp_path, config)
    assert load_checkpoint(tmp_path).train_config.precision == chosen  # never "auto"


def test_the_loss_is_float32_whatever_the_forward_pass(tiny: Tiny) -> None:
    from qkv.training.loop import language_model_loss

    inputs, targets = get_batch(tiny.train_ids, 4, 16, torch.Generator().manual_seed(0))
    loss: Tensor = language_model_loss(tiny.model(), inputs, targets, "bfloat16")
    assert loss.dtype == torch.float32


@pytest.mark.slow
def test_a_compiled_run_trains_like_an_eager_one(tiny: Tiny, tmp_path: Path) -> None:
    config = TrainConfig(**{**QUICK.to_dict(), "steps": 3, "precision": "float32"})
    eager = tiny.train(tiny.model(), tmp_path / "eager", config)
    compiled = tiny.train(tiny.model(), tmp_path / "compiled", TrainConfig(**{**config.to_dict(), "compile": True}))
    assert [loss for _, loss in compiled.progress.train_losses] == pytest.approx(
        [loss for _, loss in eager.progress.train_losses], abs=1e-4
    )
    assert load_checkpoint(tmp_path / "compiled").train_config.compile  # a resume compiles too


def test_a_compiler_failure_stops_with_one_line_naming_the_way_out(
    tiny: Tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch._dynamo.exc

    class Uncompilable(nn.Module):  # what torch.compile returns when the backend cannot build the graph
        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: Tensor) -> Tensor:
            raise torch._dynamo.exc.BackendCompilerFailed("inductor", RuntimeError("no C++ compiler"), None)

    def broken_compile(model: nn.Module) -> nn.Module:
        return Uncompilable(model)

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(loop, "can_compile", lambda device_type: True)  # a C++ compiler or not, the build fails
    config = TrainConfig(**{**QUICK.to_dict(), "steps": 2, "compile": True})
    with pytest.raises(CompileFailed, match=r"torch\.compile failed .*no C\+\+ compiler.*; train without --compile"):
        tiny.train(tiny.model(), tmp_path, config)
