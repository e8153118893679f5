"""Experiment files: reading, validating against component signatures (a component's keyword arguments are its
config schema; ``type`` names the component), overrides, and writing back. The file's shape: README.md."""

from __future__ import annotations

import copy
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
_NONE = type(None)
#: what a value of these types is called in "expected ..." messages
_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string", _NONE: "nothing"}


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is _MISSING or annotation is Any:
        return "any"
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin in (list, tuple):
        args = tuple(a for a in args if a is not Ellipsis)
        return f"a list of {_type_name(args[0]) if args else 'any'}"
    if origin is dict or annotation is dict:
        return "a table"
    return "none" if annotation is _NONE else getattr(annotation, "__name__", str(annotation))


def coerce(value: Any, annotation: Any) -> Any:
    """Return ``value`` converted to ``annotation`` (ints to floats, lists to tuples) or raise
    ``TypeError`` with what was expected."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is _MISSING or annotation is Any or annotation is object:
        return value
    if origin is Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
    elif origin in (Union, types.UnionType):
        if value is None and _NONE in args:
            return None
        for arg in args:  # exact types first, so "int | str" keeps ints as ints
            if arg is not _NONE and isinstance(arg, type) and type(value) is arg:
                return value
        for arg in args:
            if arg is not _NONE:
                try:
                    return coerce(value, arg)
                except TypeError:
                    pass
    elif origin in (list, tuple) or annotation in (list, tuple):
        if isinstance(value, (list, tuple)):
            items = [a for a in args if a is not Ellipsis]
            if origin is tuple and len(items) > 1 and Ellipsis not in args:
                if len(value) != len(items):
                    raise TypeError(f"expected a list of {len(items)} values, got {shorten(value)}")
                value = [coerce(v, a) for v, a in zip(value, items)]
            else:
                value = [coerce(v, items[0]) if items else v for v in value]
            return tuple(value) if tuple in (origin, annotation) else value
    elif origin is dict or annotation is dict:
        if isinstance(value, dict):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise TypeError(f"expected a finite number, got {shorten(value)}")
            return float(value)
    elif isinstance(annotation, type):
        if isinstance(value, annotation) and not (annotation is int and isinstance(value, bool)):
            return value
    else:
        return value
    raise TypeError(f"expected {_EXPECTED.get(annotation) or _type_name(annotation)}, got {shorten(value)}")


def signature_of(factory: Any) -> list[inspect.Parameter]:
    """The keyword parameters of a factory (for a class, of its ``__init__``), with resolved hints."""
    try:
        hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    except Exception:  # noqa: BLE001 - unresolvable hints fall back to the raw annotations
        hints = {}
    parameters = inspect.signature(factory).parameters.values()
    return [p.replace(annotation=hints.get(p.name, p.annotation)) for p in parameters
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def validate_params(component: Any, params: dict[str, Any], where: str) -> None:
    """Validate (and coerce in place) ``params`` against the component's factory signature."""
    parameters = {p.name: p for p in signature_of(component.factory)}
    if not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(component.factory).parameters.values()):
        for key in params:
            if key not in parameters:
                raise ConfigError(f"{where}: unknown parameter {shorten(key)}{did_you_mean(key, parameters)}; "
                                  f"its parameters are: {', '.join(parameters) or 'none'}.")
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
    return [(p.name, _type_name(p.annotation), "required" if p.default is _MISSING else repr(p.default))
            for p in signature_of(factory)]


@dataclass
class ComponentSpec:
    """``type`` plus parameters, and where it came from (for messages)."""

    kind: str
    type: str
    params: dict[str, Any]
    where: str

    def as_table(self) -> dict[str, Any]:
        return {"type": self.type, **self.params}

    def create(self, manager: Any) -> Any:
        """The component, built by ``manager`` (a PluginManager); a :class:`ConfigError` names :attr:`where`."""
        try:
            return manager.create(self.kind, self.type, **dict(self.params))
        except ConfigError as exc:
            message = str(exc)
            raise ConfigError(message if message.startswith(self.where) else f"{self.where}: {message}") from None


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
        training = {k: v for k, v in vars(self.training).items() if v is not None}
        training["strategy"] = self.strategy.as_table()
        if self.schedule is not None:
            training["schedule"] = self.schedule.as_table()
        if self.transforms:
            training["transforms"] = [t.as_table() for t in self.transforms]
        out = {"name": self.name, "seed": self.seed,
               "dataset": {**self.dataset.as_table(), "validation": self.validation},
               "model": {"layers": [layer.as_table() for layer in self.layers]}, "cost": self.cost.as_table(),
               "optimizer": self.optimizer.as_table(), "training": training}
        if self.callbacks:
            out["callbacks"] = [c.as_table() for c in self.callbacks]
        if self.requires:
            out["plugins"] = {"require": list(self.requires)}
        return out


# "provenance" is written into a run's config.toml (versions used) and ignored when read back
_TOP_KEYS = {"name", "seed", "dataset", "model", "cost", "optimizer", "training", "callbacks", "plugins", "provenance"}
_NAME_MAX = 100
_SAFE_NAME = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9._-]{{0,{_NAME_MAX - 1}}}")


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table, got {shorten(value)}.")
    return value


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _component(kind: str, table: Any, where: str, registry: Any, reserved: tuple[str, ...] = ()) -> ComponentSpec:
    table = dict(_table({"type": table} if isinstance(table, str) else table, where))  # cost = "cross_entropy"
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
    validate_params(component, table, where)
    for p in signature_of(component.factory):  # every default, so the resolved config is complete
        if p.name not in table and p.default is not _MISSING:
            table[p.name] = list(p.default) if isinstance(p.default, tuple) else p.default
    return ComponentSpec(kind, type_name, table, where)


def _components(kind: str, tables: Any, where: str, registry: Any) -> list[ComponentSpec]:
    if not isinstance(tables, list):
        raise ConfigError(f"{where} must be a list of tables.")
    return [_component(kind, table, f"{where} #{i + 1}", registry) for i, table in enumerate(tables)]


def safe_name(text: str) -> str:
    """``text`` (a file name) made an experiment name: only ASCII letters, digits, ``-_.`` (others become ``_``),
    no leading ``.``, at most 100 characters; ``experiment`` if nothing is left."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".")[:_NAME_MAX] or "experiment"


def parse_experiment(data: dict[str, Any], source: str, registry: Any) -> ExperimentSpec:
    """Validate a parsed TOML document. Every error names ``source`` and the key."""
    reject_deep_nesting(data, source)  # before anything below walks the values recursively
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{source}: unknown top-level key {shorten(key)}{did_you_mean(key, _TOP_KEYS)}; "
                              f"expected some of: {', '.join(sorted(_TOP_KEYS))}.")
    # before any component is looked up: "numpyml-swish is not installed" beats "unknown layer 'swish'"
    requires = require_distributions(data.get("plugins", {}), source)
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
    if not _is_count(seed):
        raise ConfigError(f"{source}: 'seed' must be a non-negative integer, got {shorten(seed)}.")
    dataset_table = _table(data["dataset"], f"{source}: [dataset]")
    validation = dataset_table.get("validation", 0)
    if not _is_count(validation):
        raise ConfigError(f"{source}: [dataset]: 'validation' must be a non-negative integer (samples held out "
                          f"of the training split), got {shorten(validation)}.")
    dataset = _component("dataset", dataset_table, f"{source}: [dataset]", registry, reserved=("validation",))

    model = _table(data["model"], f"{source}: [model]")
    for key in model:
        if key != "layers":
            raise ConfigError(f"{source}: [model]: unknown key {shorten(key)}; expected 'layers' ([[model.layers]]).")
    if not isinstance(model.get("layers"), list) or not model["layers"]:
        raise ConfigError(f"{source}: [model]: expected at least one [[model.layers]] table.")
    layers = _components("layer", model["layers"], f"{source}: [[model.layers]]", registry)
    cost = _component("cost", data["cost"], f"{source}: [cost]", registry)
    optimizer = _component("optimizer", data["optimizer"], f"{source}: [optimizer]", registry)

    where = f"{source}: [training]"
    training_table = dict(_table(data.get("training", {}), where))
    strategy_table = training_table.pop("strategy", {"type": "serial"})
    schedule_table = training_table.pop("schedule", None)
    transform_tables = training_table.pop("transforms", [])
    hints = typing.get_type_hints(TrainingSpec)
    for key, value in training_table.items():
        if key not in hints:
            raise ConfigError(f"{where}: unknown key {shorten(key)}{did_you_mean(key, hints)}; expected some of: "
                              f"{', '.join(list(hints) + ['strategy', 'schedule', 'transforms'])}.")
        try:
            training_table[key] = coerce(value, hints[key])
        except TypeError as exc:
            raise ConfigError(f"{where}: '{key}': {exc}.") from None
    training = TrainingSpec(**training_table)
    for key in ("epochs", "batch_size", "eval_batch_size"):
        if getattr(training, key) < 1:
            raise ConfigError(f"{where}: '{key}' must be at least 1, got {getattr(training, key)}.")
    return ExperimentSpec(
        name=name, seed=seed, dataset=dataset, validation=validation, layers=layers, cost=cost,
        optimizer=optimizer, training=training,
        strategy=_component("strategy", strategy_table, f"{source}: [training.strategy]", registry),
        schedule=(None if schedule_table is None
                  else _component("schedule", schedule_table, f"{source}: [training.schedule]", registry)),
        transforms=_components("transform", transform_tables, f"{source}: [[training.transforms]]", registry),
        callbacks=_components("callback", data.get("callbacks", []), f"{source}: [[callbacks]]", registry),
        source=source, raw=data, requires=requires,
    )


def require_distributions(plugins: Any, source: str) -> list[str]:
    """Check an experiment's ``[plugins]`` table: every distribution in ``require`` installed in a matching version.
    Raises :class:`ConfigError` naming the missing or too-old one; returns the requirement strings."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion

    where = f"{source}: [plugins]"
    for key in _table(plugins, where):
        if key != "require":
            raise ConfigError(f"{where}: unknown key {shorten(key)}{did_you_mean(key, ['require'])}; expected "
                              "'require', a list of distributions such as require = [\"numpyml-swish>=0.1\"].")
    require = plugins.get("require", [])
    if not isinstance(require, list) or not all(isinstance(r, str) for r in require):
        raise ConfigError(f'{where}: require must be a list of strings such as ["numpyml-swish>=0.1"], got '
                          f"{shorten(require)}.")
    for text in require:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise ConfigError(f"{where}: require: {shorten(text)}: cannot read the version specifier "
                              f"({str(exc).splitlines()[0]}); expected a distribution name and optional version "
                              'specifiers, like "numpyml-swish>=0.1".') from None
        if requirement.url or requirement.marker or requirement.extras:
            raise ConfigError(f"{where}: require: {shorten(text)}: only a distribution name and version specifiers "
                              'are checked, like "numpyml-swish>=0.1" (no extras, URL or environment marker).')
        name = requirement.name
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise ConfigError(f"{where}: this experiment needs the distribution {name} ('{text}'), which is not "
                              f"installed. Install it (pip install '{text}'), then check with 'numpyml list'."
                              ) from None
        try:  # prereleases=True: an installed 1.0rc1 satisfies >=1.0rc1 (and >=0.9), as when pip installed it
            unmet = sorted(str(s) for s in requirement.specifier if not s.contains(installed, prereleases=True))
        except InvalidVersion:
            raise ConfigError(f"{where}: require: {shorten(text)}: the installed {name} has the version "
                              f"{shorten(installed)}, which is not a PEP 440 version and cannot be compared.") from None
        if unmet:
            raise ConfigError(f"{where}: this experiment needs {text} but {name} {installed} is installed (it does "
                              f"not satisfy {', '.join(unmet)}). Install a matching version (pip install '{text}').")
    return list(require)


#: how deeply arrays and tables may nest in an experiment (a real one needs about 5 levels)
MAX_DEPTH = 32


def _too_deep(source: Any, where: str = "") -> ConfigError:
    return ConfigError(
        f"{source}: nested too deep{where}: arrays or tables inside each other more than {MAX_DEPTH} levels deep. "
        "An experiment file needs a few levels ([[model.layers]], a layer's activation table, a list); check the "
        "brackets and braces, and dotted table names such as [model.layers.activation.x.y...]."
    )


def reject_deep_nesting(data: Any, source: Any) -> None:
    """Raise :class:`ConfigError` naming ``source`` and the key if arrays and tables in ``data`` nest more
    than :data:`MAX_DEPTH` levels deep; iterative, so it runs before anything walks ``data`` recursively."""
    path = nested_beyond(data, MAX_DEPTH)
    if path is not None:
        where = "".join(f" #{key + 1}" if isinstance(key, int) else f".{repr(str(key)[:24])[1:-1]}" for key in path[:6])
        raise _too_deep(source, f" at {where.lstrip('.')}...")


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML file ``path`` as nested dicts; every failure is a :class:`ConfigError` naming it."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such experiment file.") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected an experiment .toml file.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the experiment file ({exc.strerror}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}.") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise _too_deep(path) from None
    reject_deep_nesting(data, path)
    return data


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` (``numpyml run --set``) as the ``overrides`` of :meth:`~numpyml_core.Experiment.load`:
    each VALUE read as a TOML value (``0.3``, ``true``, ``"he"``, ``[3, 3]``), a bare word that is not TOML as a
    string. An item without ``=`` or key is a :class:`ConfigError`; a later item for a key wins. See docs/api.md."""
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


def _override_error(source: str, key: str, value: Any, problem: str) -> ConfigError:
    return ConfigError(f"{source}: override {key} = {shorten(value)}: {problem}")


def apply_overrides(data: dict[str, Any], overrides: list[tuple[str, Any]], source: str) -> dict[str, Any]:
    """A copy of ``data`` with ``overrides`` set, each a dotted key (a number indexes a list) and a value; missing
    tables on the way are created. A bad index or key is a :class:`ConfigError` naming the override."""
    data = copy.deepcopy(data)
    for key, value in overrides:
        parts = key.split(".") if isinstance(key, str) else []
        if not parts or not all(parts):
            raise _override_error(source, str(key), value,
                                  "expected a dotted key such as training.epochs or model.layers.0.units.")
        node: Any = data
        for depth, part in enumerate(parts):
            if isinstance(node, list):
                where = ".".join(parts[:depth])
                if not part.isdigit() or int(part) >= len(node):
                    raise _override_error(source, key, value, f"{where} is a list of {len(node)}; expected an "
                                          f"index from 0 to {len(node) - 1} after '{where}.', got '{part}'.")
                part = int(part)
            elif not isinstance(node, dict):
                break  # e.g. training = 5: the validation says "[training]: expected a table"
            if depth == len(parts) - 1:
                node[part] = value
            else:
                node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    return data


def parse_with_overrides(data: dict[str, Any], source: str, registry: Any,
                         overrides: dict[str, Any] | None = None) -> ExperimentSpec:
    """:func:`parse_experiment` of ``data`` with ``overrides`` (see :func:`apply_overrides`) set.
    ``data`` is not changed. An error that an override causes names that override."""
    reject_deep_nesting(data, source)  # before the copy walks it recursively
    items = list((overrides or {}).items())
    applied = apply_overrides(data, items, source)  # a bad key path: an error naming its override
    try:
        return parse_experiment(applied, source, registry)
    except ConfigError as error:
        for count in range(len(items) + 1):  # the first override after which the experiment no longer validates
            try:
                parse_experiment(apply_overrides(data, items[:count], source), source, registry)
            except ConfigError as exc:
                if count == 0:
                    raise error from None  # the experiment itself is wrong
                key, value = items[count - 1]
                raise _override_error(source, key, value, str(exc).removeprefix(f"{source}: ")) from None
        raise  # not reached: with every override applied it fails


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return [_without_none(v) for v in value] if isinstance(value, (list, tuple)) else value


def dumps_toml(data: dict[str, Any]) -> str:
    """Nested dicts as TOML that ``tomllib`` reads back as the same values; ``None`` in tables is left out (TOML has
    no null). Raises ``TypeError`` for what TOML cannot hold (an object, a ``None`` in a list)."""
    import tomli_w

    return tomli_w.dumps(_without_none(data))
