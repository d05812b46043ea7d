"""The threading policy of qkv's commands: a short OpenMP spin chosen before PyTorch loads, one thread for small
decoding, and a user's own settings never overridden."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from qkv import threads


@pytest.fixture(autouse=True)
def _torch_threads_restored() -> object:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def python(code: str, **environ: str) -> str:
    """What ``python -c CODE`` prints, with ``environ`` and none of the OpenMP settings of this process."""
    clean = {key: value for key, value in os.environ.items() if key not in threads.WAIT_SETTINGS}
    done = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **environ}, capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip()


# `qkv models` imports no PyTorch; the process then reports the environment libgomp would read at its import.
THROUGH_THE_COMMAND = (
    "import os, sys; from qkv.cli.main import main; main(['models']); "
    "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
)


def test_the_command_sets_a_short_spin_before_torch_is_imported() -> None:
    assert python(THROUGH_THE_COMMAND).splitlines()[-1] == f"{threads.SPIN_COUNT} None False"


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("OMP_WAIT_POLICY", "PASSIVE", "None PASSIVE False"),
        ("OMP_WAIT_POLICY", "ACTIVE", "None ACTIVE False"),
        ("GOMP_SPINCOUNT", "123", "123 None False"),
        ("KMP_BLOCKTIME", "0", "None None False"),
    ],
)
def test_a_users_own_wait_setting_is_left_alone(setting: str, value: str, expected: str) -> None:
    assert python(THROUGH_THE_COMMAND, **{setting: value}).splitlines()[-1] == expected


def test_the_policy_sets_only_the_spin_count_and_says_what_it_set() -> None:
    code = "from qkv import threads; e = {'PATH': '/bin'}; print(threads.choose_wait_policy(e), e)"
    spin = f"'GOMP_SPINCOUNT': '{threads.SPIN_COUNT}'"
    assert python(code) == f"{{{spin}}} {{'PATH': '/bin', {spin}}}"


def test_once_torch_is_loaded_it_is_too_late_and_nothing_is_set() -> None:
    environ: dict[str, str] = {}
    assert "torch" in sys.modules and threads.choose_wait_policy(environ) == {} and environ == {}


def test_the_module_imports_no_torch() -> None:
    assert python("import sys, qkv.threads, qkv.cli.main; print('torch' in sys.modules)") == "False"


def test_small_models_decode_on_one_thread_larger_ones_on_every_idle_core() -> None:
    assert threads.decode_threads(110_000) == 1 and threads.decode_threads(threads.ONE_THREAD_PARAMETERS) == 1
    large = threads.ONE_THREAD_PARAMETERS + 1
    assert threads.decode_threads(large, busy=0.0, cores=2) is None  # PyTorch's default
    assert threads.decode_threads(135_000_000, busy=0.4, cores=2) is None
    assert threads.decode_threads(135_000_000, busy=0.6, cores=2) == 1  # another program keeps a core busy
    assert threads.decode_threads(135_000_000, busy=3.2, cores=2) == 1  # at least one
    assert threads.decode_threads(135_000_000, busy=2.9, cores=8) == 5
    assert threads.decode_threads(110_000, busy=5.0, cores=8) == 1


def test_the_busy_cores_are_measured_between_none_and_all() -> None:
    assert 0.0 <= threads.busy_cores(0.05) <= (os.cpu_count() or 1) + 0.5


def test_use_threads_sets_torchs_count() -> None:
    torch.set_num_threads(2)
    assert threads.use_threads(1, environ={}) and torch.get_num_threads() == 1


@pytest.mark.parametrize("setting", threads.THREAD_SETTINGS)
def test_a_users_thread_count_is_left_alone(setting: str) -> None:
    torch.set_num_threads(2)
    assert not threads.use_threads(1, environ={setting: "2"}) and torch.get_num_threads() == 2


def test_no_count_changes_nothing() -> None:
    torch.set_num_threads(2)
    assert not threads.use_threads(None, environ={}) and torch.get_num_threads() == 2
