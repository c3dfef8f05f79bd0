"""Model builders: a registry from names (``"mlp"``, ``"cnn1d"``) to functions making Keras models.

Builders use Keras 3 APIs only, so the same code runs on the TensorFlow and JAX backends.
Register your own with :func:`register_model`::

    from mlmd_magic.trainer import register_model

    @register_model("wide")
    def wide(input_dim, output, params, normalizer):
        import keras
        inputs = keras.Input((input_dim,))
        x = normalizer(inputs) if normalizer is not None else inputs
        x = keras.layers.Dense(params.get("width", 512), activation="relu")(x)
        return keras.Model(inputs, output.layer()(x))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

Builder = Callable[[int, "OutputSpec", dict[str, Any], Any], Any]
_BUILDERS: dict[str, Builder] = {}


@dataclass(frozen=True)
class OutputSpec:
    """The model's head: units and activation for the task (float32 even under mixed precision)."""

    task: str
    units: int
    activation: str | None

    def layer(self) -> Any:
        import keras

        return keras.layers.Dense(self.units, activation=self.activation, dtype="float32", name="output")


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator: make ``builder`` available to scenarios as ``model: NAME``."""

    def decorate(builder: Builder) -> Builder:
        _BUILDERS[name] = builder
        return builder

    return decorate


def get_builder(name: str) -> Builder:
    if name not in _BUILDERS:
        known = ", ".join(sorted(_BUILDERS))
        raise ValueError(f"unknown model builder {name!r}: known builders are {known}; "
                         "register your own with mlmd_magic.trainer.register_model")
    return _BUILDERS[name]


def builders() -> list[str]:
    """Names of the registered model builders."""
    return sorted(_BUILDERS)


@register_model("mlp")
def mlp(input_dim: int, output: OutputSpec, params: dict[str, Any], normalizer: Any) -> Any:
    """Dense layers for tabular features: ``hidden`` (list of widths), ``activation``, ``dropout``."""
    import keras

    inputs = keras.Input((input_dim,), name="features")
    x = normalizer(inputs) if normalizer is not None else inputs
    for i, width in enumerate(params.get("hidden", [64, 32])):
        x = keras.layers.Dense(int(width), activation=params.get("activation", "relu"), name=f"dense_{i}")(x)
        if params.get("dropout"):
            x = keras.layers.Dropout(float(params["dropout"]), seed=int(params.get("seed", 0)) + i)(x)
    return keras.Model(inputs, output.layer()(x), name="mlp")


@register_model("cnn1d")
def cnn1d(input_dim: int, output: OutputSpec, params: dict[str, Any], normalizer: Any) -> Any:
    """1-D convolutions over a per-position profile (e.g. read fractions along the genome).

    Params: ``filters`` (list), ``kernel_size``, ``hidden`` (dense widths after pooling).
    """
    import keras

    inputs = keras.Input((input_dim,), name="features")
    x = normalizer(inputs) if normalizer is not None else inputs
    x = keras.layers.Reshape((input_dim, 1))(x)
    for i, filters in enumerate(params.get("filters", [16, 32])):
        x = keras.layers.Conv1D(int(filters), int(params.get("kernel_size", 3)), padding="same",
                                activation=params.get("activation", "relu"), name=f"conv_{i}")(x)
    x = keras.layers.Flatten()(x)  # keep positions: which chromosome deviates matters
    for i, width in enumerate(params.get("hidden", [32])):
        x = keras.layers.Dense(int(width), activation=params.get("activation", "relu"), name=f"dense_{i}")(x)
    return keras.Model(inputs, output.layer()(x), name="cnn1d")
