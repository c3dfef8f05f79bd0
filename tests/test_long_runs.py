"""Runs beyond the cell: per-epoch history and curves, progress within epochs, background runs
that outlive the process that started them, cancel, reproduce — through the API, the magic and
the CLI."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.display.curves import curves_figure, curves_png, metric_panels
from mlmd_magic.errors import TrainingError, ValidationError
from mlmd_magic.store import BackgroundRun, ProgressReporter
from mlmd_magic.store.maintenance import Owner

from .test_magics import run

CLI = shutil.which("mlmd-magic") or str(Path(sys.executable).parent / "mlmd-magic")


@pytest.fixture(scope="module")
def nipt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return datasets.simulate_nipt(str(tmp_path_factory.mktemp("nipt")), n_train=300, n_eval=100, n_test=100)


def _setup(s: mm.Store, data: dict[str, Any], epochs: int = 3) -> mm.Store:
    s.add_datasource("nipt-sim", **data)
    s.add_scenario("mlp-small", model="mlp", params={"hidden": [16], "learning_rate": 0.01, "batch_size": 32,
                                                     "epochs": epochs, "seed": 1})
    s.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    return s


@pytest.fixture
def uri(tmp_path: Path, nipt: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    uri = f"sqlite:///{tmp_path}/long.sqlite"
    _setup(mm.connect(uri), nipt).close()
    return uri


def _cli(uri: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "--uri", uri, *args], capture_output=True, text=True, timeout=timeout)


def _until(predicate: Any, timeout: float = 180, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# ---------------------------------------------------------------------------- history and curves


def test_history_is_written_each_epoch_and_readable_while_the_run_goes_on(uri: str) -> None:
    store = mm.connect(uri)
    other = mm.connect(uri)  # another connection, as another process would read it
    seen: list[tuple[str, int, list[float]]] = []
    compared: list[int] = []

    class Look:
        def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
            # the run's own thread writes each epoch's progress, without holding the training up
            deadline = time.monotonic() + 30
            while (progress := other.watch("t21@1")).epoch < epoch + 1 and time.monotonic() < deadline:
                time.sleep(0.02)  # its latest run: the one going on
            seen.append((progress.state, progress.epoch, progress.history["val_loss"]))
            compared.append(len(other.compare(["t21@1"]).runs[0]["history"]["loss"]))  # curves of a running run

    run = store.train("t21", callbacks=[Look()], progress=False)
    assert [(state, epoch, len(values)) for state, epoch, values in seen] == [
        ("RUNNING", 1, 1), ("RUNNING", 2, 2), ("RUNNING", 3, 3)]
    assert compared == [1, 2, 3]
    final = other.watch(run.id)
    assert final.state == "COMPLETE" and final.history == run.history
    assert set(final.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert final.history["val_loss"] == seen[-1][2]
    assert "data:image/png;base64," in final._repr_html_()
    assert final.epoch_lines()[0].startswith("Epoch 1/3 - accuracy: ")

    comparison = store.compare([run.id])
    assert "data:image/png;base64," in comparison._repr_html_()


def test_curves_have_a_panel_per_metric_epoch_ticks_and_a_log_scale_option() -> None:
    history = {"loss": [2.0, 0.2, 0.02], "val_loss": [2.5, 0.3, 0.05], "auc": [0.5, 0.8, 0.9],
               "val_auc": [0.5, 0.7, 0.85], "accuracy": [0.5, 0.7, 0.9]}
    assert metric_panels(history) == ["loss", "auc", "accuracy"]
    fig = curves_figure({"t21@1#1": history, "t21@2#1": {"loss": [1.0, 0.5]}}, log_loss=True, epochs=5)
    loss, auc, _ = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["loss", "auc", "accuracy"]
    assert loss.get_yscale() == "log" and auc.get_yscale() == "linear"
    fig.canvas.draw()
    ticks = [t for t in loss.get_xticks() if 1 <= t <= 5]
    assert ticks and all(float(t).is_integer() for t in ticks) and loss.get_xlabel() == "epoch"
    labels = [line.get_label() for line in loss.get_lines()]
    assert labels == ["t21@1#1 train", "t21@1#1 validation", "t21@2#1 train"]
    assert [line.get_linestyle() for line in auc.get_lines()] == ["-", "--"]  # training solid, validation dashed
    assert curves_figure({"a": history}).axes[0].get_yscale() == "linear"
    png = curves_png({"a": history}, log_loss=True)
    assert png.startswith(b"\x89PNG")


def test_a_notebook_gets_a_moving_bar_and_curves_as_png(uri: str, ip: Any) -> None:
    from IPython.utils.capture import capture_output

    store = mm.connect(uri)
    with capture_output() as captured:  # IPython's own capturing display publisher
        store.train("t21", progress=ProgressReporter(notebook=True, log_loss=True, interval_s=0.0))
    html = [o.data["text/html"] for o in captured.outputs if "text/html" in o.data]
    pngs = [o.data["image/png"] for o in captured.outputs if "image/png" in o.data]
    assert any("<progress value='1' max='30'" in h for h in html)  # moves within the first epoch (10 steps)
    assert any("epoch 3/3: 10/10 ━" in h for h in html) and "complete after 3 epochs" in html[-1]
    assert pngs  # the curves, drawn after the first epoch and once more at the end


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_steps_are_throttled_and_terminal_lines_keras_style() -> None:
    """5000 steps of 1 ms on the reporter's clock (the test's: no wall clock involved): in a
    terminal the bar is drawn once per 0.25 s interval, not once per step; in a log file only
    the epoch's keras-style line is written."""

    class Clock:
        now = 100.0

        def __call__(self) -> float:
            return self.now

    for out in (_Terminal(), io.StringIO()):
        clock = Clock()
        reporter = ProgressReporter(stream=out, notebook=False, interval_s=0.25, clock=clock)
        reporter.on_train_begin({"model": "mlp", "device": "cpu", "backend": "tensorflow", "epochs": 2,
                                 "steps": 5000})
        for step in range(5000):
            clock.now += 0.001
            reporter.on_batch_end(step, {"loss": 0.5})
        if out.isatty():
            assert 1 <= reporter.draws <= 1 + 5.0 / 0.25  # one draw per interval, not one per step
        else:
            assert reporter.draws == 0  # nothing is drawn within an epoch: the epoch's line says it all
        reporter.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.6})
        text = out.getvalue()
        assert "5000/5000 ━━━━━━━━━━━━━━━━━━━━ 5s 1ms/step - loss: 0.5 - val_loss: 0.6" in text
        assert ("Epoch 1/2\n\r" if out.isatty() else "Epoch 1/2\n5000/5000 ") in text
        assert text.rstrip().endswith("Epoch 2/2")
        assert reporter.history == {"loss": [0.5], "val_loss": [0.6]}


# ---------------------------------------------------------------------------- background runs


@pytest.mark.slow
def test_a_background_run_outlives_its_starter_and_is_watched_from_another_process(uri: str) -> None:
    started = _cli(uri, "train", "t21", "--background")  # a process that ends once the run is recorded
    assert started.returncode == 0, started.stderr
    found = re.fullmatch(r"started run (\S+) \(run:(\d+)\) on process (\d+), its output in \S+/background/\1\.log; "
                         r"follow it with %mlmd watch run:\2, stop it with %mlmd cancel run:\2\n", started.stdout)
    assert found, started.stdout
    name, run_id, pid = found.group(1), int(found.group(2)), int(found.group(3))
    assert name == "t21@1#1"  # its starter has ended by now; the worker trains on
    (execution,) = mm.connect(uri).mlmd.get_executions_by_id([run_id])
    assert Owner.parse(execution.properties["owner"].string_value).pid == pid
    watched = _cli(uri, "watch", f"run:{run_id}", "--interval", "0.5")  # a second process follows it to the end
    assert watched.returncode == 0, watched.stderr
    assert "Epoch 1/3 - accuracy: " in watched.stdout and "Epoch 3/3" in watched.stdout
    assert watched.stdout.rstrip().endswith(f"run {name} (#{run_id}): COMPLETE, epoch 3/3")
    store = mm.connect(uri)
    done = store.run(run_id)
    assert done.state == "COMPLETE" and Path(done.model_uri or "").exists() and len(done.history["loss"]) == 3
    assert store.ls("runs", where="state == 'RUNNING'").empty
    running = _cli(uri, "ls", "runs", "--running")
    assert running.returncode == 0 and "(no records)" in running.stdout


@pytest.mark.slow
def test_cancel_stops_a_background_run_with_no_model(uri: str) -> None:
    store = mm.connect(uri)
    handle = store.train("t21", epochs=500, wait=False)
    assert isinstance(handle, BackgroundRun) and handle.state == "RUNNING"
    _until(lambda: store.watch(handle.id).epoch >= 1, what="a first epoch")
    assert list(store.ls("runs", where="state == 'RUNNING'")["run"]) == [handle.id]
    cancelled = _cli(uri, "cancel", f"run:{handle.id}")  # from another process
    assert cancelled.returncode == 0, cancelled.stderr
    assert re.match(rf"run {re.escape(handle.name)} cancelled after \d+ of \d+ epochs", cancelled.stdout)
    assert handle.state == "CANCELED"
    assert store.run(handle.id).model_id is None
    assert "CancelRun" in store.watch(handle.id).error
    with pytest.raises(TrainingError, match="CANCELED"):
        handle.wait(timeout_s=5)
    with pytest.raises(ValidationError, match="only a running run can be cancelled"):
        store.cancel(handle.id)
    handle.process.wait(timeout=60)  # the worker ended after recording it


@pytest.mark.slow
def test_a_background_run_whose_process_dies_is_marked_failed(uri: str) -> None:
    store = mm.connect(uri)
    handle = store.train("t21", epochs=500, wait=False)
    _until(lambda: store.watch(handle.id).epoch >= 1, what="a first epoch")
    os.killpg(handle.process.pid, signal.SIGKILL)  # the worker we started, and only it
    handle.process.wait(timeout=30)
    reopened = mm.connect(uri)
    assert reopened.reaped_runs == [handle.id]
    assert reopened.watch(handle.id).state == "FAILED"
    assert f"its process {handle.process.pid} on " in reopened.watch(handle.id).error


@pytest.mark.slow
def test_two_stores_sharing_a_runs_folder_keep_their_background_logs_apart(uri: str, tmp_path: Path,
                                                                           nipt: dict[str, Any]) -> None:
    """Both stores have a run t21@1#1: the second one's log is t21@1#1-2.log, its start line says so."""
    other = _setup(mm.connect(f"sqlite:///{tmp_path}/other.sqlite"), nipt)
    store = mm.connect(uri)
    assert store.runs_root() == other.runs_root()
    first = store.train("t21", wait=False)
    second = other.train("t21", wait=False)
    assert first.name == second.name == "t21@1#1"
    folder = Path(store.runs_root()) / "background"
    assert first.log == str(folder / "t21@1#1.log") and second.log == str(folder / "t21@1#1-2.log")
    assert f"its output in {second.log};" in repr(second)
    first.wait(timeout_s=240)
    second.wait(timeout_s=240)
    assert sorted(p.name for p in folder.iterdir()) == ["t21@1#1-2.log", "t21@1#1.log"]  # no first names left
    for handle in (first, second):
        handle.process.wait(timeout=60)
        assert Path(handle.log).read_text().rstrip().endswith("run t21@1#1: COMPLETE")
    assert os.stat(first.log).st_ino != os.stat(second.log).st_ino


def test_background_runs_need_a_store_other_processes_can_open(nipt: dict[str, Any]) -> None:
    store = _setup(mm.connect("memory://"), nipt)
    with pytest.raises(ValidationError, match="another process can open"):
        store.train("t21", wait=False)
    with pytest.raises(ValidationError, match="needs a MySQL store"):
        _setup(mm.connect("sqlite:///" + nipt["uri"] + "/../ray.sqlite"), nipt).train("t21", on="ray://127.0.0.1:1")


@pytest.mark.slow
def test_magic_train_background_watch_and_cancel(ip: Any, uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(ip, f"%mlmd connect {uri}")
    started = run(ip, "%mlmd train t21 --set epochs=500 --background -o bg")
    handle = ip.user_ns["bg"]
    assert started is handle and f"started run {handle.name} (run:{handle.id}) on process " in repr(started)
    assert run(ip, "%mlmd watch {bg.name} --once") is None  # the handle's name, as IPython fills it in
    store = mm.connect(uri)
    _until(lambda: store.watch(handle.id).epoch >= 1, what="a first epoch")
    listing = run(ip, "%mlmd ls runs --running")
    assert list(listing["run"]) == [handle.id]
    assert run(ip, f"%mlmd watch run:{handle.id} --once") is None  # drawn in place, not returned
    stopped = run(ip, f"%mlmd cancel run:{handle.id}")
    assert f"run {handle.name} cancelled after " in stopped.text
    assert run(ip, "%mlmd ls runs --running").empty
    handle.process.wait(timeout=60)


# ---------------------------------------------------------------------------- reproduce


@pytest.mark.slow
def test_reproduce_matches_on_cpu_and_names_a_changed_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            ip: Any) -> None:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    data = datasets.simulate_nipt(str(tmp_path / "data"), n_train=200, n_eval=50, n_test=50)
    uri = f"sqlite:///{tmp_path}/rep.sqlite"
    store = _setup(mm.connect(uri), data, epochs=2)
    first = store.train("t21", progress=False)

    same = store.reproduce(f"model:{first.model_id}", progress=False)
    assert same.reproduced and same.verdict == "reproduced" and same.tolerance == 1e-6
    assert same.new_model_id not in (None, first.model_id)
    assert same.metrics["test"]["loss"][0] == same.metrics["test"]["loss"][1]  # equal on CPU, same seed
    execution = store.mlmd.get_executions_by_id([same.id])[0]
    events = store.mlmd.get_events_by_execution_ids([same.id])
    assert {e.artifact_id for e in events} == {first.model_id, same.new_model_id}  # linked to both models
    assert json.loads(execution.properties["details"].string_value)["verdict"] == "reproduced"

    # the same through the magic and the CLI
    run(ip, f"%mlmd connect {uri}")
    magic = run(ip, f"%mlmd reproduce model:{first.model_id} --quiet -o rep")
    assert ip.user_ns["rep"] is magic and magic.reproduced
    cli = _cli(uri, "reproduce", f"model:{first.model_id}", "--quiet")
    assert cli.returncode == 0 and f"model #{first.model_id} of t21@1#1: reproduced by t21@1#" in cli.stdout

    with open(os.path.join(data["uri"], "eval.tfrecord"), "ab") as fh:  # the eval split's file changes
        fh.write(b"\0")
    changed = store.reproduce(first.name, progress=False)  # by the run's name, EXPERIMENT@N#K
    assert not changed.reproduced and changed.verdict == "not trained again" and changed.new_model_id is None
    rows = {what: (then, now) for what, then, now in changed.differences}
    assert rows == {"data nipt-sim@1 split 'eval'": ("as registered", "eval.tfrecord was changed")}
    assert "what differs" in repr(changed) and "split &#x27;eval&#x27;" in changed._repr_html_()
    cli = _cli(uri, "--json", "reproduce", f"model:{first.model_id}")
    assert json.loads(cli.stdout)["verdict"] == "not trained again"



@pytest.mark.mysql
@pytest.mark.slow
def test_a_background_run_on_mysql_gets_the_password_on_stdin_only(
        mysql_uri: str, mysql_server: dict[str, Any], nipt: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.parse import quote

    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("MLMD_MAGIC_MYSQL_PASSWORD")  # the worker could not take it from its environment
    password = mysql_server["password"]
    user = "mysql://mlmd_magic_test"
    with_password = mysql_uri.replace(f"{user}@", f"{user}:{quote(password, safe='')}@")
    store = _setup(mm.connect(with_password), nipt)
    handle = store.train("t21", wait=False)
    with open(f"/proc/{handle.process.pid}/cmdline", "rb") as fh:
        assert password.encode() not in fh.read()
    with open(f"/proc/{handle.process.pid}/environ", "rb") as fh:
        assert password.encode() not in fh.read()
    done = handle.wait(timeout_s=300)
    assert done.state == "COMPLETE" and done.name == "t21@1#1"
    with open(handle.log, encoding="utf-8") as fh:
        log = fh.read()
    assert "Epoch 3/3" in log and password not in log


def test_reproduce_names_a_changed_model_builder(tmp_path: Path, nipt: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from mlmd_magic.trainer import register_model

    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))

    @register_model("rep-linear")
    def linear(input_dim: int, output: Any, params: dict[str, Any], normalizer: Any) -> Any:
        import keras

        inputs = keras.Input((input_dim,))
        return keras.Model(inputs, output.layer()(normalizer(inputs)))

    store = mm.connect(f"sqlite:///{tmp_path}/builder.sqlite")
    store.add_datasource("nipt-sim", **nipt)
    store.add_scenario("lin", model="rep-linear", params={"epochs": 1, "seed": 1, "batch_size": 64})
    store.add_experiment("e", datasource="nipt-sim", scenario="lin")
    first = store.train("e", progress=False)

    @register_model("rep-linear")  # the same name, other code: a hidden layer
    def hidden(input_dim: int, output: Any, params: dict[str, Any], normalizer: Any) -> Any:
        import keras

        inputs = keras.Input((input_dim,))
        return keras.Model(inputs, output.layer()(keras.layers.Dense(8)(normalizer(inputs))))

    report = store.reproduce(first.name, progress=False)
    whats = [what for what, _, _ in report.differences]
    assert whats[0] == "model builder 'rep-linear' source" and report.verdict == "differs"
    assert report.new_run == "e@1#2" and any(what.startswith("metric test.") for what in whats)
