"""qkv on a CUDA GPU: a check to run by hand on a machine that has one (no test runs it; nothing depends on it).

    PYTHONPATH=src python -m benchmarks.gpu_check          # needs torch built for CUDA and one GPU (1-2 minutes)
    PYTHONPATH=src python -m benchmarks.gpu_check --cpu    # the same checks on the CPU (gloo), to try the script

1. Fused attention (``scaled_dot_product_attention``'s CUDA kernels) equals the exact path, outputs and
   gradients: float32 and bfloat16; causal, padded and grouped-query; and the flash kernel itself runs the
   causal bfloat16 case (no fallback to PyTorch's unfused maths).
2. ``qkv train --shard`` under ``torchrun --nproc-per-node 1`` (FSDP2 over NCCL) reaches the losses of an
   unsharded run: in float32 within 1e-4, with bfloat16 autocast within 1e-2.
3. The sharded run's checkpoint loads with ``qkv.load`` and generates; on the GPU it computes the CPU's logits.

One line per check; the exit status is 1 if any failed. Every number compared is printed, so a tolerance that
is too tight on some GPU shows by how much.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "cats", "sit", "on", "mats")
TRAIN = ["--preset", "tiny", "--context", "64", "--steps", "12", "--eval-interval", "6", "--seed", "3"]
TRAIN += ["--batch-size", "8", "--lr", "3e-3", "--warmup", "2"]

failures: list[str] = []


def check(name: str, body: Callable[[], str]) -> None:
    """Run one check; print ``ok``/``FAIL`` with what it measured."""
    try:
        print(f"ok    {name}: {body()}", flush=True)
    except Exception as error:  # a check script reports every failure and goes on
        failures.append(name)
        print(f"FAIL  {name}: {type(error).__name__}: {' '.join(str(error).split())[:600]}", flush=True)


def attention_parity(device: torch.device, dtype: torch.dtype, case: str) -> str:
    from qkv.attention.kernels import exact_attention, fused_attention

    generator = torch.Generator(device="cpu").manual_seed(0)
    B, H, G, T, K = 2, 8, 8, 256, 64
    if case == "grouped-query":
        G = 2
    queries, keys, values = (
        torch.randn(B, heads, T, K, generator=generator).to(device, dtype).requires_grad_() for heads in (H, G, G)
    )
    mask = None
    if case == "padded":
        mask = torch.ones(B, 1, 1, T, dtype=torch.bool, device=device)  # (B, 1, 1, S)
        mask[1, ..., T // 3 :] = False  # the second sequence's last two thirds are padding
    causal = case != "padded"
    upstream = torch.randn(B, H, T, K, generator=generator).to(device, dtype)
    fused = fused_attention(queries, keys, values, causal=causal, mask=mask)
    fused_grads = torch.autograd.grad(fused, (queries, keys, values), upstream)
    # the reference: the exact path in float32, whatever the dtype under test
    inputs = [x.detach().float().requires_grad_() for x in (queries, keys, values)]
    reference, _ = exact_attention(*inputs, causal=causal, mask=mask)
    reference_grads = torch.autograd.grad(reference, inputs, upstream.float())
    tolerance = 1e-4 if dtype == torch.float32 else 2e-2
    worst = 0.0
    pairs = zip(("output", "dq", "dk", "dv"), (fused, *fused_grads), (reference, *reference_grads), strict=True)
    for name, got, want in pairs:
        difference = (got.float() - want).abs().max().item()
        worst = max(worst, difference)
        scale = want.abs().max().item()
        if difference > tolerance * max(1.0, scale):
            raise AssertionError(f"{name} differs by {difference:.2e} (largest value {scale:.2f})")
    return f"largest difference {worst:.2e} (tolerance {tolerance:g} × max(1, |largest|))"


def flash_runs(device: torch.device) -> str:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from qkv.attention.kernels import fused_attention

    queries = torch.randn(2, 8, 256, 64, device=device, dtype=torch.bfloat16)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):  # raises if the flash kernel cannot take this call
        fused_attention(queries, queries, queries, causal=True)
    return "the causal bfloat16 call runs on SDPBackend.FLASH_ATTENTION alone"


def losses(run: Path) -> list[float]:
    return [loss for _, loss in json.loads((run / "checkpoint" / "progress.json").read_text())["train_losses"]]


def train(folder: Path, name: str, precision: str, *, shard: bool, environment: dict[str, str]) -> list[float]:
    """``qkv train`` in a subprocess, sharded under ``torchrun --nproc-per-node 1`` or plain; its losses."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1"]
    command = [*(launcher if shard else [sys.executable]), "-m", "qkv", "train", str(folder / "words.txt")]
    command += [*TRAIN, "--precision", precision, "--out", str(folder / name), *(["--shard"] if shard else [])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[-12:])} failed: {done.stderr[-1500:]}")
    return losses(folder / name)


def same_losses(folder: Path, precision: str, tolerance: float, environment: dict[str, str]) -> str:
    plain = train(folder, f"plain-{precision}", precision, shard=False, environment=environment)
    sharded = train(folder, f"sharded-{precision}", precision, shard=True, environment=environment)
    worst = max(abs(a - b) for a, b in zip(plain, sharded, strict=True))
    if worst > tolerance:
        raise AssertionError(f"losses differ by {worst:.2e} (> {tolerance:g}): {plain} vs {sharded}")
    return f"{len(plain)} steps, last loss {sharded[-1]:.4f}, largest difference {worst:.2e} (tolerance {tolerance:g})"


def loads_and_generates(folder: Path, device: torch.device) -> str:
    """The sharded run's checkpoint as users load it (weights in CPU memory): it generates, and on the device it
    computes the logits it computes on the CPU."""
    import qkv
    from qkv.generation import SamplingConfig

    model = qkv.load(folder / "sharded-float32")
    text = model.generate("the quick", 20, sampling=SamplingConfig(temperature=0.0))
    ids = torch.tensor([model.encode("the quick brown fox")])  # (1, T)
    with torch.no_grad():
        on_cpu = model.model(ids)
        on_device = model.model.to(device)(ids.to(device)).cpu()
    difference = (on_cpu - on_device).abs().max().item()
    if difference > 1e-4:
        raise AssertionError(f"logits on {device} differ from the CPU's by {difference:.2e}")
    return f"greedy: {text!r}; logits on {device} = on the CPU within {difference:.1e}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="run the checks on the CPU (gloo) to try the script")
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA GPU here (torch.cuda.is_available() is False); run on a GPU machine, or with --cpu")
        return 2
    device = torch.device("cpu" if args.cpu else "cuda")
    name = "CPU" if args.cpu else torch.cuda.get_device_name()
    print(f"torch {torch.__version__} on {name}", flush=True)
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    if args.cpu:
        environment["CUDA_VISIBLE_DEVICES"] = ""  # qkv train picks the GPU whenever it sees one

    for dtype in (torch.float32, torch.bfloat16):
        for case in ("causal", "padded", "grouped-query"):
            label = f"fused = exact attention, {str(dtype).removeprefix('torch.')}, {case}"
            check(label, functools.partial(attention_parity, device, dtype, case))
    if not args.cpu:
        check("flash kernel", lambda: flash_runs(device))

    with tempfile.TemporaryDirectory(prefix="qkv-gpu-check-") as temporary:
        folder = Path(temporary)
        rng = random.Random(0)
        lines = (" ".join(rng.choice(WORDS) for _ in range(7)) for _ in range(400))
        (folder / "words.txt").write_text("\n".join(lines) + "\n")
        check("--shard = unsharded, float32", lambda: same_losses(folder, "float32", 1e-4, environment))
        check("--shard = unsharded, bfloat16", lambda: same_losses(folder, "bfloat16", 1e-2, environment))
        check("qkv.load + generate", lambda: loads_and_generates(folder, device))
    print("all checks passed" if not failures else f"{len(failures)} failed: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
