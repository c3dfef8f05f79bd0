"""Hostile input and faults, round two: escaped passwords, passwords that break URIs, data
changed after registration, slices named ``overall``, quadratic redaction, YAML alias bombs,
``--set`` against ``train``'s own keywords, symlink loops, trailing newlines in names,
dotted parameter keys, read-only / damaged / deleted SQLite files, and smaller ones."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import mlmd_magic as mm
from mlmd_magic.core import secrets as _secrets
from mlmd_magic.core.names import parse_ref

from .conftest import DB_PREFIX, _created_dbs, _server_params

SOME = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def best_of(runs: int, call: Callable[[], object]) -> float:
    """The shortest of ``runs`` timings of ``call()``, in seconds (the least disturbed by other load)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


@pytest.fixture
def secrets_restored() -> Iterator[None]:
    """Forget, after the test, the secrets it made the process remember."""
    known, forms = set(_secrets._known), list(getattr(_secrets, "_forms", []))
    yield
    with _secrets._lock:
        _secrets._known.clear()
        _secrets._known.update(known)
        if hasattr(_secrets, "_forms"):
            _secrets._forms[:] = forms


# ---------------------------------------------------------------- 9: names end where they end


@pytest.mark.parametrize("bad", ["abc\n", "t21-baseline\n"])
def test_a_name_ending_in_a_newline_is_refused(mem_store: mm.Store, bad: str) -> None:
    mem_store.add_scenario("abc", model="mlp", params={"a": 1})
    with pytest.raises(mm.InvalidNameError, match="invalid scenario name"):
        mem_store.add_scenario(bad, model="mlp", params={"a": 1})
    with pytest.raises(mm.InvalidNameError):
        mem_store.add_scenario("s", model=bad, params={"a": 1})
    with pytest.raises(mm.InvalidNameError):
        mem_store.get_scenario(bad)
    with pytest.raises(mm.InvalidNameError):
        parse_ref(f"{bad.strip()}@1\n")
    assert mem_store.names("scenarios") == ["abc"]


def test_an_alias_ending_in_a_newline_is_refused() -> None:
    from mlmd_magic.faces.registry import ConnectionRegistry

    registry = ConnectionRegistry()
    with pytest.raises(mm.InvalidNameError, match="invalid alias"):
        registry.connect("memory://", alias="team\n")
    registry.reset()


@pytest.mark.mysql
def test_a_database_name_ending_in_a_newline_is_refused(mysql_uri: str) -> None:
    with pytest.raises(mm.StoreConnectionError, match="invalid MySQL database name"):
        mm.connect(mysql_uri + "%0A")


@pytest.mark.parametrize("ref", ["abc@²", "abc@१", "abc@1²", "abc@٣"])
def test_a_version_in_other_digits_is_a_validation_error(mem_store: mm.Store, ref: str) -> None:
    mem_store.add_scenario("abc", model="mlp", params={"a": 1})
    with pytest.raises(mm.InvalidNameError, match="must be a version number"):
        mem_store.get_scenario(ref)
    with pytest.raises(mm.InvalidNameError):
        mem_store.evaluate(f"model:{ref[4:]}")


# ---------------------------------------------------------------- 1: escaped passwords in logs

passwords = st.text(alphabet=st.sampled_from(list("aZ9 '\"\\\t\n\x01\x7fü€😀ß%#?/@:;,&=")), min_size=1, max_size=24)


def _config_texts(password: str) -> list[str]:
    from google.protobuf import text_format
    from ml_metadata.proto import metadata_store_pb2 as pb

    config = pb.ConnectionConfig()
    config.mysql.host, config.mysql.user, config.mysql.database = "127.0.0.1", "alice", "nipt"
    config.mysql.password = password
    return [str(config), repr(config), text_format.MessageToString(config),
            text_format.MessageToString(config, as_utf8=True), text_format.MessageToString(config, as_one_line=True),
            text_format.MessageToString(config, as_one_line=True, as_utf8=True)]


@SOME
@given(password=passwords)
def test_the_password_field_of_a_connection_config_is_masked_whatever_its_escaping(password: str) -> None:
    """The generic pattern alone (the password was never seen): every text form of the config."""
    for text in _config_texts(password):
        cleaned = _secrets.redact(text)
        assert 'password: "***"' in cleaned, (text, cleaned)
        assert 'user: "alice"' in cleaned and 'database: "nipt"' in cleaned


@SOME
@given(password=passwords)
def test_a_remembered_password_is_masked_in_its_escaped_forms(password: str, secrets_restored: None) -> None:
    import json

    secret = f"LeakCheck-{password}"
    _secrets.remember(secret)
    escaped = [json.dumps(secret)[1:-1], repr(secret)[1:-1], quote(secret, safe=""),
               *(re.search(r'password: "((?:[^"\\]|\\.)*)"', t).group(1) for t in _config_texts(secret))]
    for form in escaped:
        cleaned = _secrets.redact(f"before {form} after")
        assert "LeakCheck" not in cleaned, (form, cleaned)


def test_quotes_and_backslashes_in_a_logged_config(secrets_restored: None) -> None:
    password = "Ab'cd\"QuoteLeakZZ\\tail"
    for text in _config_texts(password):
        assert "QuoteLeakZZ" not in _secrets.redact(text)  # never seen: the pattern
    _secrets.remember(password)
    for text in _config_texts(password):
        assert "QuoteLeakZZ" not in _secrets.redact(text)  # seen: its escaped forms too


@pytest.fixture
def throwaway_account(mysql_server: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """A MariaDB account whose password holds quotes, backslashes and non-ASCII (created as root)."""
    import pymysql

    params = _server_params()
    try:
        root = pymysql.connect(host=params["host"], port=params["port"], user="root", password="",
                               connect_timeout=5)
    except Exception as exc:
        message = f"cannot log in to MariaDB as root without a password to create a throwaway account: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    user = f"mlmd_pw_{uuid.uuid4().hex[:8]}"
    password = "Ab'cd\"QuoteLeakZZ\\tail-ü€\\n%#"
    with root.cursor() as cur:
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        cur.execute(f"GRANT ALL PRIVILEGES ON `mlmd\\_magic\\_test\\_%`.* TO '{user}'@'%'")
    try:
        yield user, password
    finally:
        with root.cursor() as cur:
            cur.execute("DROP USER IF EXISTS %s@'%%'", (user,))
        root.close()


@pytest.mark.mysql
def test_a_hostile_password_never_reaches_the_debug_log_of_a_real_connection(
    throwaway_account: tuple[str, str], caplog: pytest.LogCaptureFixture, secrets_restored: None,
) -> None:
    user, password = throwaway_account
    params = _server_params()
    database = f"{DB_PREFIX}{uuid.uuid4().hex[:12]}"
    _created_dbs.append(database)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("absl").setLevel(logging.DEBUG)
    try:
        uri = f"mysql://{user}:{quote(password, safe='')}@{params['host']}:{params['port']}/{database}"
        store = mm.connect(uri)
        store.add_scenario("s", model="mlp", params={"a": 1})
        store.close()
    finally:
        logging.getLogger("absl").setLevel(logging.NOTSET)
    messages = [r.getMessage() for r in caplog.records]
    configs = [m for m in messages if "ConnectionConfig" in m]
    assert configs and all('password: "***"' in m for m in configs)  # MLMD did log it, masked
    leaks = [m for m in messages if "QuoteLeakZZ" in m or "tail-" in m]
    assert not leaks, leaks[0][:300]


# ---------------------------------------------------------------- 2: passwords that break URIs

BROKEN_URIS = [
    ("mysql://u:Sekr3tHash#tail@127.0.0.1/db", "%23"),
    ("mysql://u:Sekr3tHash?tail@127.0.0.1/db", "%3F"),
    ("mysql://u:Sekr3tHash/tail@127.0.0.1/db", "%2F"),
    ("mysql://u:12#Sekr3tHash@127.0.0.1/db", "%23"),
    ("mysql://u:Sekr3tHash#tail", "%23"),
    ("mysql:/u:Sekr3tHash@127.0.0.1/db", "'://'"),
    ("mysql:u:Sekr3tHash@127.0.0.1/db", "'://'"),
]


def _no_fragment(text: str) -> None:
    assert "Sekr3tHash" not in text and "tail" not in text, text


@pytest.mark.parametrize(("uri", "advice"), BROKEN_URIS)
def test_a_password_that_breaks_the_uri_never_shows_in_the_error(uri: str, advice: str) -> None:
    with pytest.raises(mm.StoreConnectionError) as info:
        mm.connect(uri)
    _no_fragment(str(info.value))
    assert advice in str(info.value)


@pytest.mark.parametrize(("uri", "advice"), BROKEN_URIS)
def test_a_password_that_breaks_the_uri_through_the_magic(ip: InteractiveShell, uri: str, advice: str) -> None:
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("mlmd", f"connect {uri}")
    _no_fragment(str(info.value))
    assert advice in str(info.value)


def test_a_password_with_a_space_is_not_echoed_by_the_magic(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="quote the URI") as info:
        ip.run_line_magic("mlmd", "connect mysql://u:Sekr3tHash tail@127.0.0.1:1/db --alias x")
    _no_fragment(str(info.value))


def test_a_password_that_breaks_the_uri_through_the_console_script(tmp_path: Path) -> None:
    exe = shutil.which("mlmd-magic") or str(Path(sys.executable).parent / "mlmd-magic")
    for uri, advice in BROKEN_URIS[:4]:
        out = subprocess.run([exe, "--uri", uri, "ls", "experiments"], capture_output=True, text=True,
                             cwd=tmp_path, timeout=120)
        assert out.returncode == 2
        _no_fragment(out.stderr + out.stdout)
        assert advice in out.stderr


# ---------------------------------------------------------------- 5: linear time on long input


def test_redacting_a_megabyte_takes_under_a_second() -> None:
    for text in ("a" * 1_000_000, "a-" * 500_000, "x://u:" * 166_666, "password" * 125_000, "1" * 999_997 + "://",
                 'password: "' * 90_000, "a:/" * 333_333, "--password " * 90_909):
        assert best_of(3, lambda text=text: _secrets.redact(text)) < 1.0, text[:20]


@given(st.lists(st.sampled_from([*"aAsSkK:/=@ \n\"'-_", "pass", "word", "PWD", "Secret", "tOKen", "passwd",
                                 "\u017f", "\u212a", "://", "--"]), max_size=20))
@SOME
def test_text_without_a_credential_word_is_redacted_as_the_patterns_would(parts: list[str]) -> None:
    text = "".join(parts)
    # redact skips its patterns for ASCII text without ":/" and their key words: never a difference
    full = _secrets._URI_PASSWORD.sub(_secrets._mask_uri_password, text)
    full = _secrets._KEY_VALUE.sub(_secrets._mask_value, full)
    full = _secrets._FLAG.sub(lambda m: m.group("head") + _secrets.MASK, full)
    assert _secrets.redact(text) == full


def test_a_long_parameter_is_recorded_in_linear_time(mem_store: mm.Store) -> None:
    value = "a" * 200_000  # took 27-30 s (its recorded arguments were redacted in quadratic time)
    assert best_of(1, lambda: mem_store.add_scenario("big", model="mlp", params={"x": value})) < 3.0
    assert mem_store.get_scenario("big")["params"]["x"] == value


def test_a_long_set_value_fails_fast_through_the_magic(ip: InteractiveShell, tmp_path: Path) -> None:
    from mlmd_magic import datasets

    ip.run_line_magic("mlmd", "connect memory://")
    store = mm.current_store()
    store.add_datasource("d", **datasets.simulate_nipt(str(tmp_path), n_train=4, n_eval=2, n_test=2))
    store.add_scenario("sc", model="mlp", params={"epochs": 1})
    store.experiment("e", datasource="d", scenario="sc")

    with pytest.raises(UsageError, match="must be a whole number"):
        ip.run_line_magic("mlmd", f"train e --set epochs={'a' * 10_000}")
    # a line is split by shlex (linear time) up to 100,000 characters; a longer one is refused unsplit
    with pytest.raises(UsageError, match=r"^the line holds more than 100,000 characters; put long values in a cell"):
        ip.run_line_magic("mlmd", f"train e --set epochs={'a' * 1_000_000}")
    assert store.mlmd.get_executions_by_type("mlmd_magic.Train") == []


def test_a_long_magic_line_is_not_expanded_and_short_ones_still_expand(ip: InteractiveShell) -> None:
    """IPython's own $name/{expr} expansion is quadratic in a line's length: the magics expand
    lines of up to 4,096 characters themselves, with the local scope IPython hands them."""
    ip.run_line_magic("mlmd", "connect memory://")
    ip.user_ns["ref"] = "s"
    with pytest.raises(UsageError, match="invalid scenario name"):
        ip.run_cell_magic("scenario", "n" * 5_000 + "{ref}", "model: mlp")
    with pytest.raises(UsageError, match=r"unrecognized arguments: x+\{ref\}\n"):
        ip.run_line_magic("mlmd", "ls scenarios " + "x" * 5_000 + "{ref}")
    ip.run_cell("%%scenario $ref\nmodel: mlp\nparams: {a: 1}\n")
    assert ip.run_cell("%mlmd get {ref} --kind scenario").result["name"] == "s"
    result = ip.run_cell("def f(name):\n    return get_ipython().run_line_magic('mlmd', 'get $name --kind scenario')\n"
                         "f('s')")
    assert result.result["version"] == 1


# ---------------------------------------------------------------- 6: YAML alias bombs


def alias_bomb(levels: int, width: int = 9) -> str:
    """``levels`` nested lists of ``width`` aliases each: a few hundred characters, width**levels strings."""
    lines = ["a0: &a0 [" + ", ".join(['"x"'] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def bounded(call: Callable[[], object]) -> tuple[float, int]:
    """``(seconds, peak bytes allocated)`` of ``call()``, whatever it raises."""
    import tracemalloc

    tracemalloc.start()
    started = time.perf_counter()
    try:
        call()
    except Exception:
        pass
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return elapsed, peak


def test_a_yaml_alias_bomb_is_refused_before_it_expands() -> None:
    from mlmd_magic.faces.cells import load_yaml

    bomb = alias_bomb(8)
    assert len(bomb) < 600
    with pytest.raises(mm.ValidationError, match=r"aliases .* expand it to more than 1,000,000 characters"):
        load_yaml(bomb)
    elapsed, peak = bounded(lambda: load_yaml(bomb))
    assert elapsed < 1.0 and peak < 20 * 2**20, (elapsed, peak)
    with pytest.raises(mm.ValidationError, match="recursive YAML alias"):
        load_yaml("a: &a [1, *a]")
    # aliases that stay small are still YAML as usual
    assert load_yaml(alias_bomb(3))["a2"][8] == [["x"] * 9] * 9
    assert load_yaml("m: &m {x: 1}\nn: {<<: *m, y: 2}\n") == {"m": {"x": 1}, "n": {"x": 1, "y": 2}}


def test_a_yaml_alias_bomb_in_a_cell_or_a_file_leaves_nothing(ip: InteractiveShell, tmp_path: Path) -> None:
    ip.run_line_magic("mlmd", "connect memory://")
    store = mm.current_store()
    body = "model: mlp\nparams:\n" + "".join(f"  {line}\n" for line in alias_bomb(9).splitlines())

    def cell() -> None:
        with pytest.raises(UsageError, match="expand it to more than"):
            ip.run_cell_magic("scenario", "bomb", body)

    elapsed, peak = bounded(cell)
    assert elapsed < 1.0 and peak < 20 * 2**20, (elapsed, peak)
    path = tmp_path / "bomb.yaml"
    path.write_text("kind: scenario\nname: bomb\n" + body)

    def imported() -> None:
        with pytest.raises(UsageError, match="expand it to more than"):
            ip.run_line_magic("mlmd", f"import {path}")

    elapsed, peak = bounded(imported)
    assert elapsed < 1.0 and peak < 20 * 2**20, (elapsed, peak)
    assert store.names("scenarios") == [] and store.mlmd.get_artifacts() == []


# ---------------------------------------------------------------- 7: --set against train's own keywords


@pytest.fixture
def trainable(ip: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> mm.Store:
    """A connected store with experiment ``e`` of a tiny data set, runs under tmp_path/runs."""
    from mlmd_magic import datasets

    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    ip.run_line_magic("mlmd", "connect memory://")
    store = mm.current_store()
    store.add_datasource("d", **datasets.simulate_nipt(str(tmp_path / "nipt"), n_train=40, n_eval=10, n_test=10))
    store.add_scenario("sc", model="mlp", params={"hidden": [4], "epochs": 1, "batch_size": 16})
    store.experiment("e", datasource="d", scenario="sc")
    return store


@pytest.mark.parametrize("assignment", ["force=true", "progress=false", "callbacks=[1]", "workdir=ELSEWHERE",
                                        "overrides={epochs:2}"])
def test_set_never_reaches_train_keywords(ip: InteractiveShell, trainable: mm.Store, assignment: str,
                                          tmp_path: Path) -> None:
    key = assignment.split("=", 1)[0]
    elsewhere = tmp_path / "elsewhere"
    with pytest.raises(UsageError, match=f"override '{key}' is not a parameter of the scenario"):
        ip.run_line_magic("mlmd", f"train e --quiet --set {assignment.replace('ELSEWHERE', str(elsewhere))}")
    assert trainable.mlmd.get_artifacts_by_type("mlmd_magic.Model") == []
    assert not elsewhere.exists()


def test_set_overrides_parameters_named_like_train_keywords(ip: InteractiveShell, trainable: mm.Store,
                                                            tmp_path: Path) -> None:
    trainable.add_scenario("named", model="mlp", params={"hidden": [4], "epochs": 1, "batch_size": 16,
                                                        "workdir": "w", "force": False, "progress": "p"})
    trainable.experiment("n", datasource="d", scenario="named")
    run = ip.run_line_magic("mlmd", f"train n --quiet --set workdir={tmp_path / 'not-here'} --set force=true "
                                    "--set progress=q")
    assert run.state == "COMPLETE" and run.experiment == "n@2"
    assert trainable.get_experiment("n")["params"] | {"workdir": "x"} == {
        "hidden": [4], "epochs": 1, "batch_size": 16, "workdir": "x", "force": True, "progress": "q"}
    assert not (tmp_path / "not-here").exists() and str(tmp_path / "runs") in (run.model_uri or "")
    with pytest.raises(mm.ValidationError, match="'epochs' given both"):
        trainable.train("n", overrides={"epochs": 2}, epochs=3)


# ---------------------------------------------------------------- 10: dotted parameter keys


@pytest.mark.parametrize("params", [{"a.b": 1, "a": {"b": 2}}, {"a.b": 1}, {"opt": {"lr.max": 0.1}}])
def test_a_dotted_parameter_key_is_refused(mem_store: mm.Store, params: dict[str, Any]) -> None:
    with pytest.raises(mm.ValidationError, match=r"holds '\.', which addresses a nested key.*nest it.*use '_'"):
        mem_store.add_scenario("s", model="mlp", params=params)
    assert mem_store.mlmd.get_artifacts() == []


def test_a_dotted_parameter_key_in_a_cell_is_refused_and_dotted_overrides_still_work(ip: InteractiveShell,
                                                                                     tmp_path: Path) -> None:
    from mlmd_magic import datasets

    ip.run_line_magic("mlmd", "connect memory://")
    with pytest.raises(UsageError, match=r"parameter key 'a\.b'"):
        ip.run_cell_magic("scenario", "s", "model: mlp\na.b: 1\na: {b: 5}\n")
    mem_store = mm.current_store()
    assert mem_store.mlmd.get_artifacts() == []
    mem_store.add_datasource("d", **datasets.simulate_nipt(str(tmp_path), n_train=4, n_eval=2, n_test=2))
    mem_store.add_scenario("s", model="mlp", params={"a": {"b": 2}, "c": 1})
    mem_store.experiment("e", datasource="d", scenario="s", overrides={"a.b": 5})
    assert mem_store.get_experiment("e")["params"] == {"a": {"b": 5}, "c": 1}
    mem_store.experiment("e", datasource="d", scenario="s", overrides={"a.b": 6})
    assert mem_store.diff("e@1", "e@2").to_dict()["params.a.b"] == {"a": 5, "b": 6}


def test_feature_names_are_refused_only_where_ambiguous(mem_store: mm.Store, tmp_path: Path) -> None:
    from mlmd_magic import datasets

    spec = datasets.simulate_nipt(str(tmp_path), n_train=4, n_eval=2, n_test=2)
    spec.pop("features", None)
    with pytest.raises(mm.ValidationError, match=r"two keys that both read 'a.b'"):
        mem_store.add_datasource("d", **spec, features={"a.b": 1, "a": {"b": 2}})
    record = mem_store.add_datasource("d", **spec, features={"fetal.fraction": {"dtype": "float", "shape": [1]}})
    assert record.version == 1


# ---------------------------------------------------------------- 4 and 12: slice names, bin edges

FF = [0.02, 0.03, 0.05, 0.06, 0.07, 0.09, 0.12, 0.15]
LABELS = [0, 1, 0, 1, 1, 0, 1, 0]
SCORES = [0.6, 0.3, 0.2, 0.8, 0.7, 0.1, 0.9, 0.2]  # wrong on ff < 0.04 only


def _evaluate(slices: list[Any], thresholds: list[Any] | None = None) -> Any:
    import numpy as np

    from mlmd_magic.evaluation import evaluate_predictions

    return evaluate_predictions("binary", np.array(LABELS), np.array(SCORES),
                                {"ff": np.array(FF), "sex": np.array([0, 1, 0, 1, 0, 1, 0, 1]),
                                 "mixed": np.array([1, "1", 1, "1", 1, "1", 1, "1"], dtype=object)},
                                slices=slices, thresholds=thresholds)


@pytest.mark.parametrize("slices", [
    [{"feature": "ff", "bins": [0.04], "names": ["overall", "rest"]}],
    [{"feature": "sex", "values": [0, 1], "names": ["x", "overall"]}],
])
def test_a_slice_named_overall_is_refused(slices: list[Any]) -> None:
    # it would replace the whole data set's metrics: here the threshold on 'overall' would judge ff < 0.04 only
    with pytest.raises(mm.ValidationError, match="names a slice 'overall'"):
        _evaluate(slices, thresholds=[{"metric": "accuracy", "lower": 0.7, "slices": ["overall"]}])
    result = _evaluate([{"feature": "ff", "bins": [0.04], "names": ["low", "high"]}, {"feature": "sex"}],
                       thresholds=[{"metric": "accuracy", "lower": 0.7, "slices": ["overall"]}])
    assert list(result.metrics) == ["overall", "low", "high", "sex=0", "sex=1"] and result.blessed


@pytest.mark.parametrize(("slices", "name"), [
    ([{"feature": "ff", "bins": [0.04], "names": ["a", "b"]},
      {"feature": "sex", "values": [0, 1], "names": ["b", "c"]}], "b"),
    ([{"feature": "ff", "bins": [0.04]}, {"feature": "ff", "bins": [0.04, 0.1]}], "ff<0.04"),
    ([{"feature": "sex", "values": [0, 0]}], "sex=0"),
    ([{"feature": "mixed"}], "mixed=1"),  # values 1 and "1": one name
])
def test_duplicate_slice_names_are_refused(slices: list[Any], name: str) -> None:
    with pytest.raises(mm.ValidationError, match=f"slice name '{re.escape(name)}' comes twice"):
        _evaluate(slices)


@pytest.mark.parametrize("bins", [[float("nan")], [0.04, float("inf")], [float("-inf"), 0.04], [True]])
def test_bin_edges_must_be_finite_numbers(bins: list[Any], mem_store: mm.Store) -> None:
    with pytest.raises(mm.ValidationError, match="bins must be"):
        _evaluate([{"feature": "ff", "bins": bins}])
    with pytest.raises(mm.ValidationError, match="bins must be"):
        mem_store.evaluate("model:1", slices=[{"feature": "ff", "bins": bins}])



# ---------------------------------------------------------------- 3: data changed after registration


def _tfrecord_data(root: Path) -> Path:
    from mlmd_magic.core.datafiles import write_tfrecord

    from .conftest import make_examples

    (root / "train").mkdir(parents=True)
    write_tfrecord(str(root / "train" / "part-0.tfrecord"), make_examples(30, 1))
    write_tfrecord(str(root / "train" / "part-1.tfrecord"), make_examples(20, 2))
    write_tfrecord(str(root / "eval.tfrecord"), make_examples(15, 3))
    return root


@pytest.fixture
def on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[mm.Store, Path, dict[str, Any]]:
    """A SQLite store with data source d (TFRecords under tmp_path/data) and experiment e."""
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    data = _tfrecord_data(tmp_path / "data")
    spec = {"uri": str(data), "format": "tfrecord", "splits": {"train": "train", "eval": "eval.tfrecord"},
            "label": "label"}
    store = mm.connect(f"sqlite:///{tmp_path}/s.sqlite")
    store.add_datasource("d", **spec)
    store.add_scenario("sc", model="mlp", params={"hidden": [4], "epochs": 1, "batch_size": 16})
    store.experiment("e", datasource="d", scenario="sc")
    return store, data, spec


def _train_states(store: mm.Store) -> list[str]:
    from ml_metadata.proto import metadata_store_pb2 as pb

    return [pb.Execution.State.Name(e.last_known_state) for e in store.mlmd.get_executions_by_type("mlmd_magic.Train")]


def test_data_changed_after_registration_is_neither_trained_nor_cached(
        on_disk: tuple[mm.Store, Path, dict[str, Any]]) -> None:
    from mlmd_magic.core.datafiles import write_tfrecord

    from .conftest import make_examples

    store, data, spec = on_disk
    first = store.train("e", progress=False)
    assert first.state == "COMPLETE"
    write_tfrecord(str(data / "eval.tfrecord"), make_examples(15, 99))  # same size, other bytes
    for force in (False, True):
        with pytest.raises(mm.DataSourceError,
                           match=r"data source d@1 .*split 'eval': eval.tfrecord was changed.*%%datasource d"):
            store.train("e", force=force, progress=False)
    assert _train_states(store) == ["COMPLETE", "FAILED", "FAILED"]
    failed = store.mlmd.get_executions_by_type("mlmd_magic.Train")[-1]
    assert "eval.tfrecord was changed" in failed.properties["error"].string_value
    assert len(store.mlmd.get_artifacts_by_type("mlmd_magic.Model")) == 1
    # the way out the message gives: a new version, an experiment that uses it
    assert store.add_datasource("d", **spec).version == 2
    store.experiment("e", datasource="d", scenario="sc")
    assert store.train("e", progress=False).experiment == "e@2"
    # a file added to a folder split, or removed from it
    write_tfrecord(str(data / "train" / "part-2.tfrecord"), make_examples(5, 4))
    with pytest.raises(mm.DataSourceError, match=r"split 'train': train/part-2.tfrecord was added"):
        store.train("e", progress=False)
    os.remove(data / "train" / "part-2.tfrecord")
    kept = (data / "train" / "part-1.tfrecord").read_bytes()
    os.remove(data / "train" / "part-1.tfrecord")
    with pytest.raises(mm.DataSourceError, match=r"split 'train': train/part-1.tfrecord was removed"):
        store.train("e", progress=False)
    # the same bytes again (a new modification time): hashed, found unchanged, reused
    (data / "train" / "part-1.tfrecord").write_bytes(kept)
    assert store.train("e", progress=False).cached


def test_a_record_without_per_file_rows_is_checked_by_its_fingerprint(tmp_path: Path) -> None:
    from mlmd_magic.core.datafiles import inspect_datasource, verify_files, write_tfrecord

    from .conftest import make_examples

    data = _tfrecord_data(tmp_path / "data")
    splits = {"train": "train/*.tfrecord", "eval": "eval.tfrecord"}
    summary = inspect_datasource(str(data), "tfrecord", splits, "label")
    verify_files(str(data), "tfrecord", splits, None, summary.fingerprint, "d@1")  # written by 0.1: no rows
    verify_files(str(data), "tfrecord", splits, summary.files, summary.fingerprint, "d@1")
    write_tfrecord(str(data / "train" / "part-9.tfrecord"), make_examples(3, 5))
    with pytest.raises(mm.DataSourceError, match="no longer match its fingerprint"):
        verify_files(str(data), "tfrecord", splits, None, summary.fingerprint, "d@1")


# ---------------------------------------------------------------- 8: symbolic links in data folders


def test_symlink_loops_are_followed_once(tmp_path: Path, mem_store: mm.Store) -> None:
    from mlmd_magic.core.datafiles import write_tfrecord

    from .conftest import make_examples

    root = tmp_path / "data"
    (root / "train" / "sub").mkdir(parents=True)
    write_tfrecord(str(root / "train" / "a.tfrecord"), make_examples(7, 1))
    write_tfrecord(str(root / "train" / "sub" / "b.tfrecord"), make_examples(5, 2))
    os.symlink(root / "train", root / "train" / "sub" / "loop")  # back up the tree
    splits = {"train": "train/**/*.tfrecord"}
    record = mem_store.add_datasource("d", uri=str(root), format="tfrecord", splits=splits, label="label")
    assert record.data["examples"] == {"train": 12}
    os.symlink(root, root / "train" / "sub" / "loop2")  # a second loop: the walk used to never end
    os.symlink(root / "train" / "a.tfrecord", root / "train" / "a-again.tfrecord")  # the same file twice
    started = time.perf_counter()
    again = mem_store.add_datasource("d2", uri=str(root), format="tfrecord", splits=splits, label="label")
    assert again.data["examples"] == {"train": 12} and time.perf_counter() - started < 10
    folder = mem_store.add_datasource("d3", uri=str(root), format="tfrecord", splits={"train": "train"},
                                      label="label")
    assert folder.data["examples"] == {"train": 7}


def test_a_split_is_bounded_in_files_and_folders(tmp_path: Path, mem_store: mm.Store,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from mlmd_magic.core import datafiles as _datafiles

    from .conftest import make_examples

    root = tmp_path / "data"
    for i in range(6):
        (root / f"f{i}").mkdir(parents=True)
        _datafiles.write_tfrecord(str(root / f"f{i}" / "x.tfrecord"), make_examples(2, i))
    monkeypatch.setattr(_datafiles, "MAX_FILES", 5)
    with pytest.raises(mm.DataSourceError, match="matches more than 5 files"):
        mem_store.add_datasource("d", uri=str(root), format="tfrecord", splits={"t": "*/x.tfrecord"}, label="label")
    monkeypatch.setattr(_datafiles, "MAX_FILES", 100)
    monkeypatch.setattr(_datafiles, "MAX_FOLDERS", 3)
    with pytest.raises(mm.DataSourceError, match="walks more than 3 folders"):
        mem_store.add_datasource("d", uri=str(root), format="tfrecord", splits={"t": "**/x.tfrecord"}, label="label")
    assert mem_store.mlmd.get_artifacts() == []


# ---------------------------------------------------------------- 12a: TFRecord checksums, labels in every file


def test_a_tfrecord_with_a_bad_checksum_is_refused(tmp_path: Path, mem_store: mm.Store) -> None:
    from mlmd_magic.core.datafiles import write_tfrecord

    from .conftest import make_examples

    root = tmp_path / "data"
    root.mkdir()
    write_tfrecord(str(root / "t.tfrecord"), make_examples(10, 1))
    good = (root / "t.tfrecord").read_bytes()
    size = len(good) // 10
    damaged = bytearray(good)
    damaged[3 * size + 40] ^= 0x01  # one bit of a feature value in record 4: still parses
    (root / "t.tfrecord").write_bytes(bytes(damaged))
    with pytest.raises(mm.DataSourceError, match=r"data checksum .CRC32C. of record 4 does not match"):
        mem_store.add_datasource("d", uri=str(root), format="tfrecord", splits={"t": "t.tfrecord"}, label="label")
    damaged = bytearray(good)
    damaged[size + 9] ^= 0x01  # the length checksum of record 2
    (root / "t.tfrecord").write_bytes(bytes(damaged))
    with pytest.raises(mm.DataSourceError, match=r"length checksum .CRC32C. of record 2"):
        mem_store.add_datasource("d", uri=str(root), format="tfrecord", splits={"t": "t.tfrecord"}, label="label")
    assert mem_store.names("datasources") == []


def test_checksums_are_verified_fast_enough_for_tens_of_megabytes(tmp_path: Path) -> None:
    from mlmd_magic.core.datafiles import iter_tfrecord

    path = tmp_path / "big.tfrecord"
    record = os.urandom(64 * 1024)
    import struct

    from mlmd_magic.core.datafiles import _masked_crc

    header = struct.pack("<Q", len(record))
    frame = header + struct.pack("<I", _masked_crc(header)) + record + struct.pack("<I", _masked_crc(record))
    path.write_bytes(frame * 480)  # 30 MB
    assert best_of(2, lambda: sum(1 for _ in iter_tfrecord(str(path), verify=True))) < 1.0


def test_every_csv_file_of_a_split_needs_the_label(tmp_path: Path, mem_store: mm.Store) -> None:
    root = tmp_path / "csv"
    (root / "train").mkdir(parents=True)
    (root / "train" / "a.csv").write_text("f0,label\n1.0,0\n2.0,1\n")
    (root / "train" / "b.csv").write_text("f0,f1\n1.0,3\n2.0,4\n")
    with pytest.raises(mm.DataSourceError, match=r"split 'train': train/b.csv has no label 'label'"):
        mem_store.add_datasource("d", uri=str(root), format="csv", splits={"train": "train"}, label="label")
    (root / "train" / "b.csv").write_text("f0,label\n1.0,0\n2.0\n")
    with pytest.raises(mm.DataSourceError, match=r"1 of the 2 examples in train/b.csv have no value"):
        mem_store.add_datasource("d", uri=str(root), format="csv", splits={"train": "train"}, label="label")
    assert mem_store.names("datasources") == []


# ---------------------------------------------------------------- 12b: deep filters, offsets, export


@pytest.mark.parametrize("where", ["not " * 2000 + "epochs == 1", "(" * 2000 + "epochs == 1" + ")" * 2000,
                                   "not (" * 60 + "epochs == 1" + ")" * 60])
def test_a_deeply_nested_filter_is_a_validation_error(mem_store: mm.Store, where: str) -> None:
    with pytest.raises(mm.ValidationError, match="more than 50 deep"):
        mem_store.list("scenarios", where=where)


@pytest.mark.parametrize("offset", ["a", -1, 1.5, True])
def test_a_bad_offset_is_a_validation_error(mem_store: mm.Store, offset: Any) -> None:
    for kind in ("scenarios", "runs"):
        with pytest.raises(mm.ValidationError, match="offset must be a whole number"):
            mem_store.list(kind, offset=offset)


def test_export_into_a_missing_folder_says_so(ip: InteractiveShell, tmp_path: Path) -> None:
    ip.run_line_magic("mlmd", "connect memory://")
    mm.current_store().add_scenario("s", model="mlp", params={"a": 1})
    with pytest.raises(UsageError, match=r"folder '.*missing' does not exist; create it first") as info:
        ip.run_line_magic("mlmd", f"export s -f {tmp_path / 'missing' / 's.yaml'}")
    assert "please report" not in str(info.value)


# ---------------------------------------------------------------- 11: read-only, damaged and removed SQLite files

_AS_A_USER = '''
import ctypes, json, os, sys
if os.geteuid() == 0:  # root may write anything: drop the capabilities that let it, as any user lacks them
    libc = ctypes.CDLL(None, use_errno=True)
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
    header, data = Header(0x20080522, 0), (Data * 2)()
    assert libc.capget(ctypes.byref(header), data) == 0
    keep = ~((1 << 1) | (1 << 2)) & 0xFFFFFFFF  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
    data[0].effective &= keep; data[0].permitted &= keep; data[0].inheritable &= keep
    assert libc.capset(ctypes.byref(header), data) == 0, ctypes.get_errno()
    assert not os.access(sys.argv[2], os.W_OK) or not os.access(os.path.dirname(sys.argv[2]), os.W_OK)
from IPython.core.interactiveshell import InteractiveShell
import mlmd_magic as mm
out = {}
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "mlmd_magic")
out["connect"] = repr(ip.run_line_magic("mlmd", "connect " + sys.argv[1]))
store = mm.current_store()
out["read_only"] = store.read_only
for name, call in [("get", lambda: store.get_scenario("s")["params"]), ("list", lambda: len(store.list("scenarios"))),
                   ("add", lambda: store.add_scenario("t", model="mlp", params={"a": 2}).ref)]:
    try:
        out[name] = call()
    except mm.MlmdMagicError as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
'''


def _executions(path: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(path)  # the last connection to close: it leaves no -wal or -shm file
    try:
        return int(conn.execute("SELECT count(*) FROM Execution").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("locked", ["file", "folder"])
def test_a_read_only_sqlite_store_is_read_and_records_nothing(tmp_path: Path, locked: str) -> None:
    import json

    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "team.sqlite"
    store = mm.connect(f"sqlite:///{path}")
    store.add_scenario("s", model="mlp", params={"a": 1})
    store.close()
    before = _executions(path)
    os.chmod(path if locked == "file" else folder, 0o444 if locked == "file" else 0o555)
    try:
        out = subprocess.run([sys.executable, "-c", _AS_A_USER, f"sqlite:///{path}", str(path)],
                             capture_output=True, text=True, timeout=300)
        left = sorted(p.name for p in folder.iterdir())
    finally:
        os.chmod(path, 0o644)
        os.chmod(folder, 0o755)
    assert left == ["team.sqlite"]  # no -wal or -shm file owned by the reader
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "opened read-only: " in result["connect"] and result["read_only"] is True
    assert result["get"] == {"a": 1} and result["list"] == 1
    assert result["add"].startswith("StoreError: ") and "opened read-only" in result["add"]
    assert "adding a scenario is refused" in result["add"]
    assert _executions(path) == before  # nothing recorded, nothing written


def _damaged_store(tmp_path: Path) -> Path:
    import sqlite3

    path = tmp_path / "s.sqlite"
    store = mm.connect(f"sqlite:///{path}")
    for i in range(20):
        store.add_scenario(f"s{i}", model="mlp", params={"x": "y" * 2000})
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


def _overwrite(path: Path, page: int, size: int = 4096) -> None:
    with open(path, "r+b") as fh:
        fh.seek(page * size)
        fh.write(b"\xa5" * size if page else b"not a database!!")


def test_a_damaged_sqlite_file_is_reported_at_once(tmp_path: Path) -> None:
    path = _damaged_store(tmp_path)
    good = path.read_bytes()
    for page in (0, 1):  # the header; the schema's table (MLMD then saw "a subset of tables": 28 s of retries)
        path.write_bytes(good)
        _overwrite(path, page)
        started = time.perf_counter()
        with pytest.raises(mm.StoreConnectionError, match=r"is damaged \((file is not a database|database disk "
                                                          r"image is malformed)\).*Restore it from a backup"):
            mm.connect(f"sqlite:///{path}")
        assert time.perf_counter() - started < 5
    # damage that only a read meets: a StoreError saying so, not MLMD's query text
    found = False
    for page in range(len(good) // 4096 - 1, 1, -1):
        path.write_bytes(good)
        _overwrite(path, page)
        try:
            store = mm.connect(f"sqlite:///{path}")
        except mm.StoreConnectionError:
            continue
        try:
            store.list("scenarios", all_versions=True)
            [store.get_scenario(f"s{i}") for i in range(20)]
        except mm.StoreError as exc:
            assert "is damaged (database disk image is malformed)" in str(exc), str(exc)[:300]
            found = True
            break
        finally:
            store.close()
    assert found


def test_a_sqlite_file_removed_or_replaced_while_connected_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = mm.connect(f"sqlite:///{path}")
    assert store.add_scenario("s", model="mlp", params={"a": 1}).ref == "s@1"
    os.remove(path)
    with pytest.raises(mm.StoreError, match="was removed while connected"):
        store.add_scenario("s", model="mlp", params={"a": 2})
    with pytest.raises(mm.StoreError, match="was removed while connected"):
        store.get_scenario("s")
    other = mm.connect(f"sqlite:///{tmp_path}/other.sqlite")
    other.close()
    os.replace(tmp_path / "other.sqlite", path)
    with pytest.raises(mm.StoreError, match="was replaced by another file"):
        store.add_scenario("s", model="mlp", params={"a": 2})
