"""A real browser: JupyterLab on a loopback port, driven by Playwright in Debian's Chromium.

A user opens the store browser (one pager, one filter that applies as you type), edits one
value of an experiment in the editor and saves: the browser shows version 2 without being
asked; the diff shows the change. In the browser's runs tab they sort the grid, select two
runs and compare them, click a lineage node to see its record, watch a run another process
starts and cancels go from RUNNING to CANCELED without pressing Refresh, then one the notebook
starts in the background after ``%cd`` into another folder, and read the evaluations tab.
After a restart the editor's text names the version it saved, and the browser's the tab it
showed last.
Screenshots go to test-artifacts/.
Needs /usr/bin/chromium (Debian's package) and the playwright package; Playwright never
downloads a browser here. Without them the test skips, except under CI where it fails.
"""

from __future__ import annotations

import contextlib
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
        "%mlmd browse",
        "editor = %mlmd edit t21\neditor",
        "%mlmd diff t21@1 t21@2",
        "%cd elsewhere\nbg = %mlmd train t22 --background\nbg",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def _rows(grid: Any) -> list[str]:
    """The first cell of each row of a DataTables grid, top to bottom."""
    return [str(t) for t in grid.locator("table.dataTable tbody tr td:first-child").all_inner_texts()]


def _stop_runs(store: mm.Store) -> None:
    """Cancel what the test left training in the background (a step failed before its cancel):
    its worker would otherwise train on after the test."""
    with contextlib.suppress(Exception):
        for name in store.ls("runs", where="state == 'RUNNING'")["name"]:
            with contextlib.suppress(Exception):
                store.cancel(name, wait_s=30)


@pytest.mark.slow
def test_edit_save_and_see_version_2_in_jupyterlab(lab: dict[str, Any], request: pytest.FixtureRequest) -> None:
    from playwright.sync_api import expect, sync_playwright

    root: Path = lab["root"]
    store_path = root / "team.sqlite"
    store = mm.connect(f"sqlite:///{store_path}")
    request.addfinalizer(lambda: _stop_runs(store))
    store.add_datasource("nipt-sim", **datasets.simulate_nipt(str(root / "data"), n_train=16, n_eval=8, n_test=8))
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [8], "epochs": 3, "learning_rate": 0.01})
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    store.add_experiment("t22", datasource="nipt-sim", scenario="mlp-small")
    store.options.runs_dir = str(root / "runs")
    first = store.train("t22", progress=False)
    second = store.train("t22", epochs=2, progress=False)
    store.evaluate(second, baseline=first, thresholds=[{"metric": "accuracy", "lower": 1.01}])
    # connected as a notebook beside its store does: by a path relative to the kernel's folder
    _notebook(root / "edit.ipynb", f"sqlite:///{store_path.name}")
    (root / "elsewhere").mkdir()
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
            panel = page.locator(".mlmd-magic-browser")
            experiments = panel.locator(".widget-tab-contents > div").nth(0)
            expect(experiments.locator(".mlmd-magic-count")).to_contain_text("rows 1–2 of 2 · page 1 of 1",
                                                                             timeout=60_000)
            expect(experiments.locator("table.dataTable")).to_contain_text("t22", timeout=20_000)
            # one pager and one filter: DataTables' own "Showing 1 to 2 of 2 entries", pager and search are gone
            expect(panel.locator(".dt-info, .dataTables_info")).to_have_count(0)
            expect(panel.locator(".dt-search, .dataTables_filter, .dt-paging, .dataTables_paginate")).to_have_count(0)
            expect(experiments.locator("input[type='text'], input:not([type])")).to_have_count(1)
            page.screenshot(path=str(ARTIFACTS / "browser-experiments.png"))
            # the filter applies as you type (no Enter)
            experiments.locator(".widget-text input").first.press_sequentially("t22", delay=80)
            expect(experiments.locator(".mlmd-magic-count")).to_contain_text("rows 1–1 of 1", timeout=20_000)
            expect(experiments.locator("table.dataTable tbody tr td:first-child")).to_have_text(["t22"],
                                                                                               timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "browser-filter-typed.png"))
            experiments.locator(".widget-text input").first.fill("")
            expect(experiments.locator(".mlmd-magic-count")).to_contain_text("rows 1–2 of 2", timeout=20_000)

            run_cell(2)
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
            # the browser above read its page again after the editor's action: t21 is at version 2
            t21 = experiments.locator("table.dataTable tbody tr", has_text="t21")
            expect(t21.locator("td").nth(1)).to_have_text("2", timeout=20_000)
            expect(t21).to_contain_text("7")
            expect(t21.locator("b.mlmd-magic-override")).to_have_text("7")  # the override marked

            run_cell(3)
            diff = cells.nth(3).locator(".jp-OutputArea-output")
            expect(diff).to_contain_text("params.epochs", timeout=30_000)
            expect(diff).to_contain_text("7")

            # runs: sort by a column, select two rows, compare
            cells.nth(1).scroll_into_view_if_needed()
            panel.locator(".lm-TabBar-tab", has_text="runs").click()
            runs = panel.locator(".widget-tab-contents > div").nth(3)
            grid = runs.locator(".dataTables_wrapper, .dt-container").first
            expect(runs.locator(".mlmd-magic-count")).to_contain_text("rows 1–2 of 2", timeout=30_000)
            expect(grid).to_contain_text("test.accuracy")
            # the metrics fit the width: no scrolling sideways (the rest is folded into "more")
            width = grid.evaluate("e => [e.scrollWidth, e.clientWidth]")
            assert width[0] <= width[1] + 2, width
            assert _rows(grid) == ["t22@2#1", "t22@1#1"]  # newest first
            grid.locator("thead th", has_text=re.compile(r"^name$")).click()
            expect(grid.locator("tbody tr").first).to_contain_text("t22@1#1", timeout=10_000)
            assert _rows(grid) == ["t22@1#1", "t22@2#1"]  # sorted by name in the grid
            page.screenshot(path=str(ARTIFACTS / "browser-runs-sorted.png"))
            grid.locator("tbody tr").nth(0).click()
            grid.locator("tbody tr").nth(1).click(modifiers=["Control"])
            compare = runs.get_by_role("button", name="Compare selected")
            expect(compare).to_be_enabled(timeout=20_000)
            compare.click()
            comparison = runs.locator(".mlmd-magic-comparison")
            expect(comparison).to_contain_text("params.epochs", timeout=30_000)
            expect(comparison).to_contain_text("t22@2#1")
            expect(comparison.locator("img[src^='data:image/png']").first).to_be_visible()  # the curves
            page.screenshot(path=str(ARTIFACTS / "browser-compare.png"), full_page=True)

            # details of the last selected run: its record and a lineage whose nodes show their record
            details = runs.locator(".mlmd-magic-details")
            expect(details).to_contain_text("Run t22@2#1", timeout=30_000)
            graph = details.locator(".mlmd-magic-lineage")
            node = graph.locator("label", has_text="DataSource nipt-sim@1")
            record = graph.locator(".mlmd-magic-record", has_text="fingerprint").first
            expect(record).to_be_hidden()
            graph.locator("svg").scroll_into_view_if_needed()
            graph.locator("svg").screenshot(path=str(ARTIFACTS / "lineage-graph.png"))
            node.click()
            expect(record).to_be_visible(timeout=10_000)
            expect(record).to_contain_text("nipt-sim")
            record.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "browser-lineage-click.png"))

            # another process trains and cancels: the open runs tab follows, no Refresh pressed
            cells.nth(1).scroll_into_view_if_needed()
            handle = store.train("t22", epochs=100_000, wait=False)
            running = grid.locator("tbody tr", has_text="RUNNING")
            expect(running).to_have_count(1, timeout=30_000)
            grid.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "browser-live-running.png"))
            cancelled = store.cancel(handle.id)
            assert cancelled.state == "CANCELED"
            handle.process.wait(timeout=60)  # the worker ends once it recorded the cancel: collected
            expect(grid.locator("tbody tr", has_text="CANCELED")).to_have_count(1, timeout=30_000)
            expect(running).to_have_count(0)
            expect(runs.locator(".mlmd-magic-count")).to_contain_text("rows 1–3 of 3")
            grid.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "browser-live-canceled.png"))

            # the notebook starts a run in the background after %cd into another folder: its worker
            # records into the same store, and the open runs tab shows it within a few polls
            run_cell(4)
            expect(cells.nth(4).locator(".jp-OutputArea-executeResult")).to_contain_text("started run t22@3#2",
                                                                                         timeout=60_000)
            cells.nth(1).scroll_into_view_if_needed()
            expect(running).to_have_count(1, timeout=15_000)
            expect(runs.locator(".mlmd-magic-count")).to_contain_text("rows 1–4 of 4")
            assert _rows(grid)[0] == "t22@3#2"
            grid.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "browser-live-after-cd.png"))
            assert store.cancel("t22@3#2").state == "CANCELED"
            expect(grid.locator("tbody tr", has_text="CANCELED")).to_have_count(2, timeout=30_000)
            expect(running).to_have_count(0)

            # evaluations: model, baseline, verdict and the failed check
            panel.locator(".lm-TabBar-tab", has_text="evaluations").click()
            evaluations = panel.locator(".widget-tab-contents > div").nth(5)
            expect(evaluations.locator("table.dataTable")).to_contain_text("NOT BLESSED", timeout=30_000)
            expect(evaluations.locator("table.dataTable")).to_contain_text("overall: accuracy >= 1.01")
            expect(evaluations.locator("table.dataTable tbody tr").first).to_contain_text("t22@1#1")
            cells.nth(1).scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "browser-evaluations.png"))

            # a kernel restart leaves each panel's text, not "Error displaying widget: model not found"
            page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel…$")).click()
            page.locator(".jp-Dialog-button.jp-mod-accept").click()
            browser_out = cells.nth(1).locator(".jp-OutputArea-output")
            browser_text = browser_out.locator("pre.mlmd-magic-fallback")
            expect(browser_text).to_contain_text("StoreBrowser of sqlite", timeout=30_000)
            # what it showed last: the evaluations tab, not the experiments tab it opened on
            expect(browser_text).to_contain_text("evaluations rows 1–1 of 1")
            expect(browser_text).to_contain_text("t22@2#1: NOT BLESSED")
            expect(browser_text).not_to_contain_text("experiments rows")
            expect(panel).to_be_hidden()
            editor_out = cells.nth(2).locator(".jp-OutputArea-output")
            # the text of the panel as it was last: the version it saved, and that it saved it
            editor_text = editor_out.locator("pre.mlmd-magic-fallback")
            expect(editor_text).to_contain_text("ExperimentEditor for t21@2")
            expect(editor_text).to_contain_text("last: saved as t21@2 (params.epochs 3 -> 7)")
            expect(editor_text).to_contain_text("epochs = 7")
            expect(editor).to_be_hidden()
            expect(page.get_by_text("model not found").locator("visible=true")).to_have_count(0)
            expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(timeout=60_000)
            cells.nth(1).scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "after-restart.png"))
            # saved and reopened without a kernel: the same text
            page.keyboard.press("Control+s")
            expect(page.locator(".jp-mod-current .jp-mod-dirty")).to_have_count(0, timeout=20_000)
            page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Shut Down Kernel$")).click()
            page.reload()
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            expect(cells.nth(1).locator("pre.mlmd-magic-fallback")).to_contain_text("StoreBrowser", timeout=30_000)
            expect(cells.nth(1).locator("pre.mlmd-magic-fallback")).to_be_visible()
            expect(cells.nth(2).locator("pre.mlmd-magic-fallback")).to_contain_text("last: saved as t21@2")
            # the renderer's error is there, hidden behind the text
            expect(page.get_by_text("model not found").first).to_be_attached(timeout=10_000)
            expect(page.get_by_text("model not found").locator("visible=true")).to_have_count(0)
            page.screenshot(path=str(ARTIFACTS / "reopened.png"))
        finally:
            page.screenshot(path=str(ARTIFACTS / "last.png"), full_page=True)
            browser.close()

    saved = mm.connect(f"sqlite:///{store_path}").get_experiment("t21")
    assert saved["version"] == 2 and saved["params"]["epochs"] == 7
    sources = [e.properties["source"].string_value
               for e in store.mlmd.get_executions_by_type("mlmd_magic.DefineExperiment")]
    assert [s for s in sources if s.startswith("widget")] == ["widget ExperimentEditor t21@1: params.epochs 3 -> 7"]
    shutil.copy(root / "edit.ipynb", ARTIFACTS / "edit.ipynb")


@contextlib.contextmanager
def _tutorial_run_in_lab(lab: dict[str, Any], name: str, shots: str) -> Iterator[tuple[Any, Any, list[int]]]:
    """notebooks/NAME, outputs cleared, run top to bottom in JupyterLab with "Run All Cells";
    yields the page, its cells and the indices of the code cells once the last one has run,
    after checking that every code cell ran and none failed or showed "Error displaying widget"."""
    from playwright.sync_api import expect, sync_playwright

    root: Path = lab["root"]
    tutorial = Path(__file__).resolve().parent.parent / "notebooks" / name
    nb = nbformat.read(str(tutorial), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, str(root / "tutorial.ipynb"))
    code_cells = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{lab['base']}/lab/tree/tutorial.ipynb?token={lab['token']}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(timeout=60_000)
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
            cells = page.locator(".jp-Notebook .jp-Cell")
            last = cells.nth(code_cells[-1])
            expect(last.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=240_000)
            for i in code_cells:  # every code cell ran, in order, and none failed
                expect(cells.nth(i).locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"))
            assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
            assert page.get_by_text("Error displaying widget").count() == 0
            yield page, cells, code_cells
        finally:
            page.screenshot(path=str(ARTIFACTS / f"{shots}-last.png"), full_page=True)
            browser.close()


@pytest.mark.slow
def test_tfx_tutorial_runs_in_jupyterlab_and_its_widgets_render(lab: dict[str, Any]) -> None:
    """notebooks/03-tfx-components.ipynb run in JupyterLab: the store browser shows TFX's tabs,
    the lineage from CsvExampleGen to our model is drawn."""
    from playwright.sync_api import expect

    with _tutorial_run_in_lab(lab, "03-tfx-components.ipynb", "tfx-tutorial") as (page, cells, code_cells):
        panel = page.locator(".mlmd-magic-browser")
        expect(panel).to_be_visible(timeout=60_000)
        expect(panel).to_contain_text("Examples", timeout=30_000)  # a tab per TFX artifact type
        cells.nth(code_cells[-1]).scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "tfx-tutorial-browser.png"))
        lineage = cells.nth(code_cells[-2])  # from CsvExampleGen to our model, drawn as SVG
        lineage.scroll_into_view_if_needed()
        expect(lineage.locator(".jp-OutputArea-output svg").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "tfx-tutorial-lineage.png"))


@pytest.mark.slow
def test_release_policy_tutorial_runs_in_jupyterlab_and_its_editor_shows_what_the_cells_typed(
        lab: dict[str, Any]) -> None:
    """notebooks/04-release-policy.ipynb run in JupyterLab: the policy editor the notebook fills
    from code shows, live, the slice and thresholds typed into it and "saved as release-nipt@1"."""
    from playwright.sync_api import expect

    with _tutorial_run_in_lab(lab, "04-release-policy.ipynb", "policy-tutorial") as (page, cells, code_cells):
        editor = page.locator(".mlmd-magic-policy-editor").first
        editor.scroll_into_view_if_needed()
        expect(editor).to_be_visible(timeout=60_000)
        expect(editor.locator(".mlmd-magic-policy-slice")).to_have_count(1)
        expect(editor.locator(".mlmd-magic-policy-threshold")).to_have_count(2)
        expect(editor.locator(".mlmd-magic-policy-slice input").nth(1)).to_have_value("0.04, 0.08")
        expect(editor).to_contain_text("saved as release-nipt@1")
        page.screenshot(path=str(ARTIFACTS / "policy-tutorial-editor.png"))
        gate = cells.nth(code_cells[-1])
        gate.scroll_into_view_if_needed()
        expect(gate).to_contain_text("NOT BLESSED under release-nipt@2")


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
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small")
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
    evaluations = store.ls("evaluations")
    assert list(evaluations["policy"]) == ["release-nipt@2", "release-nipt@1"]
    assert list(evaluations["verdict"]) == ["NOT BLESSED", "BLESSED"]
    source = store.mlmd.get_executions_by_type("mlmd_magic.AddPolicy")[0].properties["source"].string_value
    assert source.startswith("widget PolicyEditor release-nipt: ")
    with pytest.raises(mm.NotBlessedError, match="NOT BLESSED under release-nipt@2"):
        store.push("t21", to=str(root / "serving"))
    pushed = store.push("t21", to=str(root / "serving"), policy="release-nipt@1")
    assert pushed.version == 1 and (root / "serving" / "1" / "model_card.html").exists()
