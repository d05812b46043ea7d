"""``qkv serve``: its help imports no PyTorch; it prints its URL, answers at once and stops cleanly on Ctrl-C;
a flag it cannot honour is one line and exit status 2."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from qkv.cli.main import main

SOURCE = Path(__file__).resolve().parents[2] / "src"


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{SOURCE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_the_help_imports_no_torch() -> None:
    code = (
        "import sys\nfrom qkv.cli.main import main\n"
        "try:\n    main(['serve', '--help'])\nexcept SystemExit as exit:\n    assert exit.code == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout and "--runs" in result.stdout and "--open" in result.stdout


def test_making_the_app_imports_no_torch() -> None:
    code = (
        "import sys\nfrom qkv.serve.app import create_app\ncreate_app()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment(), timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--port", "70000"], ["--port", "0 to 65535"]),
        (["--runs", "no/such/folder"], ["--runs", "no such folder"]),
        (["--host", "no-such-host.invalid"], ["--host", "cannot resolve"]),
    ],
)
def test_flags_it_cannot_honour_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], words: list[str]
) -> None:
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qkv serve: error:") and "\n" not in err
    assert all(word in err for word in words), err


def test_a_port_in_use_is_refused_with_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert main(["serve", "--port", str(taken.getsockname()[1])]) == 2
    assert "--port 0" in capsys.readouterr().err


@pytest.mark.slow
def test_it_prints_its_url_answers_and_stops_on_ctrl_c(runs: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "qkv", "serve", "--port", "0", "--runs", str(runs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, line
        url = found.group(0)
        with urllib.request.urlopen(url + "api/health", timeout=10) as response:
            assert json.load(response) == {"ok": True, "version": main.__globals__["__version__"]}
            assert response.headers["content-security-policy"] == "default-src 'self'"
        with urllib.request.urlopen(url + "api/models", timeout=10) as response:
            assert "run:demo" in [model["name"] for model in json.load(response)["models"]]
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err
