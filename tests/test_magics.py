"""The magics through a real IPython InteractiveShell: cells, lines, YAML bodies (alias bombs
refused), long lines, errors, completion."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic.faces.registry import REGISTRY


def run(ip: InteractiveShell, source: str) -> Any:
    """Run a cell like a notebook does; raise what it raised (UsageError included)."""
    result = ip.run_cell(source, store_history=True)
    if result.error_before_exec is not None:
        raise result.error_before_exec
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def usage_error(ip: InteractiveShell, source: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run a cell that must fail with a UsageError; return what the user saw."""
    with pytest.raises(UsageError) as info:
        run(ip, source)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "Traceback" not in text
    assert "ml_metadata" not in str(info.value) and "google.protobuf" not in str(info.value)
    return str(info.value)


DATASOURCE = """%%datasource nipt-sim
uri: {uri}
format: tfrecord
label: label
splits:
  train: train
  eval: eval.tfrecord
description: simulated
"""
SCENARIO = """%%scenario mlp-small
model: mlp
params:
  hidden: [64, 32]
  learning_rate: 0.001
  batch_size: 64
  epochs: 10
"""
EXPERIMENT = """%%experiment t21-baseline -o params
datasource: nipt-sim
scenario: mlp-small
overrides:
  epochs: {epochs}
"""


def _notebook_flow(ip: InteractiveShell, uri: str, data: Path) -> None:
    run(ip, f"%mlmd connect {uri}")
    assert run(ip, DATASOURCE.format(uri=data)).status == "created"
    assert run(ip, SCENARIO).ref == "mlp-small@1"
    record = run(ip, EXPERIMENT.format(epochs=5))
    assert (record.ref, record.status) == ("t21-baseline@1", "created")
    assert ip.user_ns["params"]["params"]["epochs"] == 5


def test_load_does_not_import_tensorflow() -> None:
    import subprocess

    code = (
        "from IPython.core.interactiveshell import InteractiveShell; import sys; "
        "ip = InteractiveShell.instance(); ip.run_line_magic('load_ext', 'mlmd_magic'); "
        "ip.run_line_magic('load_ext', 'mlmd_magic'); "
        "ip.run_line_magic('mlmd', 'connect memory://'); "
        "print(sorted(m for m in ('tensorflow', 'keras', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_notebook_flow_records_one_execution_per_cell(ip: InteractiveShell, tfrecord_dir: Path,
                                                      tmp_path: Path) -> None:
    _notebook_flow(ip, f"sqlite:///{tmp_path}/nb.sqlite", tfrecord_dir)
    p = run(ip, "p = %mlmd get t21-baseline\np")
    assert p["version"] == 1 and p["params"]["epochs"] == 5
    run(ip, EXPERIMENT.format(epochs=8))
    assert run(ip, "%mlmd get t21-baseline")["version"] == 2
    assert run(ip, "%mlmd get t21-baseline@1")["params"]["epochs"] == 5

    store = REGISTRY.current().store
    names = {t.id: t.name for t in store.mlmd.get_execution_types()}
    executions = store.mlmd.get_executions()
    assert [names[e.type_id].split(".")[1] for e in executions] == [
        "RegisterDataSource", "AddScenario", "DefineExperiment", "FetchExperiment", "DefineExperiment",
        "FetchExperiment", "FetchExperiment"]
    sources = [e.properties["source"].string_value for e in executions]
    assert sources[0].startswith("%%datasource nipt-sim\nuri:")
    assert sources[3] == "p = %mlmd get t21-baseline\np"
    assert "epochs: 8" in sources[4]
    counts = [e.properties["execution_count"].int_value for e in executions]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)


def test_rerunning_an_unchanged_cell_creates_no_version(ip: InteractiveShell, tfrecord_dir: Path) -> None:
    _notebook_flow(ip, "memory://", tfrecord_dir)
    again = run(ip, EXPERIMENT.format(epochs=5))
    assert (again.ref, again.status) == ("t21-baseline@1", "unchanged")
    assert "unchanged: identical to version 1" in repr(again)
    store = REGISTRY.current().store
    assert len(store.mlmd.get_artifacts()) == 3
    assert store.mlmd.get_executions()[-1].last_known_state == pb.Execution.CACHED


def test_listing_show_history_diff(ip: InteractiveShell, tfrecord_dir: Path) -> None:
    _notebook_flow(ip, "memory://", tfrecord_dir)
    run(ip, EXPERIMENT.format(epochs=8))
    table = run(ip, "%mlmd ls experiments --where 'epochs >= 5' --limit 5")
    assert list(table["name"]) == ["t21-baseline"] and list(table["version"]) == [2]
    assert len(run(ip, "%mlmd ls experiments --all-versions")) == 2
    shown = run(ip, "%mlmd show mlp-small")
    assert shown.kind == "scenarios" and "<table>" in shown._repr_html_()
    assert list(run(ip, "%mlmd history t21-baseline")["version"]) == [1, 2]
    diff = run(ip, "%mlmd diff t21-baseline@1 t21-baseline@2")
    assert diff.to_dict()["params.epochs"] == {"a": 5, "b": 8}


def test_text_in_a_terminal_and_html_in_a_notebook(ip: InteractiveShell, tfrecord_dir: Path) -> None:
    _notebook_flow(ip, "memory://", tfrecord_dir)
    record = run(ip, "%mlmd show t21-baseline")
    formatted, _ = ip.display_formatter.format(record)
    assert formatted["text/plain"].startswith("Experiment t21-baseline@1")
    assert "<table>" in formatted["text/html"]


def test_connections_use_close_status(ip: InteractiveShell, tmp_path: Path) -> None:
    assert "connected to memory:// as 'memory'" in repr(run(ip, "%mlmd connect memory://"))
    run(ip, f"%mlmd connect sqlite:///{tmp_path}/team.sqlite --alias team")
    listing = repr(run(ip, "%mlmd connections"))
    assert "* team" in listing and "  memory" in listing
    assert "'memory'" in repr(run(ip, "%mlmd use memory"))
    assert "0 scenarios" in repr(run(ip, "%mlmd status"))
    assert "closed 'memory'" in repr(run(ip, "%mlmd close"))
    assert "team" in repr(run(ip, "%mlmd status"))


def test_password_masked_in_outputs_and_recorded_source(
    ip: InteractiveShell, mysql_uri: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import MYSQL_PASSWORD

    monkeypatch.delenv("MLMD_MAGIC_MYSQL_PASSWORD")
    uri = mysql_uri.replace("://mlmd_magic_test@", f"://mlmd_magic_test:{MYSQL_PASSWORD}@")
    shown = [repr(run(ip, f"%mlmd connect {uri} --alias shared"))]
    shown.append(repr(run(ip, "%mlmd connections")))
    shown.append(repr(run(ip, "%mlmd status")))
    run(ip, f"# connected with {uri}\n%mlmd ls scenarios")
    shown.append(usage_error(ip, f"%mlmd connect mysql://mlmd_magic_test:{MYSQL_PASSWORD}@127.0.0.1:1/x",
                             capsys))
    out = capsys.readouterr()
    for text in [*shown, out.out, out.err]:
        assert MYSQL_PASSWORD not in text
    store = REGISTRY.current().store
    source = store.mlmd.get_executions()[-1].properties["source"].string_value
    assert "%mlmd ls scenarios" in source and MYSQL_PASSWORD not in source and "***" in source


def test_errors_are_usage_errors_without_traceback(ip: InteractiveShell, tfrecord_dir: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert "run %mlmd connect" in usage_error(ip, "%mlmd ls experiments", capsys)
    assert "run %mlmd connect" in usage_error(ip, SCENARIO, capsys)
    run(ip, "%mlmd connect memory://")
    assert "did you mean 'ls'" in usage_error(ip, "%mlmd lss experiments", capsys)
    assert "unrecognized arguments: --bogus" in usage_error(ip, "%mlmd ls experiments --bogus", capsys)
    assert "needs a subcommand" in usage_error(ip, "%mlmd", capsys)
    assert "no experiment named 'nope'" in usage_error(ip, "%mlmd get nope", capsys)
    bad_yaml = "%%scenario s\nmodel: mlp\nparams:\n  a: [1, 2\n  b: 3\n"
    message = usage_error(ip, bad_yaml, capsys)
    assert "YAML error" in message and "line 5" in message
    assert "unknown key 'datasauce'" in usage_error(ip, "%%experiment e\ndatasauce: x\nscenario: y\n", capsys)
    assert "needs 'datasource'" in usage_error(ip, "%%experiment e\nscenario: y\n", capsys)
    assert "letters, digits" in usage_error(ip, "%%scenario 'bad name'\nmodel: mlp\n", capsys)
    assert "Python variable name" in usage_error(ip, "%mlmd get x -o 1bad", capsys)
    assert "cannot split" in usage_error(ip, "%mlmd show 'unterminated", capsys)
    run(ip, DATASOURCE.format(uri=tfrecord_dir))
    run(ip, SCENARIO)
    assert "did you mean 'epochs'" in usage_error(
        ip, "%%experiment e\ndatasource: nipt-sim\nscenario: mlp-small\noverrides:\n  epoch: 3\n", capsys)
    # nothing but FAILED executions was written by the failed cells
    store = REGISTRY.current().store
    assert sorted(a.name for a in store.mlmd.get_artifacts()) == ["mlp-small@1", "nipt-sim@1"]
    failed = [e for e in store.mlmd.get_executions() if e.last_known_state == pb.Execution.FAILED]
    assert failed and all(e.properties["error"].string_value for e in failed)


def test_yaml_is_loaded_safely(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    run(ip, "%mlmd connect memory://")
    message = usage_error(ip, "%%scenario s\nmodel: !!python/object/apply:os.system ['echo hacked']\n", capsys)
    assert "YAML error" in message
    anchors = run(ip, "%%scenario s\nmodel: mlp\nparams:\n  base: &b {lr: 0.1}\n  other: *b\n")
    assert anchors.data["params"]["other"] == {"lr": 0.1}


def alias_bomb(levels: int, width: int = 9) -> str:
    """``levels`` nested lists of ``width`` aliases each: a few hundred characters, width**levels strings."""
    lines = ["a0: &a0 [" + ", ".join(['"x"'] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def peak_memory(call: Callable[[], object]) -> int:
    """The peak of the bytes Python allocated while ``call()`` ran, whatever it raised."""
    import tracemalloc

    tracemalloc.start()
    try:
        call()
    except Exception:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_yaml_alias_bomb_is_refused_before_it_expands() -> None:
    """A few hundred characters whose aliases would expand to millions of strings are refused
    within a few MiB (how fast: benchmarks/bench_hostile.py); a recursive alias too; aliases
    that stay small are YAML as usual."""
    from mlmd_magic.faces.cells import load_yaml

    bomb = alias_bomb(8)
    assert len(bomb) < 600
    with pytest.raises(mm.ValidationError, match=r"aliases .* expand it to more than 1,000,000 characters"):
        load_yaml(bomb)
    assert peak_memory(lambda: load_yaml(bomb)) < 20 * 2**20
    with pytest.raises(mm.ValidationError, match="recursive YAML alias"):
        load_yaml("a: &a [1, *a]")
    assert load_yaml(alias_bomb(3))["a2"][8] == [["x"] * 9] * 9
    assert load_yaml("m: &m {x: 1}\nn: {<<: *m, y: 2}\n") == {"m": {"x": 1}, "n": {"x": 1, "y": 2}}


def test_a_yaml_alias_bomb_in_a_cell_or_a_file_leaves_nothing(ip: InteractiveShell, tmp_path: Path) -> None:
    """The same bomb in a %%scenario cell or a file given to %mlmd import: a usage error within
    a few MiB, and nothing written."""
    ip.run_line_magic("mlmd", "connect memory://")
    store = mm.current_store()
    body = "model: mlp\nparams:\n" + "".join(f"  {line}\n" for line in alias_bomb(9).splitlines())

    def cell() -> None:
        with pytest.raises(UsageError, match="expand it to more than"):
            ip.run_cell_magic("scenario", "bomb", body)

    assert peak_memory(cell) < 20 * 2**20
    path = tmp_path / "bomb.yaml"
    path.write_text("kind: scenario\nname: bomb\n" + body)

    def imported() -> None:
        with pytest.raises(UsageError, match="expand it to more than"):
            ip.run_line_magic("mlmd", f"import {path}")

    assert peak_memory(imported) < 20 * 2**20
    assert store.names("scenarios") == [] and store.mlmd.get_artifacts() == []


def test_scenario_body_without_params_key(ip: InteractiveShell) -> None:
    run(ip, "%mlmd connect memory://")
    record = run(ip, "%%scenario flat\nmodel: mlp\nepochs: 3\nhidden: [8]\ndescription: flat keys\n")
    assert record.data["params"] == {"epochs": 3, "hidden": [8]}
    assert record.data["description"] == "flat keys"


def test_help_documents_every_subcommand(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    from mlmd_magic.faces.commands import COMMANDS

    doc = ip.find_line_magic("mlmd").__doc__
    for name in COMMANDS:
        assert f"%mlmd {name}" in doc
    assert "%%experiment NAME" in doc
    assert "--where" in repr(run(ip, "%mlmd help ls"))
    run(ip, "%mlmd ls -h")
    assert "--all-versions" in capsys.readouterr().out


def test_tab_completion_of_names(ip: InteractiveShell, tfrecord_dir: Path) -> None:
    _notebook_flow(ip, "memory://", tfrecord_dir)
    run(ip, "%mlmd connect memory:// --alias other")
    run(ip, "%mlmd use memory")

    from IPython.core.completer import provisionalcompleter

    def complete(line: str) -> list[str]:
        with provisionalcompleter():
            return [c.text for c in ip.Completer.completions(line, len(line))]

    assert "t21-baseline" in complete("%mlmd get t2")
    assert "mlp-small" in complete("%mlmd show ml")
    assert "nipt-sim" in complete("%mlmd history ni")
    assert "t21-baseline" in complete("%mlmd diff t21-baseline@1 t2")
    assert "other" in complete("%mlmd use ot")
    assert "experiments" in complete("%mlmd ls ex")
    assert "history" in complete("%mlmd hi")
    # after NAME@ its versions, and never Python names (builtins, keywords, modules)
    assert complete("%mlmd get t21-baseline@") == ["1"]
    # a kind prefix completes names (and versions) of that kind only
    assert complete("%mlmd history scenario:") == ["mlp-small"]
    assert complete("%mlmd show experiment:t21-baseline@") == ["1"]
    for line in ("%mlmd get t21-baseline@", "%mlmd show ", "%mlmd train t", "%mlmd diff t21-baseline@1 "):
        offered = complete(line)
        assert not {"abs", "all", "type", "tuple", "TypeError"} & set(offered), (line, offered[:10])
    assert "abs" in complete("x = ab")  # other lines complete as before


def test_reload_and_double_load_are_harmless(ip: InteractiveShell) -> None:
    ip.run_line_magic("load_ext", "mlmd_magic")
    ip.run_line_magic("reload_ext", "mlmd_magic")
    assert ip.find_line_magic("mlmd") is not None and ip.find_cell_magic("experiment") is not None
    run(ip, "%mlmd connect memory://")
    ip.run_line_magic("unload_ext", "mlmd_magic")
    assert ip.find_line_magic("mlmd") is None
    ip.run_line_magic("load_ext", "mlmd_magic")


def test_a_bug_of_ours_is_one_line_and_tb_shows_its_traceback(ip: InteractiveShell, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from mlmd_magic.faces import commands

    def broken(host: Any, args: Any) -> Any:
        raise KeyError("a bug's own words\nsecond line")

    monkeypatch.setitem(commands.COMMANDS, "ls", dataclasses.replace(commands.COMMANDS["ls"], run=broken))
    run(ip, "%mlmd connect memory://")
    capsys.readouterr()
    result = ip.run_cell("%mlmd ls scenarios")
    assert isinstance(result.error_in_exec, KeyError)  # its own type: not a user's mistake
    shown = capsys.readouterr()
    lines = [line for line in (shown.out + shown.err).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "unexpected KeyError: \"a bug's own words" in lines[0]
    assert "%tb shows its traceback" in lines[0] and "MlmdMagics.traceback = True" in lines[0]
    ip.run_cell("%tb")
    shown = plain(capsys.readouterr())
    assert "Traceback" in shown and "raise KeyError" in shown
    # with the setting, the whole traceback at once
    ip.run_cell("%config MlmdMagics.traceback = True")
    capsys.readouterr()
    ip.run_cell("%mlmd ls scenarios")
    shown = plain(capsys.readouterr())
    assert "Traceback" in shown and "raise KeyError" in shown and "%tb shows" not in shown


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


def test_export_into_a_missing_folder_says_so(ip: InteractiveShell, tmp_path: Path) -> None:
    ip.run_line_magic("mlmd", "connect memory://")
    mm.current_store().add_scenario("s", model="mlp", params={"a": 1})
    with pytest.raises(UsageError, match=r"folder '.*missing' does not exist; create it first") as info:
        ip.run_line_magic("mlmd", f"export s -f {tmp_path / 'missing' / 's.yaml'}")
    assert "please report" not in str(info.value)


def plain(shown: Any) -> str:
    """What a terminal shows of captured output, without its colours."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", shown.out + shown.err)
