"""A real browser: JupyterLab on a loopback port, driven by Playwright in Debian's Chromium.

A user edits one value of an experiment in the editor, saves, and sees version 2 in the
store browser panel and the difference in the diff. Screenshots go to test-artifacts/.
Needs /usr/bin/chromium (Debian's package) and the playwright package; Playwright never
downloads a browser here. Without them the test skips, except under CI where it fails.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

import mlmd_magic as mm
from mlmd_magic import datasets

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _require_browser() -> None:
    missing = []
    if not os.path.exists(CHROMIUM):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install playwright)")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[dict[str, Any]]:
    _require_browser()
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
            assert time.time() < deadline, "JupyterLab did not start in 90 s"
            time.sleep(0.5)
        yield {"base": base, "token": token, "root": tmp_path}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _notebook(path: Path, uri: str) -> None:
    cells = [
        f"%load_ext mlmd_magic\n%mlmd connect {uri}",
        "editor = %mlmd edit t21\neditor",
        "%mlmd browse",
        "%mlmd diff t21@1 t21@2",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def test_edit_save_and_see_version_2_in_jupyterlab(lab: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    root: Path = lab["root"]
    store_path = root / "team.sqlite"
    store = mm.connect(f"sqlite:///{store_path}")
    store.add_datasource("nipt-sim", **datasets.simulate_nipt(str(root / "data"), n_train=16, n_eval=8, n_test=8))
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [8], "epochs": 3, "learning_rate": 0.01})
    store.experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    _notebook(root / "edit.ipynb", f"sqlite:///{store_path}")
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{lab['base']}/lab/tree/edit.ipynb?token={lab['token']}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(timeout=60_000)
            cells = page.locator(".jp-Notebook .jp-Cell")

            def run_cell(index: int) -> None:
                cell = cells.nth(index)
                cell.locator(".jp-InputArea-editor").click()
                page.keyboard.press("Shift+Enter")
                # the prompt turns from "[ ]:" to "[*]:" to "[n]:" once the kernel ran it
                expect(cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=60_000)

            run_cell(0)
            run_cell(1)
            editor = page.locator(".mlmd-magic-editor")
            expect(editor).to_be_visible(timeout=60_000)
            epochs = editor.locator(".widget-inline-hbox:has(label:text-is('epochs')) input")
            epochs.fill("7")
            epochs.press("Tab")
            expect(editor.locator("table.mlmd-magic-diff")).to_contain_text("params.epochs", timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "editor-changed.png"))
            editor.get_by_role("button", name="Save as new version").click()
            expect(editor.locator(".mlmd-magic-saved")).to_contain_text("saved as t21@2", timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "editor-saved.png"))
            run_cell(2)
            run_cell(3)
            browser_panel = page.locator(".mlmd-magic-browser")
            expect(browser_panel).to_be_visible(timeout=60_000)
            expect(browser_panel.locator("select").first).to_contain_text("t21@2", timeout=20_000)
            diff = cells.nth(3).locator(".jp-OutputArea-output")
            expect(diff).to_contain_text("params.epochs", timeout=30_000)
            expect(diff).to_contain_text("7")
            cells.nth(2).scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "browser-and-diff.png"), full_page=True)
        finally:
            page.screenshot(path=str(ARTIFACTS / "last.png"), full_page=True)
            browser.close()

    saved = mm.connect(f"sqlite:///{store_path}").get_experiment("t21")
    assert saved["version"] == 2 and saved["params"]["epochs"] == 7
    define = store.mlmd.get_executions_by_type("mlmd_magic.DefineExperiment")[-1]
    assert define.properties["source"].string_value == "widget ExperimentEditor t21@1: params.epochs 3 -> 7"
    shutil.copy(root / "edit.ipynb", ARTIFACTS / "edit.ipynb")


def test_a_policy_made_by_clicking_blesses_then_fails_a_model(lab: dict[str, Any]) -> None:
    """A manager builds a release policy in the policy editor with clicks and typing only (no
    YAML); the model is evaluated under it (BLESSED), a stricter version is saved (NOT BLESSED),
    and the blessed version's push is served."""
    from playwright.sync_api import expect, sync_playwright

    root: Path = lab["root"]
    store_path = root / "release.sqlite"
    store = mm.connect(f"sqlite:///{store_path}", runs_dir=str(root / "runs"))
    store.add_datasource("nipt-sim", **datasets.simulate_nipt(str(root / "data"), n_train=200, n_eval=40,
                                                              n_test=120))
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [8], "epochs": 1, "learning_rate": 0.01,
                                                         "batch_size": 32, "seed": 1})
    store.experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    store.train("t21", progress=False)
    cells = [
        f"%load_ext mlmd_magic\n%mlmd connect sqlite:///{store_path}\n"
        f"%config MlmdMagics.runs_dir = {str(root / 'runs')!r}",
        "%mlmd edit policy:release-nipt",
        "ev = %mlmd evaluate t21 --policy release-nipt\nev",
        "ev2 = %mlmd evaluate t21 --policy release-nipt\nev2",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(root / "policy.ipynb"))
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        try:
            page.goto(f"{lab['base']}/lab/tree/policy.ipynb?token={lab['token']}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(timeout=60_000)
            nb_cells = page.locator(".jp-Notebook .jp-Cell")

            def run_cell(index: int) -> None:
                cell = nb_cells.nth(index)
                cell.locator(".jp-InputArea-editor").click()
                page.keyboard.press("Shift+Enter")
                expect(cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=90_000)

            def field(row: Any, label: str) -> Any:
                return row.locator(f".widget-inline-hbox:has(label:text-is('{label}')) input")

            run_cell(0)
            run_cell(1)
            editor = page.locator(".mlmd-magic-policy-editor")
            expect(editor).to_be_visible(timeout=60_000)
            editor.get_by_role("button", name="Add slice").click()
            slice_row = editor.locator(".mlmd-magic-policy-slice").first
            field(slice_row, "feature").fill("fetal_fraction")
            field(slice_row, "bins").fill("0.04, 0.08")
            field(slice_row, "names").fill("ff_low, ff_mid, ff_high")
            editor.get_by_role("button", name="Add threshold").click()
            threshold = editor.locator(".mlmd-magic-policy-threshold").first
            field(threshold, "metric").fill("accuracy")
            field(threshold, "value").fill("0.05")
            field(threshold, "value").press("Tab")
            field(threshold, "slices").fill("ff_mid, ff_high")
            expect(editor.locator("table.mlmd-magic-diff")).to_contain_text("thresholds", timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "policy-editor-new.png"))
            editor.get_by_role("button", name="Save as new version").click()
            expect(editor.locator(".mlmd-magic-saved")).to_contain_text("saved as release-nipt@1", timeout=20_000)
            run_cell(2)
            verdict = nb_cells.nth(2).locator(".jp-OutputArea-output")
            expect(verdict).to_contain_text("BLESSED", timeout=60_000)
            expect(verdict).not_to_contain_text("NOT BLESSED")
            expect(verdict).to_contain_text("release-nipt@1")

            # a stricter threshold, added by clicking: the same model now fails
            editor.get_by_role("button", name="Add threshold").click()
            strict = editor.locator(".mlmd-magic-policy-threshold").nth(1)
            field(strict, "metric").fill("recall_T21")
            field(strict, "value").fill("0.999")
            field(strict, "value").press("Tab")
            expect(editor.locator("table.mlmd-magic-diff")).to_contain_text("recall_T21", timeout=20_000)
            editor.get_by_role("button", name="Save as new version").click()
            expect(editor.locator(".mlmd-magic-saved")).to_contain_text("saved as release-nipt@2", timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "policy-editor-saved.png"))
            run_cell(3)
            failed = nb_cells.nth(3).locator(".jp-OutputArea-output")
            expect(failed).to_contain_text("NOT BLESSED", timeout=60_000)
            expect(failed).to_contain_text("recall_T21")
            page.screenshot(path=str(ARTIFACTS / "policy-verdicts.png"), full_page=True)
        finally:
            page.screenshot(path=str(ARTIFACTS / "policy-last.png"), full_page=True)
            browser.close()

    policy = store.get_policy("release-nipt")
    assert policy["version"] == 2 and [t["metric"] for t in policy["thresholds"]] == ["accuracy", "recall_T21"]
    assert policy["slices"][0]["names"] == ["ff_low", "ff_mid", "ff_high"]
    evaluations = store.list("evaluations")
    assert list(evaluations["policy"]) == ["release-nipt@2", "release-nipt@1"]
    assert list(evaluations["verdict"]) == ["NOT BLESSED", "BLESSED"]
    source = store.mlmd.get_executions_by_type("mlmd_magic.AddPolicy")[0].properties["source"].string_value
    assert source.startswith("widget PolicyEditor release-nipt: ")
    with pytest.raises(mm.NotBlessedError, match="NOT BLESSED under release-nipt@2"):
        store.push("t21", to=str(root / "serving"))
    pushed = store.push("t21", to=str(root / "serving"), policy="release-nipt@1")
    assert pushed.version == 1 and (root / "serving" / "1" / "model_card.html").exists()
