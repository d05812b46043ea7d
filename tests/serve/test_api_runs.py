"""Runs under ``--runs``: found by folder, listed as ``run:<name>``, their loss curve served from
``progress.json`` with the snapshots ``qkv train --watch`` stored; anything else is a one-line 404."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from starlette.testclient import TestClient

from qkv.model import Transformer
from qkv.serve.runs import find_runs, training_data

from .conftest import BASE, make_run, new_app
from .test_api_basics import assert_refused

TEXT = "a cat sat on the mat"


def test_the_loss_curve_is_the_run_s_progress(client: TestClient, runs: Path) -> None:
    progress = json.loads((runs / "demo" / "checkpoint" / "progress.json").read_text())
    for name in ("demo", "run:demo"):
        data = client.get(f"/api/runs/{name}/training").json()
        assert data["steps"] == [step for step, _ in progress["train_losses"]] == [1, 2, 3, 4]
        assert data["loss"] == [loss for _, loss in progress["train_losses"]]
        assert data["val_loss"] == [None, 3.4, None, 3.1]
        assert data["traces"] == []


def test_unknown_runs_are_404s_that_name_the_runs(client: TestClient) -> None:
    assert_refused(client.get("/api/runs/notes/training"), 404, "no run 'notes'", "run:demo")
    assert_refused(client.get("/api/runs/..%2F..%2Fetc/training"), 404)


def test_without_runs_there_are_none(static: Path) -> None:
    with TestClient(new_app(None, static), base_url=BASE) as client:
        assert [m["name"] for m in client.get("/api/models").json()["models"]] == ["minilm", "smollm2"]
        assert_refused(client.get("/api/runs/demo/training"), 404, "--runs")
        assert_refused(client.post("/api/trace", json={"model": "run:demo", "text": "a"}), 404, "unknown model")


def test_a_runs_folder_that_is_itself_a_run_is_listed(tmp_path: Path) -> None:
    run = make_run(tmp_path / "solo")
    assert list(find_runs(run)) == ["run:solo"]
    assert find_runs(tmp_path / "missing") == {} and find_runs(None) == {}


def test_damaged_progress_gives_an_empty_curve_not_an_error(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r")
    (run / "checkpoint" / "progress.json").write_text('{"train_losses": [[1, "x"], [2, NaN], [3, 1.5], "junk"]}')
    assert training_data(run) == {"steps": [3], "loss": [1.5], "val_loss": [None], "traces": []}
    (run / "checkpoint" / "progress.json").write_text("not json")
    assert training_data(run)["steps"] == []
    (run / "checkpoint" / "config.json").write_text("[]")
    assert find_runs(tmp_path) == {}


def test_the_snapshots_of_a_watched_run_are_served_as_its_overview_draws_them(static: Path, tmp_path: Path) -> None:
    from qkv.training import load_checkpoint, load_weights
    from qkv.training.watch import Watch

    run = make_run(tmp_path / "watched")
    checkpoint = load_checkpoint(run)
    model = Transformer(checkpoint.model_config)
    load_weights(model, checkpoint)
    watch = Watch(TEXT, model, checkpoint.tokenizer_json, run, interval=2)
    for step in (0, 2, 4):
        watch.snapshot(step)
    (run / "watch" / "step-000003.json").write_text("{damaged")  # skipped, not an error
    with TestClient(new_app(tmp_path, static), base_url=BASE) as client:
        traces = client.get("/api/runs/run:watched/training").json()["traces"]
        overview = client.post("/api/trace", json={"model": "run:watched", "text": TEXT}).json()
    assert [trace["step"] for trace in traces] == [0, 2, 4]
    for trace in traces:
        assert set(trace) == {"step", "tokens", "layers", "heads", "thumbs", "metrics"}
        assert (trace["layers"], trace["heads"]) == (len(overview["layers"]), overview["heads"]) == (2, 4)
        assert trace["tokens"] == overview["tokens"] == list(TEXT)
        assert trace["thumbs"] == overview["thumbs"]  # the checkpoint's weights, the server's own thumbnails
        for name, values in trace["metrics"].items():
            np.testing.assert_allclose(values, overview["metrics"][name], rtol=1e-4, atol=1e-6)
