"""A policy names only metrics an evaluation can compute (issue #25).

A threshold's metric is a fixed name (``auc``, ``mse``, ...) or a per-class prefix followed by
a class name (``recall_T21``, ``count_0``). Anything else is refused when the policy is
defined — through the API, a ``%%policy`` cell, ``mlmd-magic import`` and the policy editor,
with one expectation — with the metric probably meant, and nothing is written. Whether the
data has the class is still checked when a model is evaluated.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

import mlmd_magic as mm
from mlmd_magic.cli import main
from mlmd_magic.core.evaluation import (
    check_metric_name,
    computable_metric,
    compute_metrics,
    evaluate_predictions,
    metric_grammar,
    metric_names,
)
from mlmd_magic.errors import ValidationError
from mlmd_magic.widgets import PolicyEditor

from .test_magics import run

# as the README's "Screening metrics" lists them: the oracle the code's own grammar is held to
FIXED = ("example_count", "accuracy", "auc", "precision", "recall", "specificity", "npv", "fpr", "f1",
         "macro_recall", "abnormal_auc", "mae", "mse", "rmse")
PREFIXES = ("count_", "recall_", "precision_", "npv_", "specificity_", "fpr_")
SLICES = [{"feature": "fetal_fraction", "bins": [0.04, 0.08], "names": ["ff_low", "ff_mid", "ff_high"]}]

# (metric, None: saved | the metric the refusal suggests)
CASES = [
    ("auc", None),
    ("mse", None),
    ("abnormal_auc", None),
    ("recall_T21", None),
    ("count_euploid", None),
    ("specificity_0", None),  # class names are the data's: numbers too
    ("fpr_T21_mosaic", None),
    ("sensitivity_T21", "recall_T21"),  # a screening synonym: not specificity_T21, its opposite
    ("recal_T21", "recall_T21"),
    ("ppv_T18", "precision_T18"),
    ("aucc", "auc"),
    ("Accuracy", "accuracy"),
    ("recall_", "recall"),
]
FACES = ["api", "magic", "cli", "widget"]


def _policy_versions(uri: str) -> int:
    store = mm.connect(uri)
    try:
        return len(store.mlmd.get_artifacts_by_type("mlmd_magic.Policy"))
    finally:
        store.close()


def _define(face: str, uri: str, name: str, metric: str, request: pytest.FixtureRequest,
            capsys: pytest.CaptureFixture[str], tmp_path: Path) -> tuple[bool, str]:
    """Define the policy through one face: ``(saved, what the face said)``."""
    thresholds = [{"metric": metric, "lower": 0.5, "slices": ["ff_mid", "ff_high"]}]
    if face == "api":
        store = mm.connect(uri)
        try:
            return True, store.add_policy(name, slices=SLICES, thresholds=thresholds).ref
        except ValidationError as exc:
            return False, str(exc)
        finally:
            store.close()
    if face == "magic":
        ip = request.getfixturevalue("ip")
        run(ip, f"%mlmd connect {uri}")
        body = yaml.safe_dump({"slices": SLICES, "thresholds": thresholds}, sort_keys=False)
        try:
            return True, run(ip, f"%%policy {name}\n{body}").ref
        except UsageError as exc:
            return False, str(exc)
        finally:
            run(ip, "%mlmd close")
    if face == "cli":
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(yaml.safe_dump({"kind": "policy", "name": name, "slices": SLICES, "thresholds": thresholds}))
        capsys.readouterr()
        code = main(["--uri", uri, "import", str(spec)])
        shown = capsys.readouterr()
        return code == 0, (shown.out if code == 0 else shown.err).strip()
    store = mm.connect(uri)
    try:
        editor = PolicyEditor(store, name)
        editor.add_slice(SLICES[0])
        editor.add_threshold(thresholds[0])
        if editor.save_button.disabled:
            message = editor.message
            editor.save_button.click()  # a click that got through anyway saves nothing either
            assert editor.message == message and editor.save_button.disabled
            return False, message
        editor.save_button.click()
        return True, editor.message
    finally:
        store.close()


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(("metric", "meant"), CASES)
def test_a_policy_is_saved_iff_its_metrics_are_computable_on_every_face(
        face: str, metric: str, meant: str | None, tmp_path: Path, request: pytest.FixtureRequest,
        capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path}/policies.sqlite"
    mm.connect(uri).close()
    saved, said = _define(face, uri, "release-nipt", metric, request, capsys, tmp_path)
    if meant is None:
        assert saved, said
        assert "release-nipt@1" in said
        store = mm.connect(uri)
        assert store.get_policy("release-nipt")["thresholds"][0]["metric"] == metric
        store.close()
        return
    assert not saved
    assert f"thresholds[0] names metric {metric!r}, which no evaluation computes; did you mean {meant!r}?" in said
    assert "recall_CLASS" in said and "\n" not in said  # one line, naming what is computable
    assert _policy_versions(uri) == 0  # nothing written


def test_the_editor_keeps_save_disabled_until_the_metric_is_computable(tmp_path: Path) -> None:
    store = mm.connect(f"sqlite:///{tmp_path}/editor.sqlite")
    editor = PolicyEditor(store, "release-nipt")
    editor.add_slice(SLICES[0])
    editor.add_threshold({"metric": "accuracy", "lower": 0.9})
    editor.add_threshold({"metric": "sensitivity_T21", "lower": 0.95, "slices": ["ff_mid", "ff_high"]})
    assert editor.save_button.disabled
    assert editor.message.startswith("✗ thresholds[1] names metric 'sensitivity_T21', which no evaluation computes")
    assert "did you mean 'recall_T21'?" in html.unescape(editor.status.value)  # where the editor shows errors
    row = editor.threshold_box.children[1]
    row.metric.value = "recal_T21"  # a typo on the way
    assert editor.save_button.disabled and "did you mean 'recall_T21'?" in editor.message
    row.metric.value = "recall_T21"
    assert not editor.save_button.disabled and editor.message == "✓ valid"
    editor.save_button.click()
    assert editor.message == "✓ saved as release-nipt@1"
    assert [t["metric"] for t in store.get_policy("release-nipt")["thresholds"]] == ["accuracy", "recall_T21"]
    store.close()


def test_a_class_the_data_lacks_is_still_caught_when_evaluated() -> None:
    """``recall_T22`` is a metric some data computes: the policy is saved; evaluated on data whose
    classes are euploid, T21 and T18 it is the error that lists the metrics that data has."""
    store = mm.connect("memory://")
    record = store.add_policy("release-nipt", thresholds=[{"metric": "recall_T22", "lower": 0.9}])
    store.close()
    labels = np.array([0, 1, 2, 1])
    scores = np.eye(3)[labels]
    with pytest.raises(ValidationError, match="which a multiclass evaluation does not compute; "
                                              "did you mean 'recall_T21'\\?") as info:
        evaluate_predictions("multiclass", labels, scores, {}, class_names=["euploid", "T21", "T18"],
                             thresholds=record.data["thresholds"])
    assert "recall_T18" in str(info.value)


def test_the_grammar_is_read_from_the_metrics_the_code_computes() -> None:
    assert metric_grammar() == (FIXED, PREFIXES)  # as the README documents them
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 30)
    scores = rng.dirichlet(np.ones(3), 30)
    classes = ["euploid", "T21", "T 18"]
    computed = {
        "binary": compute_metrics("binary", (labels > 0).astype(int), scores[:, 0]),
        "multiclass": compute_metrics("multiclass", labels, scores, classes),
        "regression": compute_metrics("regression", labels.astype(float), scores[:, 0]),
    }
    for task, metrics in computed.items():
        assert list(metrics) == metric_names(task, 3, classes if task == "multiclass" else None)
        assert all(computable_metric(name) for name in metrics), task


_NAMES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(FIXED),
    st.builds(str.__add__, st.sampled_from(PREFIXES), st.text(max_size=8)),
    st.builds(str.__add__, st.sampled_from([*FIXED, *PREFIXES]), st.text(max_size=3)),
    st.builds(str.__add__, st.text(max_size=3), st.sampled_from([*FIXED, *PREFIXES])),
)


@settings(max_examples=500, deadline=None)
@given(name=_NAMES)
def test_a_name_is_accepted_iff_it_is_fixed_or_prefix_class(name: str) -> None:
    expected = name in FIXED or any(name.startswith(p) and len(name) > len(p) for p in PREFIXES)
    assert computable_metric(name) is expected
    try:
        mm.Store.check_policy(None, [{"metric": name, "lower": 0.5}])
    except ValidationError as exc:
        assert not expected
        assert str(exc).startswith(f"thresholds[0] names metric {name!r}, which no evaluation computes; " if name
                                   else "thresholds[0] must be a mapping with a 'metric'")
        assert "\n" not in str(exc)
        with pytest.raises(ValidationError):
            check_metric_name(name)
    else:
        assert expected
