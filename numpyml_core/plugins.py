"""Plugin discovery and the component registry.

Plugins are modules listed under the ``numpyml`` entry-point group of any installed distribution
(built-ins included: numpyml registers its own plugins exactly as a third party would). Loading
happens once per process, on first use. A plugin that fails to import or register is recorded in
:attr:`PluginManager.failed` with its error, a warning naming its distribution goes to stderr, and
everything else keeps working; ``NUMPYML_STRICT_PLUGINS=1`` turns that into an error. Plugins are
disabled by entry-point name with ``NUMPYML_DISABLE_PLUGINS=a,b`` (or ``--disable-plugin``).

The process-wide pluggy manager knows only the registration hooks
(:data:`~numpyml_core.hookspecs.REGISTRATION_HOOKS`). Training hooks are dispatched per run, by
the manager :func:`run_hook_manager` makes for each run and that holds only that run's callbacks; a
training hook defined at module level in a plugin module is left unregistered, with one
:class:`~numpyml_core.errors.PluginWarning` naming the plugin (:func:`_warn_module_hooks`).

"Fails" includes a plugin that calls ``sys.exit()`` or raises ``KeyboardInterrupt`` while it is
imported or registers (every ``BaseException``), and a plugin that registers no component (its
hook not marked ``@hookimpl``, misspelled, or registering nothing). A real Ctrl-C is told apart
from a ``KeyboardInterrupt`` raised by plugin code with a SIGINT handler installed while plugin
code runs (:func:`_watching_ctrl_c`): only a real one stops loading.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import sys
import threading
import types
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterator

import pluggy

from . import hookspecs
from .errors import ConfigError, PluginError, PluginWarning, did_you_mean, shorten

ENTRY_POINT_GROUP = "numpyml"
hookimpl = pluggy.HookimplMarker("numpyml")


class _CtrlC:
    """Whether a real SIGINT arrived while plugin code ran (see :func:`_watching_ctrl_c`)."""

    real = False


@contextlib.contextmanager
def _watching_ctrl_c() -> Iterator[_CtrlC]:
    """While plugin code runs, record whether a real Ctrl-C (SIGINT) arrives.

    The SIGINT handler in force is wrapped: a signal sets ``.real`` and then does what the handler
    would have done (Python's default raises ``KeyboardInterrupt``; the CLI's training handler asks
    the run to stop). A ``KeyboardInterrupt`` caught while ``.real`` is false was raised by plugin
    code itself. Outside the main thread no signal can arrive, so every ``KeyboardInterrupt`` there
    is plugin code's. The previous handler is put back afterwards.
    """
    state = _CtrlC()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None or previous is signal.SIG_IGN:  # not ours to wrap, or Ctrl-C is ignored anyway
        yield state
        return

    def handler(signum: int, frame: Any) -> None:
        state.real = True
        if callable(previous):
            previous(signum, frame)
        else:  # SIG_DFL: the process would end; stopping with KeyboardInterrupt is the closest
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def _plugin_raised(exc: BaseException, ctrl_c: _CtrlC) -> str | None:
    """How to describe ``exc`` raised by plugin code, or ``None`` when it must propagate (a real Ctrl-C)."""
    if isinstance(exc, KeyboardInterrupt):
        return None if ctrl_c.real else "raised KeyboardInterrupt itself (no Ctrl-C was pressed)"
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


@dataclass(eq=False)
class Component:
    """One registered component with its provenance.

    ``target`` is what the plugin registered: the factory itself, or a lazy reference
    ``"package.module:attribute"`` that is imported the first time :attr:`factory` is used, so
    listing components never imports NumPy or a plugin's heavy modules.
    """

    kind: str
    name: str
    target: Callable[..., Any] | str
    plugin: str
    distribution: str
    version: str

    @property
    def factory(self) -> Callable[..., Any]:
        if isinstance(self.target, str):
            self.target = _resolve(self)
        return self.target

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.factory) or ""


def _resolve(component: Component) -> Callable[..., Any]:
    """Import a lazy ``"module:attribute"`` reference; a failure names the plugin and distribution."""
    import importlib

    module_name, _, attribute = str(component.target).partition(":")
    where = (
        f"{component.kind} '{component.name}' of plugin '{component.plugin}' "
        f"(distribution {component.distribution} {component.version})"
    )
    with _watching_ctrl_c() as ctrl_c:
        try:
            factory: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                factory = getattr(factory, part)
        except BaseException as exc:  # noqa: BLE001 - sys.exit() in a plugin module is its failure too
            described = _plugin_raised(exc, ctrl_c)
            if described is None:
                raise
            raise PluginError(f"{where}: cannot load '{component.target}': {described}") from None
    _check_factory(component.kind, component.name, factory, where)
    return factory


def _check_factory(kind: str, name: str, factory: Any, where: str | None = None) -> None:
    where = where or f"{kind} '{name}'"
    if not callable(factory):
        raise PluginError(f"{where}: factory {factory!r} is not callable")
    try:
        inspect.signature(factory)
    except (TypeError, ValueError) as exc:
        raise PluginError(f"{where}: factory has no usable signature ({exc})") from exc


def _check_reference(kind: str, name: str, target: str) -> None:
    """A lazy reference must be ``module:attribute`` with a module that can be found (not imported)."""
    import importlib.util

    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        raise PluginError(
            f"{kind} '{name}': a lazy factory must be written 'package.module:attribute', got {target!r}"
        )
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        found, error = None, f" ({type(exc).__name__}: {exc})"
    else:
        error = ""
    if found is None:
        raise PluginError(f"{kind} '{name}': module '{module_name}' of {target!r} not found{error}")


@dataclass
class FailedPlugin:
    """A plugin that failed to import or register (or registered no component): ``error`` says why."""

    plugin: str
    distribution: str
    error: str


@dataclass
class Registry:
    """Every registered component, keyed by (kind, name)."""

    components: dict[tuple[str, str], Component] = field(default_factory=dict)

    def add(self, component: Component) -> None:
        key = (component.kind, component.name)
        if key in self.components:
            other = self.components[key]
            raise PluginError(
                f"{component.kind} '{component.name}' is registered twice: by plugin '{other.plugin}' "
                f"of distribution {other.distribution} {other.version} and by plugin "
                f"'{component.plugin}' of distribution {component.distribution} {component.version}. "
                "Uninstall one of them or disable a plugin with NUMPYML_DISABLE_PLUGINS."
            )
        self.components[key] = component

    def get(self, kind: str, name: str) -> Component:
        try:
            return self.components[(kind, name)]
        except KeyError:
            pass
        from .protocols import KINDS  # here, not at the top: protocols imports numpy (startup time)

        known_kinds = sorted({k for k, _ in self.components} | set(KINDS))
        if kind not in known_kinds:
            raise ConfigError(
                f"unknown component kind {shorten(kind)}{did_you_mean(kind, known_kinds)}; "
                f"installed kinds: {', '.join(known_kinds)}."
            )
        names = self.names(kind)
        if not names:
            raise ConfigError(f"unknown {kind} {shorten(name)}: no {kind} is installed (is its plugin disabled?).")
        raise ConfigError(
            f"unknown {kind} {shorten(name)}{did_you_mean(name, names)}; installed {kind}s: "
            f"{', '.join(names)}. Run 'numpyml list' to see every installed component."
        )

    def names(self, kind: str) -> list[str]:
        return sorted(n for k, n in self.components if k == kind)

    def all(self) -> list[Component]:
        return sorted(self.components.values(), key=lambda c: (c.kind, c.name))


def _distribution_of(entry_point: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return ("unknown", "")
    return (dist.metadata["Name"] or dist.name, dist.version)


def disabled_plugins(extra: list[str] | None = None) -> set[str]:
    names = {n.strip() for n in os.environ.get("NUMPYML_DISABLE_PLUGINS", "").split(",") if n.strip()}
    names.update(extra or [])
    return names


def _hookspecs(names: tuple[str, ...]) -> types.SimpleNamespace:
    """The specifications of :mod:`numpyml_core.hookspecs` named ``names``, as one object for
    :meth:`pluggy.PluginManager.add_hookspecs` (which reads the marked functions of any object)."""
    return types.SimpleNamespace(**{name: getattr(hookspecs, name) for name in names})


def run_hook_manager() -> pluggy.PluginManager:
    """A fresh pluggy manager for one run: the training hook specifications
    (:data:`~numpyml_core.hookspecs.TRAINING_HOOKS`) and, once the trainer registers them, that
    run's callbacks and nothing else (see ``run.hook_manager``)."""
    manager = pluggy.PluginManager("numpyml")
    manager.add_hookspecs(_hookspecs(hookspecs.TRAINING_HOOKS))
    return manager


class _PluginModules(pluggy.PluginManager):
    """The process-wide pluggy manager: the registration hooks, called on plugin modules.

    A training hook found on a plugin module is not registered (it would run on every run of the
    process); its name is appended to :attr:`module_hooks` for the caller to warn about.
    """

    def __init__(self) -> None:
        super().__init__("numpyml")
        self.add_hookspecs(_hookspecs(hookspecs.REGISTRATION_HOOKS))
        self.module_hooks: list[str] = []

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is not None and name in hookspecs.TRAINING_HOOKS:
            self.module_hooks.append(name)
            return None
        return opts


def _warn_module_hooks(plugin: str, distribution: str, names: list[str]) -> None:
    """One :class:`PluginWarning` for a plugin module with training hooks at module level, which
    are ignored. Not repeated by the worker processes a run spawns (they load the same plugins)."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        return
    hooks = ", ".join(sorted(names))
    warnings.warn(
        f"numpyml: plugin '{plugin}' (distribution {distribution}) defines the training hook{'s' * (len(names) > 1)} "
        f"{hooks} at module level; {'they are' if len(names) > 1 else 'it is'} ignored: installing a plugin never "
        "changes a run by itself. Put the hook methods on a callback class, register it in "
        "numpyml_register_components with register(\"callback\", \"my_callback\", MyCallback), and select it in "
        "the experiment: [[callbacks]] type = \"my_callback\" (see docs/plugins.md, Training hooks).",
        PluginWarning, stacklevel=2,
    )


class PluginManager:
    """Loads the ``numpyml`` entry points and holds the registry.

    ``pm`` is the underlying :class:`pluggy.PluginManager`, with the registration hooks of
    :mod:`numpyml_core.hookspecs` only: plugin modules are registered with it for
    ``numpyml_register_components`` and ``numpyml_register_commands``. Training hooks are not
    called here: each run dispatches them to its own callbacks (:func:`run_hook_manager`).
    """

    def __init__(self, disable: list[str] | None = None, strict: bool | None = None):
        self.pm = _PluginModules()
        self.registry = Registry()
        self.failed: list[FailedPlugin] = []
        self.loaded: list[tuple[str, str, str]] = []  # (plugin, distribution, version)
        self.disabled = disabled_plugins(disable)
        if strict is None:
            strict = os.environ.get("NUMPYML_STRICT_PLUGINS", "") not in ("", "0", "false", "no")
        self.strict = strict

    # -- loading -----------------------------------------------------------------------------
    def load_entry_points(self) -> None:
        seen: set[tuple[str, str]] = set()
        # numpyml's own plugins load first, so a third-party plugin that claims a built-in name is
        # the one that fails (with both distributions named) and the built-ins keep working.
        def order(entry_point: metadata.EntryPoint) -> tuple[bool, str, str]:
            return (_distribution_of(entry_point)[0] != "numpyml", _distribution_of(entry_point)[0], entry_point.name)

        for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=order):
            distribution, version = _distribution_of(entry_point)
            if (entry_point.name, entry_point.value) in seen:  # same dist found twice on sys.path
                continue
            seen.add((entry_point.name, entry_point.value))
            if entry_point.name in self.disabled:
                continue
            with _watching_ctrl_c() as ctrl_c:
                try:
                    module = entry_point.load()
                except BaseException as exc:  # noqa: BLE001 - sys.exit() or KeyboardInterrupt at import too
                    described = _plugin_raised(exc, ctrl_c)
                    if described is None:
                        raise
                    self._fail(entry_point.name, distribution, f"import failed: {described}")
                    continue
            self.load_plugin(module, entry_point.name, distribution, version)

    def load_plugin(self, module: Any, plugin: str, distribution: str, version: str) -> None:
        """Register one plugin module (or object with ``@hookimpl`` functions) and its components."""
        staged: list[Component] = []

        def register(kind: str, name: str, factory: Callable[..., Any] | str) -> None:
            if not isinstance(kind, str) or not isinstance(name, str) or not name:
                raise PluginError(f"register() needs a kind and a name as strings, got {kind!r}, {name!r}")
            if isinstance(factory, str):
                _check_reference(kind, name, factory)
            else:
                _check_factory(kind, name, factory)
            staged.append(Component(kind, name, factory, plugin, distribution, version))

        with _watching_ctrl_c() as ctrl_c:
            self.pm.module_hooks.clear()
            try:
                self.pm.register(module, name=plugin)
            except BaseException as exc:  # noqa: BLE001
                described = _plugin_raised(exc, ctrl_c)
                if described is None:
                    raise
                self._fail(plugin, distribution, f"registration failed: {described}")
                return
            if self.pm.module_hooks:
                _warn_module_hooks(plugin, distribution, self.pm.module_hooks)
            impls = [
                impl for impl in self.pm.hook.numpyml_register_components.get_hookimpls()
                if impl.plugin_name == plugin
            ]
            adds_commands = any(impl.plugin_name == plugin
                                for impl in self.pm.hook.numpyml_register_commands.get_hookimpls())
            try:
                for impl in impls:
                    impl.function(register=register)
                if not staged and not adds_commands:
                    raise PluginError(_registered_nothing(module, bool(impls)))
                for component in staged:
                    self.registry.add(component)
            except PluginError as exc:
                self._fail(plugin, distribution, str(exc))
            except BaseException as exc:  # noqa: BLE001 - sys.exit() or KeyboardInterrupt in the hook too
                described = _plugin_raised(exc, ctrl_c)
                if described is None:
                    raise
                verb = "" if isinstance(exc, (SystemExit, KeyboardInterrupt)) else "raised "
                self._fail(plugin, distribution, f"register hook {verb}{described}")
            else:
                self.loaded.append((plugin, distribution, version))
                return
        # roll back a half-registered plugin
        for component in staged:
            key = (component.kind, component.name)
            if self.registry.components.get(key) is component:
                del self.registry.components[key]
        self.pm.unregister(name=plugin)

    def register_commands(self, app_for: Callable[[str], Any]) -> None:
        """Call every loaded plugin's ``numpyml_register_commands`` hook with ``app=app_for(plugin)``,
        in loading order. A hook that raises fails its plugin only (recorded in :attr:`failed`, warned)."""
        order = {plugin: index for index, (plugin, _, _) in enumerate(self.loaded)}
        impls = sorted(self.pm.hook.numpyml_register_commands.get_hookimpls(),
                       key=lambda impl: order.get(impl.plugin_name, len(order)))
        for impl in impls:
            with _watching_ctrl_c() as ctrl_c:
                try:
                    impl.function(app=app_for(impl.plugin_name))
                except BaseException as exc:  # noqa: BLE001 - sys.exit() or KeyboardInterrupt in the hook too
                    described = _plugin_raised(exc, ctrl_c)
                    if described is None:
                        raise
                    self.fail(impl.plugin_name, f"register_commands hook raised {described}")

    def distribution_of(self, plugin: str) -> tuple[str, str]:
        """(distribution, version) of a loaded plugin, ``("unknown", "")`` for another name."""
        return next(((dist, version) for name, dist, version in self.loaded if name == plugin), ("unknown", ""))

    def fail(self, plugin: str, error: str) -> None:
        """Record that a loaded ``plugin`` failed after loading (adding its commands, say) in
        :attr:`failed`, warned about like a failed import; its components stay registered."""
        self._fail(plugin, self.distribution_of(plugin)[0], error)

    def _fail(self, plugin: str, distribution: str, error: str) -> None:
        self.failed.append(FailedPlugin(plugin, distribution, error))
        message = f"numpyml: plugin '{plugin}' from distribution {distribution} failed: {error}"
        if self.strict:
            raise PluginError(message + " (NUMPYML_STRICT_PLUGINS is set)")
        print(f"warning: {message}", file=sys.stderr)

    # -- components --------------------------------------------------------------------------
    def create(self, kind: str, name: str, **params: Any) -> Any:
        component = self.registry.get(kind, name)
        from .config import check_params  # local import: config imports this module

        check_params(component, params, where=f"{kind} '{name}'")
        try:
            return component.factory(**params)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{kind} '{name}': {exc}") from exc

    def versions(self) -> dict[str, str]:
        return {dist: version for _, dist, version in self.loaded}


def _registered_nothing(module: Any, has_hook: bool) -> str:
    """Why a plugin registered no component, with what to do about it."""
    hook = "numpyml_register_components"
    text = "registered no component: "
    if has_hook:
        return text + f"its {hook} hook ran but called register() for no component."
    try:  # a module's own __getattr__ / __dir__ may raise: then no hint, but still the failure
        function = getattr(module, hook, None)
        names = [n for n in dir(module) if isinstance(n, str)]
    except Exception:  # noqa: BLE001
        function, names = None, []
    if callable(function):
        return text + (f"its {hook} function is not marked @hookimpl; decorate it with @hookimpl "
                       "(from numpyml_core import hookimpl), or register a table with component_table().")
    return text + (f"it defines no {hook} function{did_you_mean(hook, names)}; see docs/plugins.md "
                   "(a @hookimpl function of that name, from numpyml_core import hookimpl).")


_MANAGER: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, loading the entry points on first use."""
    global _MANAGER
    if _MANAGER is None:
        manager = PluginManager()
        manager.load_entry_points()
        _MANAGER = manager
    return _MANAGER


def set_plugin_manager(manager: PluginManager | None) -> PluginManager | None:
    """Replace (or with ``None`` reset) the process-wide plugin manager (tests, the CLI); returns the
    one it replaced (``None`` when none was loaded yet), so a caller can put it back."""
    global _MANAGER
    previous, _MANAGER = _MANAGER, manager
    return previous


def component_table(components: dict[tuple[str, str], Callable[..., Any] | str]) -> Callable[..., None]:
    """The ``numpyml_register_components`` hook implementation of a plugin that registers a table::

        numpyml_register_components = component_table({
            ("layer", "swish"): "my_plugin.layers:Swish",   # a lazy reference, or the factory itself
        })
    """

    @hookimpl
    def numpyml_register_components(register: Callable[..., None]) -> None:
        for (kind, name), factory in components.items():
            register(kind, name, factory)

    return numpyml_register_components


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) for a plugin package that registers lazily.

    ``exports`` maps a public name to ``".module:attribute"`` (relative to ``package``) or an
    absolute ``"package.module:attribute"``; the module is imported the first time the name is
    used, so ``from my_plugin import MyLayer`` keeps working while loading the plugin stays cheap::

        __getattr__ = lazy_exports(__name__, {"MyLayer": ".layers:MyLayer"})
    """
    import importlib

    def __getattr__(name: str) -> Any:
        try:
            reference = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module_name, _, attribute = reference.partition(":")
        module = importlib.import_module(module_name, package if module_name.startswith(".") else None)
        return getattr(module, attribute)

    return __getattr__


def create_from_spec(kind: str, spec: Any, what: str) -> Any:
    """Build a component from a config value, for components that take others as parameters
    (``activation`` of a layer, its initializers): a registered name (``"relu"``), a table
    (``{type = "leaky_relu", alpha = 0.2}``), or an already built object (programmatic use).

    Built through :func:`create`, so third-party components work too. Raises ``ValueError``
    naming ``what`` (the parameter) when the spec is not usable; a factory's ``ValueError``
    becomes a config error naming the outer component.
    """
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, dict):
        params = dict(spec)
        name = params.pop("type", None)
        if not isinstance(name, str):
            raise ValueError(f"{what}: a table needs a key 'type' naming a registered {kind}, got {shorten(spec)}")
    elif callable(spec) or hasattr(spec, "forward"):
        return spec
    else:
        raise ValueError(f"{what}: expected the name of a {kind} or a table {{type = ...}}, got {shorten(spec)}")
    try:
        return create(kind, name, **params)
    except ConfigError as exc:
        raise ValueError(f"{what}: {exc}") from None


def create(kind: str, name: str, **params: Any) -> Any:
    """Build a registered component: ``create("layer", "dense", units=10)``.

    Unknown names and bad parameters raise :class:`numpyml_core.ConfigError` with the message the
    CLI prints.
    """
    return get_plugin_manager().create(kind, name, **params)
