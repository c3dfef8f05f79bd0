"""``train(params, workdir=...)``: a Keras 3 model from the experiment dict, on whatever devices exist."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._builders import OutputSpec, get_builder
from ._data import InputSpec, count_examples, input_spec, load_arrays, sample_labels, tf_dataset
from ._interrupts import Interrupts
from ._progress import ProgressReporter
from ._quiet import import_keras

_OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad"}


@dataclass
class TrainResult:
    """What :func:`train` returns: plain values, JSON-serialisable but for nothing."""

    model_path: str
    task: str
    num_classes: int
    history: dict[str, list[float]]
    metrics: dict[str, dict[str, float]]
    device: str
    backend: str
    examples_per_second: float
    fit_seconds: float
    epochs: int
    input_features: list[str]
    input_dim: int
    seed: int
    mixed_precision: bool
    versions: dict[str, str] = field(default_factory=dict)
    task_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def code_version() -> str:
    """A hash of the trainer's own code and the Keras version: part of a run's cache key."""
    digest = hashlib.sha256()
    here = os.path.dirname(__file__)
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            with open(os.path.join(here, name), "rb") as fh:
                digest.update(name.encode() + b"\0" + fh.read())
    try:
        from importlib.metadata import version

        digest.update(version("keras").encode())
    except Exception:
        pass
    return digest.hexdigest()[:16]


# Whole-number labels with more distinct values than this are a regression target (a score,
# a count), not classes: a 347-class softmax on a disease-progression score trains nothing.
MAX_INFERRED_CLASSES = 20
# More classes than this is almost always a label that is really a number: warn.
WARN_CLASSES = 50


@dataclass(frozen=True)
class TaskChoice:
    """The task a model is trained for, its number of outputs, and why."""

    task: str
    num_classes: int
    reason: str


def explain_task(labels: np.ndarray, params: dict[str, Any]) -> TaskChoice:
    """The task (``binary``, ``multiclass``, ``regression``) for ``labels`` and why.

    ``params["task"]`` always wins. Otherwise: labels that are not whole numbers, or are
    negative, or take more than ``MAX_INFERRED_CLASSES`` (20) distinct values are a
    regression target; whole numbers 0/1 are binary; other whole numbers 0..K-1 are K
    classes. A multiclass task with more than ``WARN_CLASSES`` (50) classes warns.

    >>> import numpy as np
    >>> explain_task(np.array([25.0, 31.0, 346.0] * 10 + list(range(40, 80))), {}).task
    'regression'
    >>> explain_task(np.array([0, 1, 2, 3, 1]), {}).num_classes
    4
    """
    import warnings

    task = params.get("task")
    if labels.size == 0 and task is None:
        raise ValueError("the training split has no labels; set params.task to train anyway")
    try:
        values = labels.astype("float64")
    except (TypeError, ValueError):
        raise ValueError(f"the labels are text (e.g. {labels.flat[0]!r}); write classes as numbers 0..K-1 "
                         "(and name them with class_names when evaluating)") from None
    finite = bool(np.all(np.isfinite(values))) if values.size else True
    integral = finite and bool(np.all(values == np.round(values)))
    distinct = len(np.unique(values)) if values.size else 0
    if task is not None:
        reason = f"params.task = {task!r}"
    elif not integral:
        task, reason = "regression", "inferred: the labels are not all whole numbers"
    elif values.min() < 0:
        task, reason = "regression", "inferred: the labels include negative numbers"
    elif distinct > MAX_INFERRED_CLASSES:
        task, reason = "regression", (f"inferred: {distinct} distinct whole-number labels, more than "
                                      f"{MAX_INFERRED_CLASSES}; set params.task: multiclass for classes")
    elif values.max() <= 1:
        task, reason = "binary", "inferred: labels 0 and 1"
    else:
        task, reason = "multiclass", f"inferred: whole-number labels 0..{int(values.max())}"
    if task not in ("binary", "multiclass", "regression"):
        raise ValueError(f"params.task must be binary, multiclass or regression, got {task!r}")
    if task == "multiclass":
        if not integral and params.get("num_classes") is None:
            raise ValueError("params.task is multiclass but the labels are not whole numbers 0..K-1")
        classes = max(int(params.get("num_classes") or int(values.max()) + 1), 2)
        if classes > WARN_CLASSES:
            warnings.warn(f"training a {classes}-class model ({reason}); if the label is a number to predict, "
                          "set params.task: regression", UserWarning, stacklevel=2)
        return TaskChoice(task, classes, reason)
    return TaskChoice(task, 2 if task == "binary" else 1, reason)


def infer_task(labels: np.ndarray, params: dict[str, Any]) -> tuple[str, int]:
    """``("binary"|"multiclass"|"regression", num_classes)``; see :func:`explain_task` for the rule."""
    choice = explain_task(labels, params)
    return choice.task, choice.num_classes


def builder_fingerprint(name: str) -> str | None:
    """A hash of the source of model builder ``name`` (part of a run's cache key), or ``None``
    when its source cannot be read (a builder made by ``exec``, or in a compiled module).

    Re-registering a builder under the same name with other code changes the fingerprint, so
    runs of the new code are never answered with a model the old code built.
    """
    import inspect

    builder = get_builder(name)
    try:
        source = inspect.getsource(builder)
    except (OSError, TypeError):
        return None
    where = f"{getattr(builder, '__module__', '')}.{getattr(builder, '__qualname__', '')}"
    return hashlib.sha256(f"{where}\0{source}".encode()).hexdigest()[:16]


def _head(task: str, num_classes: int) -> OutputSpec:
    if task == "binary":
        return OutputSpec(task, 1, "sigmoid")
    if task == "multiclass":
        return OutputSpec(task, num_classes, "softmax")
    return OutputSpec(task, 1, None)


_REPORTED = {"binary": ("loss", "accuracy", "auc"), "multiclass": ("loss", "accuracy"), "regression": ("loss", "mae")}


def reported_metrics(task: str) -> list[str]:
    """The metrics a run of ``task`` reports for every split (what :func:`_loss_and_metrics` compiles).

    >>> reported_metrics("binary")
    ['loss', 'accuracy', 'auc']
    """
    return list(_REPORTED[task])


def _loss_and_metrics(task: str) -> tuple[Any, list[Any]]:
    import keras

    if task == "binary":
        return keras.losses.BinaryCrossentropy(), [keras.metrics.BinaryAccuracy(name="accuracy"),
                                                   keras.metrics.AUC(name="auc")]
    if task == "multiclass":
        return keras.losses.SparseCategoricalCrossentropy(), [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    return keras.losses.MeanSquaredError(), [keras.metrics.MeanAbsoluteError(name="mae")]


def _optimizer(params: dict[str, Any]) -> Any:
    import keras

    spec = params.get("optimizer", "adam")
    config = dict(spec) if isinstance(spec, dict) else {"name": spec}
    name = str(config.pop("name", "adam")).lower()
    if name not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}: use one of {', '.join(_OPTIMIZERS)}")
    config.setdefault("learning_rate", float(params.get("learning_rate", 1e-3)))
    return getattr(keras.optimizers, _OPTIMIZERS[name])(**config)


@dataclass
class _Devices:
    description: str
    gpus: int
    mixed_precision_ok: bool


def _devices(backend: str) -> _Devices:
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return _Devices("cpu", 0, False)
        details = [tf.config.experimental.get_device_details(g) for g in gpus]
        capability = min((d.get("compute_capability") or (0, 0)) for d in details)
        names = {d.get("device_name", "GPU") for d in details}
        return _Devices(f"{len(gpus)} x {'/'.join(sorted(names))}", len(gpus), tuple(capability) >= (7, 0))
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        if not gpus:
            return _Devices("cpu", 0, False)
        return _Devices(f"{len(gpus)} x {gpus[0].device_kind}", len(gpus), True)
    return _Devices("cpu", 0, False)


class _KerasBridge:
    """Forwards Keras' batch and epoch events to the trainer's plain callbacks, and stops the
    training at the next batch or epoch end after an interrupt that something below swallowed."""

    def __init__(self, callbacks: Sequence[Any], interrupts: Interrupts) -> None:
        import keras

        outer = callbacks

        stepped = [cb for cb in callbacks if hasattr(cb, "on_batch_end")]

        class Bridge(keras.callbacks.Callback):  # type: ignore[misc]
            def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
                interrupts.check()
                try:
                    for cb in stepped:  # logs stay as Keras gives them: a callback converts what it draws
                        cb.on_batch_end(batch, logs)
                except KeyboardInterrupt as exc:  # remembered, whatever Keras makes of it on its way up
                    interrupts.note(exc)
                    raise

            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                interrupts.check()
                plain = {k: float(v) for k, v in (logs or {}).items()}
                try:
                    for cb in outer:
                        if hasattr(cb, "on_epoch_end"):
                            cb.on_epoch_end(epoch, plain)
                except KeyboardInterrupt as exc:
                    interrupts.note(exc)
                    raise

        self.callback = Bridge()


def _notify(callbacks: Sequence[Any], event: str, info: dict[str, Any]) -> None:
    for cb in callbacks:
        if hasattr(cb, event):
            getattr(cb, event)(info)


def train(
    params: dict[str, Any],
    *,
    workdir: str,
    callbacks: Sequence[Any] | None = None,
    progress: bool | ProgressReporter = True,
) -> TrainResult:
    """Train the model an experiment dict describes and save it under ``workdir``.

    Parameters
    ----------
    params : the dict :meth:`mlmd_magic.Store.get_experiment` returns (``datasource``,
        ``scenario.model``, ``params``). Known params: ``epochs``, ``batch_size``,
        ``learning_rate``, ``optimizer``, ``seed``, ``task``, ``num_classes``, ``features``,
        ``mixed_precision``, plus the builder's own (``hidden``, ``filters``, ...).
    workdir : folder for ``model.keras`` (created; a model already there is replaced).
    callbacks : objects with any of ``on_train_begin(info)``, ``on_batch_end(step, logs)``,
        ``on_epoch_end(epoch, logs)``, ``on_train_end(info)``; a :class:`ProgressReporter` is
        added when ``progress`` (or ``progress`` itself, when it is one).

    Raises
    ------
    KeyboardInterrupt
        Re-raised after a clean stop: no model file is left behind. A Ctrl-C anywhere in the
        training ends so — also one that Keras or TensorFlow swallowed (the training stops at
        the next batch or epoch end, or after the evaluation or the save it came in) or turned
        into another error (a bare ``except:`` in Keras' ``shape()`` makes one landing in
        ``fit``'s tracing a ``TypeError`` about converting ``(None,)``): see :class:`Interrupts`.
    ValueError
        For params the trainer cannot use (unknown builder, optimizer, task, features).
    """
    cbs = list(callbacks or [])
    if isinstance(progress, ProgressReporter):
        cbs.append(progress)
    elif progress:
        cbs.append(ProgressReporter())
    model_path = os.path.join(workdir, "model.keras")
    begun: list[dict[str, Any]] = []  # what on_train_begin was told, once it was
    with Interrupts() as interrupts:
        try:
            result = _train(params, workdir, model_path, cbs, interrupts, begun)
            _notify(cbs, "on_train_end", {**begun[0], "status": "complete"})
            interrupts.check()
            return result
        except BaseException as exc:
            interrupt = interrupts.interrupted_by(exc)
            if interrupt is None:
                raise
            with interrupts.deferred():  # a second Ctrl-C must not leave half a model behind
                if os.path.exists(model_path):
                    os.remove(model_path)
            if begun:
                _notify(cbs, "on_train_end", {**begun[0], "status": "canceled"})
            if interrupt is exc:
                raise
            raise interrupt  # the error a library made of it stays attached as the context


def _train(params: dict[str, Any], workdir: str, model_path: str, cbs: list[Any], interrupts: Interrupts,
           begun: list[dict[str, Any]]) -> TrainResult:
    """The body of :func:`train`, which turns what an interrupt became back into one."""
    keras = import_keras()  # without TensorFlow's native start-up lines

    backend = keras.backend.backend()
    p = dict(params.get("params") or {})
    datasource = params["datasource"]
    model_name = params["scenario"]["model"]
    builder = get_builder(model_name)
    seed = int(p.get("seed", 0))
    epochs = int(p.get("epochs", 10))
    batch_size = int(p.get("batch_size", 64))

    keras.utils.set_random_seed(seed)
    devices = _devices(backend)
    if backend == "tensorflow" and devices.gpus == 0:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()

    spec = input_spec(datasource, p)
    choice = explain_task(sample_labels(datasource, "train", spec), p)
    task, num_classes = choice.task, choice.num_classes
    use_tf_data = datasource["format"] == "tfrecord" and backend == "tensorflow"
    splits = list(datasource["splits"])
    train_data, n_train, eval_sets = _prepare(datasource, splits, spec, task, batch_size, seed, use_tf_data)

    mixed = bool(p.get("mixed_precision", True)) and devices.mixed_precision_ok
    previous_policy = keras.config.dtype_policy()
    if mixed:
        keras.config.set_dtype_policy("mixed_float16")
    scope = _distribution_scope(backend, devices)
    try:
        with scope:
            normalizer = keras.layers.Normalization(name="normalize")
            _adapt(normalizer, train_data, use_tf_data)
            model = builder(spec.dim, _head(task, num_classes), p, normalizer)
            loss, metrics = _loss_and_metrics(task)
            model.compile(optimizer=_optimizer(p), loss=loss, metrics=metrics)
        info = {"model": model_name, "device": devices.description, "backend": backend, "epochs": epochs,
                "task": task, "task_reason": choice.reason, "num_classes": num_classes, "examples": n_train,
                "steps": -(-n_train // batch_size)}
        interrupts.check()
        begun.append(info)
        _notify(cbs, "on_train_begin", info)
        os.makedirs(workdir, exist_ok=True)
        validation = eval_sets.get("eval")
        started = time.perf_counter()
        history = model.fit(
            train_data if use_tf_data else train_data[0],
            None if use_tf_data else train_data[1],
            batch_size=None if use_tf_data else batch_size,
            epochs=epochs,
            validation_data=validation,
            shuffle=not use_tf_data,
            verbose=0,
            callbacks=[_KerasBridge(cbs, interrupts).callback],
        )
        fit_seconds = time.perf_counter() - started
        interrupts.check()
        epochs_run = len(history.history.get("loss", [])) or epochs
        results = {}
        for split, data in eval_sets.items():
            results[split] = _evaluate(model, data, use_tf_data, batch_size)
            interrupts.check()
        model.save(model_path)
        interrupts.check()
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return TrainResult(
        model_path=os.path.abspath(model_path),
        task=task,
        num_classes=num_classes,
        history={k: [float(x) for x in v] for k, v in history.history.items()},
        metrics=results,
        device=devices.description,
        backend=backend,
        examples_per_second=n_train * epochs_run / fit_seconds if fit_seconds > 0 else 0.0,
        fit_seconds=fit_seconds,
        epochs=epochs_run,
        input_features=list(spec.features),
        input_dim=spec.dim,
        seed=seed,
        mixed_precision=mixed,
        versions=package_versions(backend),
        task_reason=choice.reason,
    )


def _prepare(datasource: dict[str, Any], splits: list[str], spec: InputSpec, task: str, batch_size: int,
             seed: int, use_tf_data: bool) -> tuple[Any, int, dict[str, Any]]:
    """Training data, its example count, and every split for evaluation."""
    if "train" not in splits:
        raise ValueError(f"the data source needs a 'train' split to train on; it has {splits}")
    label_dtype = "float32" if task == "regression" else "int64"
    if use_tf_data:
        counts = {s: count_examples(datasource, s) for s in splits}
        train = tf_dataset(datasource, "train", spec, batch_size=batch_size, task=task, shuffle=True, seed=seed,
                           count=counts["train"])
        evals = {s: tf_dataset(datasource, s, spec, batch_size=batch_size, task=task, shuffle=False, seed=seed,
                               count=counts[s]) for s in splits}
        return train, counts["train"], evals
    arrays = {s: load_arrays(datasource, s, spec) for s in splits}
    train_xy = (arrays["train"][0], arrays["train"][1].astype(label_dtype))
    evals = {s: (x, y.astype(label_dtype)) for s, (x, y, _) in arrays.items()}
    return train_xy, len(train_xy[1]), evals


def _evaluate(model: Any, data: Any, use_tf_data: bool, batch_size: int) -> dict[str, float]:
    if use_tf_data:
        values = model.evaluate(data, verbose=0, return_dict=True)
    else:
        values = model.evaluate(data[0], data[1], batch_size=batch_size, verbose=0, return_dict=True)
    return {k: float(v) for k, v in values.items()}


def _adapt(normalizer: Any, train_data: Any, use_tf_data: bool) -> None:
    if use_tf_data:
        normalizer.adapt(train_data.map(lambda x, y: x))
    else:
        normalizer.adapt(train_data[0])


class _NullScope:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _distribution_scope(backend: str, devices: _Devices) -> Any:
    """Several GPUs: a data-parallel distribution; otherwise nothing."""
    if devices.gpus < 2:
        return _NullScope()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.distribute.MirroredStrategy().scope()
    import keras

    keras.distribution.set_distribution(keras.distribution.DataParallel())
    return _NullScope()


def package_versions(backend: str) -> dict[str, str]:
    """The versions of the packages a training depends on (keras, tensorflow, jax, numpy), and the backend."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("keras", "tensorflow", "jax", "numpy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    out["backend"] = backend
    return out


@dataclass
class Predictions:
    """Labels, model outputs and requested feature columns of one split."""

    labels: np.ndarray
    scores: np.ndarray
    columns: dict[str, np.ndarray]
    task: str


def predict(params: dict[str, Any], model_path: str, split: str, *, task: str,
            columns: Sequence[str] = (), batch_size: int = 1024) -> Predictions:
    """Run a saved model over a split; also return the named feature columns (for slicing)."""
    keras = import_keras()
    model = keras.saving.load_model(model_path, compile=False)
    spec = input_spec(params["datasource"], params.get("params") or {})
    x, y, extra = load_arrays(params["datasource"], split, spec, extra=tuple(columns))
    # direct calls, a batch at a time: model.predict traces a new function for each model loaded,
    # and TensorFlow warns about retracing after a few evaluations
    parts = [keras.ops.convert_to_numpy(model(x[i:i + batch_size], training=False))
             for i in range(0, len(x), batch_size)]
    scores = np.concatenate(parts).astype("float64") if parts else np.zeros((0, 1))
    if task != "multiclass":
        scores = scores.reshape(-1)
    return Predictions(labels=y, scores=scores, columns=extra, task=task)


def cleanup(workdir: str) -> None:
    """Remove a run's folder (used when a run is canceled)."""
    shutil.rmtree(workdir, ignore_errors=True)

