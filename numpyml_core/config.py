"""Experiment files: reading, validating against component signatures, and writing back.

A component's constructor keyword arguments (with type hints and defaults) are its config schema.
Everywhere in an experiment file, the key ``type`` names a registered component and the other keys
of that table are its parameters. The file's shape (see README.md):

.. code-block:: toml

    name = "mnist-basic"          # optional, defaults to the file's stem
    seed = 6942                   # optional, default 0
    [dataset]                     # type + the dataset's parameters; validation = N held out of train
    [[model.layers]]              # one table per layer, in order
    [cost]
    [optimizer]
    [training]                    # epochs, batch_size, shuffle, eval_splits, eval_batch_size
    [training.strategy]           # optional, default type = "serial"
    [training.schedule]           # optional learning-rate schedule
    [[training.transforms]]       # optional per-batch augmentation
    [[callbacks]]                 # optional extra training callbacks
"""

from __future__ import annotations

import inspect
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Union

from .errors import ConfigError, did_you_mean, nested_beyond, shorten

_MISSING = inspect.Parameter.empty


# --------------------------------------------------------------------------------------------
# checking values against type hints
# --------------------------------------------------------------------------------------------
def _type_name(annotation: Any) -> str:
    if annotation is _MISSING or annotation is Any:
        return "any"
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        inner = _type_name(args[0]) if args else "any"
        return f"a list of {inner}"
    if origin is dict or annotation is dict:
        return "a table"
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


def coerce(value: Any, annotation: Any) -> Any:
    """Return ``value`` converted to ``annotation`` (ints to floats, lists to tuples) or raise
    ``TypeError`` with what was expected."""
    if annotation is _MISSING or annotation is Any or annotation is object:
        return value
    origin = typing.get_origin(annotation)
    if origin is Literal:
        if value in typing.get_args(annotation) and type(value) in {type(a) for a in typing.get_args(annotation)}:
            return value
        raise TypeError(f"expected {_type_name(annotation)}, got {shorten(value)}")
    if origin in (Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        # exact types first, so "int | str" keeps ints as ints
        for arg in args:
            if arg is not type(None) and isinstance(arg, type) and type(value) is arg:
                return value
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg)
            except TypeError:
                continue
        raise TypeError(f"expected {_type_name(annotation)}, got {shorten(value)}")
    if origin in (list, tuple) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected {_type_name(annotation)}, got {shorten(value)}")
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        if origin is tuple and len(args) > 1 and Ellipsis not in typing.get_args(annotation):
            if len(value) != len(args):
                raise TypeError(f"expected a list of {len(args)} values, got {shorten(value)}")
            items = [coerce(v, a) for v, a in zip(value, args)]
        else:
            items = [coerce(v, args[0]) if args else v for v in value]
        return tuple(items) if (origin is tuple or annotation is tuple) else items
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected a table, got {shorten(value)}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"expected true or false, got {shorten(value)}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError(f"expected an integer, got {shorten(value)}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise TypeError(f"expected a finite number, got {shorten(value)}")
            return float(value)
        raise TypeError(f"expected a number, got {shorten(value)}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise TypeError(f"expected a string, got {shorten(value)}")
    if annotation is type(None):
        if value is None:
            return None
        raise TypeError(f"expected nothing, got {shorten(value)}")
    if isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
        raise TypeError(f"expected {_type_name(annotation)}, got {shorten(value)}")
    return value


def signature_of(factory: Any) -> list[inspect.Parameter]:
    """The keyword parameters of a factory (for a class, of its ``__init__``), with resolved hints."""
    sig = inspect.signature(factory)
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable hints fall back to the raw annotations
        hints = {}
    params = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        params.append(p.replace(annotation=hints.get(p.name, p.annotation)))
    return params


def accepts_any_keyword(factory: Any) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values())


def check_params(component: Any, params: dict[str, Any], where: str) -> None:
    """Validate (and coerce in place) ``params`` against the component's factory signature."""
    parameters = {p.name: p for p in signature_of(component.factory)}
    if not accepts_any_keyword(component.factory):
        for key in params:
            if key not in parameters:
                known = ", ".join(parameters) or "none"
                raise ConfigError(
                    f"{where}: unknown parameter {shorten(key)}{did_you_mean(key, parameters)}; "
                    f"its parameters are: {known}."
                )
    for name, p in parameters.items():
        if name in params:
            try:
                params[name] = coerce(params[name], p.annotation)
            except TypeError as exc:
                raise ConfigError(f"{where}: parameter '{name}': {exc}.") from None
        elif p.default is _MISSING:
            raise ConfigError(f"{where}: missing required parameter '{name}' ({_type_name(p.annotation)}).")


def describe_params(factory: Any) -> list[tuple[str, str, str]]:
    """(name, type, default) for every parameter: what ``numpyml info`` prints."""
    rows = []
    for p in signature_of(factory):
        default = "required" if p.default is _MISSING else repr(p.default)
        rows.append((p.name, _type_name(p.annotation), default))
    return rows


# --------------------------------------------------------------------------------------------
# experiment specification
# --------------------------------------------------------------------------------------------
@dataclass
class ComponentSpec:
    """``type`` plus parameters, and where it came from (for messages)."""

    kind: str
    type: str
    params: dict[str, Any]
    where: str

    def as_table(self) -> dict[str, Any]:
        return {"type": self.type, **self.params}


@dataclass
class TrainingSpec:
    epochs: int = 10
    batch_size: int = 32
    shuffle: bool = True
    eval_splits: list[str] | None = None  # default: every split but train
    eval_batch_size: int = 1000
    eval_train: bool = False  # also evaluate on the (whole) training split each epoch
    eval_flip: bool = False  # average predictions over each image and its horizontal mirror


@dataclass
class ExperimentSpec:
    name: str
    seed: int
    dataset: ComponentSpec
    validation: int
    layers: list[ComponentSpec]
    cost: ComponentSpec
    optimizer: ComponentSpec
    training: TrainingSpec
    strategy: ComponentSpec
    schedule: ComponentSpec | None = None
    transforms: list[ComponentSpec] = field(default_factory=list)
    callbacks: list[ComponentSpec] = field(default_factory=list)
    source: str = "<experiment>"
    raw: dict[str, Any] = field(default_factory=dict)
    requires: list[str] = field(default_factory=list)  # [plugins] require, checked when parsed

    def to_dict(self) -> dict[str, Any]:
        """The resolved experiment (every parameter, defaults included) as TOML-ready tables."""
        training: dict[str, Any] = {
            k: v for k, v in vars(self.training).items() if v is not None
        }
        training["strategy"] = self.strategy.as_table()
        if self.schedule is not None:
            training["schedule"] = self.schedule.as_table()
        if self.transforms:
            training["transforms"] = [t.as_table() for t in self.transforms]
        out: dict[str, Any] = {
            "name": self.name,
            "seed": self.seed,
            "dataset": {**self.dataset.as_table(), "validation": self.validation},
            "model": {"layers": [layer.as_table() for layer in self.layers]},
            "cost": self.cost.as_table(),
            "optimizer": self.optimizer.as_table(),
            "training": training,
        }
        if self.callbacks:
            out["callbacks"] = [c.as_table() for c in self.callbacks]
        if self.requires:
            out["plugins"] = {"require": list(self.requires)}
        return out


# "provenance" is written into a run's config.toml (versions used) and ignored when read back
_TOP_KEYS = {"name", "seed", "dataset", "model", "cost", "optimizer", "training", "callbacks", "plugins", "provenance"}


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table, got {shorten(value)}.")
    return value


def _component(kind: str, table: Any, where: str, registry: Any, reserved: tuple[str, ...] = ()) -> ComponentSpec:
    if isinstance(table, str):  # shorthand: cost = "cross_entropy"
        table = {"type": table}
    table = dict(_table(table, where))
    type_name = table.pop("type", None)
    if type_name is None:
        raise ConfigError(f"{where}: missing key 'type' (the name of a registered {kind}).")
    if not isinstance(type_name, str):
        raise ConfigError(f"{where}: 'type' must be a string naming a {kind}, got {shorten(type_name)}.")
    for key in reserved:
        table.pop(key, None)
    try:
        component = registry.get(kind, type_name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    spec = ComponentSpec(kind, type_name, table, where)
    fill_defaults(component, spec.params, where)
    return spec


def fill_defaults(component: Any, params: dict[str, Any], where: str) -> None:
    """Validate ``params`` and add every default, so the resolved config is complete."""
    check_params(component, params, where)
    for p in signature_of(component.factory):
        if p.name not in params and p.default is not _MISSING:
            default = p.default
            if isinstance(default, tuple):
                default = list(default)
            params[p.name] = default


_NAME_MAX = 100
_SAFE_NAME = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9._-]{{0,{_NAME_MAX - 1}}}")


def safe_name(text: str) -> str:
    """``text`` made into an experiment name (the default one, from the file name): every character
    but ASCII letters, digits, ``-``, ``_`` and ``.`` replaced by ``_``, no leading ``.``, at most
    100 characters; ``experiment`` if nothing is left."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".")[:_NAME_MAX]
    return name or "experiment"


def parse_experiment(data: dict[str, Any], source: str, registry: Any) -> ExperimentSpec:
    """Validate a parsed TOML document. Every error names ``source`` and the key."""
    def where(key: str) -> str:
        return f"{source}: [{key}]"

    check_depth(data, source)  # before anything below walks the values recursively

    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(
                f"{source}: unknown top-level key {shorten(key)}{did_you_mean(key, _TOP_KEYS)}; "
                f"expected some of: {', '.join(sorted(_TOP_KEYS))}."
            )
    # before any component is looked up: "numpyml-swish is not installed" beats "unknown layer 'swish'"
    requires = check_requirements(data.get("plugins", {}), source)
    for required in ("dataset", "model", "cost", "optimizer"):
        if required not in data:
            raise ConfigError(f"{source}: missing section [{required}].")

    name = data["name"] if "name" in data else safe_name(Path(source).stem)
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise ConfigError(
            f"{source}: 'name' must be a file name of 1 to {_NAME_MAX} letters, digits, '-', '_' or '.' (not "
            f"starting with '.'), as it names the run folder runs/<name>-<time>; got {name!r}."
        )
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"{source}: 'seed' must be a non-negative integer, got {shorten(seed)}.")

    dataset_table = _table(data["dataset"], where("dataset"))
    validation = dataset_table.get("validation", 0)
    if not isinstance(validation, int) or isinstance(validation, bool) or validation < 0:
        raise ConfigError(
            f"{where('dataset')}: 'validation' must be a non-negative integer (samples held out of "
            f"the training split), got {shorten(validation)}."
        )
    dataset = _component("dataset", dataset_table, where("dataset"), registry, reserved=("validation",))

    model = _table(data["model"], where("model"))
    for key in model:
        if key != "layers":
            raise ConfigError(f"{where('model')}: unknown key {shorten(key)}; expected 'layers' ([[model.layers]]).")
    layer_tables = model.get("layers")
    if not isinstance(layer_tables, list) or not layer_tables:
        raise ConfigError(f"{where('model')}: expected at least one [[model.layers]] table.")
    layers = [
        _component("layer", table, f"{source}: [[model.layers]] #{i + 1}", registry)
        for i, table in enumerate(layer_tables)
    ]
    cost = _component("cost", data["cost"], where("cost"), registry)
    optimizer = _component("optimizer", data["optimizer"], where("optimizer"), registry)

    training_table = dict(_table(data.get("training", {}), where("training")))
    strategy_table = training_table.pop("strategy", {"type": "serial"})
    schedule_table = training_table.pop("schedule", None)
    transform_tables = training_table.pop("transforms", [])
    known = {f.name: f for f in TrainingSpec.__dataclass_fields__.values()}
    for key, value in training_table.items():
        if key not in known:
            raise ConfigError(
                f"{where('training')}: unknown key {shorten(key)}{did_you_mean(key, known)}; expected some of: "
                f"{', '.join(list(known) + ['strategy', 'schedule', 'transforms'])}."
            )
        hints = typing.get_type_hints(TrainingSpec)
        try:
            training_table[key] = coerce(value, hints[key])
        except TypeError as exc:
            raise ConfigError(f"{where('training')}: '{key}': {exc}.") from None
    training = TrainingSpec(**training_table)
    for key in ("epochs", "batch_size", "eval_batch_size"):
        if getattr(training, key) < 1:
            raise ConfigError(f"{where('training')}: '{key}' must be at least 1, got {getattr(training, key)}.")
    strategy = _component("strategy", strategy_table, f"{source}: [training.strategy]", registry)
    schedule = (
        _component("schedule", schedule_table, f"{source}: [training.schedule]", registry)
        if schedule_table is not None else None
    )
    if not isinstance(transform_tables, list):
        raise ConfigError(f"{source}: [[training.transforms]] must be a list of tables.")
    transforms = [
        _component("transform", t, f"{source}: [[training.transforms]] #{i + 1}", registry)
        for i, t in enumerate(transform_tables)
    ]
    callback_tables = data.get("callbacks", [])
    if not isinstance(callback_tables, list):
        raise ConfigError(f"{source}: [[callbacks]] must be a list of tables.")
    callbacks = [
        _component("callback", t, f"{source}: [[callbacks]] #{i + 1}", registry)
        for i, t in enumerate(callback_tables)
    ]
    return ExperimentSpec(
        name=name, seed=seed, dataset=dataset, validation=validation, layers=layers, cost=cost,
        optimizer=optimizer, training=training, strategy=strategy, schedule=schedule,
        transforms=transforms, callbacks=callbacks, source=source, raw=data, requires=requires,
    )


# --------------------------------------------------------------------------------------------
# [plugins] require: the distributions an experiment needs
# --------------------------------------------------------------------------------------------
def parse_requirement(text: str) -> Any:
    """``"numpyml-swish>=0.1,<2"`` as a :class:`packaging.requirements.Requirement` (what pip reads);
    raises ``ValueError`` for what is not a distribution name with optional version specifiers."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        raise ValueError(f"cannot read the version specifier ({str(exc).splitlines()[0]}); expected a distribution "
                         'name and optional version specifiers, like "numpyml-swish>=0.1"') from None
    if requirement.url or requirement.marker or requirement.extras:
        raise ValueError('only a distribution name and version specifiers are checked, like "numpyml-swish>=0.1" '
                         "(no extras, URL or environment marker)")
    return requirement


def check_requirements(plugins: Any, source: str) -> list[str]:
    """Validate an experiment's ``[plugins]`` table and check that every distribution in
    ``require`` is installed in a matching version. Raises :class:`ConfigError` (exit status 2)
    naming the missing or too-old distribution; returns the requirement strings."""
    from importlib import metadata

    from packaging.version import InvalidVersion

    where = f"{source}: [plugins]"
    plugins = _table(plugins, where)
    for key in plugins:
        if key != "require":
            raise ConfigError(f"{where}: unknown key {shorten(key)}{did_you_mean(key, ['require'])}; expected 'require', a "
                              'list of distributions such as require = ["numpyml-swish>=0.1"].')
    require = plugins.get("require", [])
    if not isinstance(require, list) or not all(isinstance(r, str) for r in require):
        raise ConfigError(f'{where}: require must be a list of strings such as ["numpyml-swish>=0.1"], got {shorten(require)}.')
    for text in require:
        try:
            requirement = parse_requirement(text)
        except ValueError as exc:
            raise ConfigError(f"{where}: require: {shorten(text)}: {exc}.") from None
        name = requirement.name
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise ConfigError(
                f"{where}: this experiment needs the distribution {name} ('{text}'), which is not installed. "
                f"Install it (pip install '{text}'), then check with 'numpyml list'."
            ) from None
        try:  # prereleases=True: an installed 1.0rc1 satisfies >=1.0rc1 (and >=0.9), as when pip installed it
            unmet = sorted(str(s) for s in requirement.specifier if not s.contains(installed, prereleases=True))
        except InvalidVersion:
            raise ConfigError(f"{where}: require: {shorten(text)}: the installed {name} has the version "
                              f"{shorten(installed)}, which is not a PEP 440 version and cannot be compared.") from None
        if unmet:
            raise ConfigError(
                f"{where}: this experiment needs {text} but {name} {installed} is installed (it does not satisfy "
                f"{', '.join(unmet)}). Install a matching version (pip install '{text}')."
            )
    return list(require)


#: how deeply arrays and tables may nest in an experiment (a real one needs about 5 levels:
#: ``[[model.layers]]`` > ``activation = {type = ..., ...}`` > a list parameter)
MAX_DEPTH = 32


def _nested_too_deep(source: Any, where: str = "") -> ConfigError:
    at = f" at {where}" if where else ""
    return ConfigError(
        f"{source}: nested too deep{at}: arrays or tables inside each other more than {MAX_DEPTH} levels "
        "deep. An experiment file needs a few levels ([[model.layers]], a layer's activation table, a list); "
        "check the brackets and braces, and dotted table names such as [model.layers.activation.x.y...]."
    )


def check_depth(data: Any, source: Any) -> None:
    """Raise :class:`ConfigError` naming ``source`` and the key if arrays and tables in ``data``
    nest more than :data:`MAX_DEPTH` levels deep. Iterative (:func:`~numpyml_core.errors.nested_beyond`),
    so it runs before any recursive processing of the experiment: type checks, messages, the writer."""
    path = nested_beyond(data, MAX_DEPTH)
    if path is not None:
        where = "".join(f" #{key + 1}" if isinstance(key, int) else f".{repr(str(key)[:24])[1:-1]}"
                        for key in path[:6])
        raise _nested_too_deep(source, where.lstrip(".") + "...")


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such experiment file.") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected an experiment .toml file.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the experiment file ({exc.strerror}).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}.") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise _nested_too_deep(path) from None
    check_depth(data, path)
    return data


def _override_error(source: str, key: str, value: Any, problem: str) -> ConfigError:
    return ConfigError(f"{source}: override {key} = {shorten(value)}: {problem}")


def apply_overrides(data: dict[str, Any], overrides: list[tuple[str, Any]], source: str) -> dict[str, Any]:
    """A copy of the experiment table ``data`` with ``overrides`` set: each a dotted key
    (``training.epochs``, ``model.layers.1.units``: a number indexes a list, from 0) and its value.
    Missing tables on the way are created (the experiment's validation then names a misspelt key);
    a list index out of range or a key that is not a string is a :class:`ConfigError` naming it."""
    import copy

    data = copy.deepcopy(data)
    for key, value in overrides:
        parts = key.split(".") if isinstance(key, str) else []
        if not parts or not all(parts):
            raise _override_error(source, str(key), value, "expected a dotted key such as training.epochs "
                                  "or model.layers.0.units.")
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                where = ".".join(parts[:depth])
                if not part.isdigit() or int(part) >= len(node):
                    raise _override_error(source, key, value, f"{where} is a list of {len(node)}; expected an "
                                          f"index from 0 to {len(node) - 1} after '{where}.', got '{part}'.")
                part = int(part)
            elif not isinstance(node, dict):
                break  # e.g. training = 5: the validation says "[training]: expected a table"
            elif not last and part not in node:
                node[part] = {}
            if last:
                node[part] = value
            else:
                node = node[part]
    return data


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` (what ``numpyml run --set`` takes) as the ``overrides`` of
    :meth:`~numpyml_core.Experiment.load`: ``{"model.layers.1.units": 256, ...}``. VALUE is read as a TOML
    value (``0.3``, ``true``, ``"he"``, ``[3, 3]``); a bare word that is not TOML is a string (``relu``).
    An item without ``=`` or with an empty key is a :class:`ConfigError`; a later item wins over an earlier."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, equals, text = item.partition("=")
        if not equals or not key.strip():
            raise ConfigError(
                f"--set {shorten(item)}: expected KEY=VALUE, a dotted key and a TOML value, such as --set "
                "training.epochs=1, --set model.layers.1.units=256 or --set optimizer.type=\"adam\" (a bare word "
                "is a string)."
            )
        try:
            value = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        overrides[key.strip()] = value
    return overrides


def parse_with_overrides(data: dict[str, Any], source: str, registry: Any,
                         overrides: dict[str, Any] | None = None) -> ExperimentSpec:
    """:func:`parse_experiment` of ``data`` with ``overrides`` (see :func:`apply_overrides`) set.
    ``data`` is not changed. An error that an override causes names that override."""
    check_depth(data, source)  # before the copy walks it recursively
    items = list((overrides or {}).items())
    if not items:
        return parse_experiment(data, source, registry)
    try:
        return parse_experiment(apply_overrides(data, items, source), source, registry)
    except ConfigError as exc:
        error = exc
    for count in range(len(items)):  # the first override after which the experiment no longer validates
        try:
            parse_experiment(apply_overrides(data, items[:count + 1], source), source, registry)
        except ConfigError as exc:
            if count == 0:
                try:
                    parse_experiment(data, source, registry)
                except ConfigError:
                    raise error from None  # the experiment itself is wrong
            message = str(exc).removeprefix(f"{source}: ")
            key, value = items[count]
            raise _override_error(source, key, value, message) from None
    raise error


def load_experiment(path: str | Path, registry: Any, overrides: dict[str, Any] | None = None) -> ExperimentSpec:
    """Read and validate an experiment file; ``overrides`` maps dotted keys (``training.epochs``,
    ``model.layers.0.units``) to values, validated as the file's own keys are."""
    return parse_with_overrides(read_toml(path), str(path), registry, overrides)


# --------------------------------------------------------------------------------------------
# writing TOML (the resolved config.toml)
# --------------------------------------------------------------------------------------------
def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_without_none(v) for v in value]
    return value


def dumps_toml(data: dict[str, Any]) -> str:
    """Serialise nested dicts to TOML with ``tomli_w`` (``None`` values in tables are left out: TOML has
    no null). Every string, key, number (floats exactly, ``nan`` and ``inf`` included), date and time
    an experiment file can hold is written so that ``tomllib`` reads back the same value. Raises
    ``TypeError`` for a value TOML cannot hold (an object, a ``None`` inside a list)."""
    import tomli_w

    return tomli_w.dumps(_without_none(data))
