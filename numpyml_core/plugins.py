"""Plugin discovery (the ``numpyml`` entry points, built-ins included, loaded once per process) and the component
registry. How a failed plugin is contained: docs/plugins.md ("Registering components")."""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
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

hookimpl = pluggy.HookimplMarker("numpyml")


class _PluginRaised(Exception):
    """Plugin code raised ``error``, described by ``str()``, and by :attr:`raised` after "hook" (``raised X``)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        if isinstance(error, KeyboardInterrupt):
            text = "raised KeyboardInterrupt itself (no Ctrl-C was pressed)"
        elif isinstance(error, SystemExit):
            text = f"called sys.exit({error.code!r})"
        else:
            text = f"{type(error).__name__}: {error}"
        super().__init__(text)
        self.raised = text if isinstance(error, (KeyboardInterrupt, SystemExit)) else f"raised {text}"


@contextlib.contextmanager
def _plugin_code() -> Iterator[None]:
    """Run plugin code: what it raises becomes a :class:`_PluginRaised`, except a real Ctrl-C, told apart from
    plugin code's own ``KeyboardInterrupt`` by wrapping the SIGINT handler in force (main thread only)."""
    real = False
    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    wrap = previous is not None and previous is not signal.SIG_IGN

    def handler(signum: int, frame: Any) -> None:
        nonlocal real
        real = True
        if callable(previous):
            previous(signum, frame)
        else:  # SIG_DFL: the process would end; stopping with KeyboardInterrupt is the closest
            raise KeyboardInterrupt

    if wrap:
        signal.signal(signal.SIGINT, handler)
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 - sys.exit() in plugin code is its failure too
        if real and isinstance(exc, KeyboardInterrupt):
            raise
        raise _PluginRaised(exc) from None
    finally:
        if wrap:
            signal.signal(signal.SIGINT, previous)


def _import(reference: str) -> Any:
    module_name, _, attribute = reference.partition(":")
    return functools.reduce(getattr, attribute.split("."), importlib.import_module(module_name))


@dataclass(eq=False)
class Component:
    """One registered component with its provenance; ``target`` is the factory or a lazy reference to it."""

    kind: str
    name: str
    target: Callable[..., Any] | str
    plugin: str
    distribution: str
    version: str

    @property
    def factory(self) -> Callable[..., Any]:
        if isinstance(self.target, str):
            where = (f"{self.kind} '{self.name}' of plugin '{self.plugin}' "
                     f"(distribution {self.distribution} {self.version})")
            try:
                with _plugin_code():
                    factory = _import(self.target)
            except _PluginRaised as exc:
                raise PluginError(f"{where}: cannot load '{self.target}': {exc}") from None
            _check_factory(factory, where)
            self.target = factory
        return self.target

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.factory) or ""


def _check_factory(factory: Any, where: str) -> None:
    if not callable(factory):
        raise PluginError(f"{where}: factory {factory!r} is not callable")
    try:
        inspect.signature(factory)
    except (TypeError, ValueError) as exc:
        raise PluginError(f"{where}: factory has no usable signature ({exc})") from exc


def _check_reference(target: str, where: str) -> None:
    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        raise PluginError(f"{where}: a lazy factory must be written 'package.module:attribute', got {target!r}")
    try:
        found, error = importlib.util.find_spec(module_name), ""
    except (ImportError, ValueError) as exc:
        found, error = None, f" ({type(exc).__name__}: {exc})"
    if found is None:
        raise PluginError(f"{where}: module '{module_name}' of {target!r} not found{error}")


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
        other = self.components.get((component.kind, component.name))
        if other is not None:
            raise PluginError(
                f"{component.kind} '{component.name}' is registered twice: by plugin '{other.plugin}' "
                f"of distribution {other.distribution} {other.version} and by plugin "
                f"'{component.plugin}' of distribution {component.distribution} {component.version}. "
                f"Rename the {component.kind} in one of them (the name given to register()); or, as a user, "
                "uninstall one or disable its plugin (--disable-plugin, NUMPYML_DISABLE_PLUGINS)."
            )
        self.components[(component.kind, component.name)] = component

    def get(self, kind: str, name: str) -> Component:
        if (kind, name) in self.components:
            return self.components[(kind, name)]
        from .protocols import KINDS  # here, not at the top: protocols imports numpy (startup time)

        known_kinds = sorted({k for k, _ in self.components} | set(KINDS))
        if kind not in known_kinds:
            raise ConfigError(f"unknown component kind {shorten(kind)}{did_you_mean(kind, known_kinds)}; "
                              f"installed kinds: {', '.join(known_kinds)}.")
        names = self.names(kind)
        if not names:
            raise ConfigError(f"unknown {kind} {shorten(name)}: no {kind} is installed (is its plugin disabled?).")
        raise ConfigError(f"unknown {kind} {shorten(name)}{did_you_mean(name, names)}; installed {kind}s: "
                          f"{', '.join(names)}. Run 'numpyml list' to see every installed component.")

    def names(self, kind: str) -> list[str]:
        return sorted(n for k, n in self.components if k == kind)

    def all(self) -> list[Component]:
        return sorted(self.components.values(), key=lambda c: (c.kind, c.name))


def _distribution_of(entry_point: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(entry_point, "dist", None)
    return ("unknown", "") if dist is None else (dist.metadata["Name"] or dist.name, dist.version)


class _Hooks(pluggy.PluginManager):
    """A pluggy manager with the hooks ``names`` of :mod:`.hookspecs`. Without the training hooks (the plugin
    modules' manager), a training hook found on a plugin is not registered but kept in :attr:`module_hooks`."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__("numpyml")
        self.add_hookspecs(types.SimpleNamespace(**{name: getattr(hookspecs, name) for name in names}))
        self.names = names
        self.module_hooks: list[str] = []

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is not None and name in hookspecs.TRAINING_HOOKS and name not in self.names:
            self.module_hooks.append(name)
            return None
        return opts


def run_hook_manager() -> pluggy.PluginManager:
    """A fresh pluggy manager for one run (``run.hook_manager``): the training hooks, for that run's callbacks."""
    return _Hooks(hookspecs.TRAINING_HOOKS)


def _warn_module_hooks(plugin: str, distribution: str, names: list[str]) -> None:
    import multiprocessing

    if multiprocessing.parent_process() is not None:  # a run's worker process: the parent warned
        return
    warnings.warn(f"numpyml: plugin '{plugin}' (distribution {distribution}) defines training hooks at module level "
                  f"({', '.join(sorted(names))}), which are ignored: installing a plugin never changes a run. Put "
                  "them on a callback class, register it with register(\"callback\", \"my_callback\", MyCallback) "
                  "and select it: [[callbacks]] type = \"my_callback\" (see docs/plugins.md, Training hooks).",
                  PluginWarning, stacklevel=2)


class PluginManager:
    """Loads the ``numpyml`` entry points into ``pm`` and their components into ``registry``; ``failed`` lists
    the plugins that failed, ``loaded`` the others as (plugin, distribution, version)."""

    def __init__(self, disable: list[str] | None = None, strict: bool | None = None):
        self.pm = _Hooks(hookspecs.REGISTRATION_HOOKS)
        self.registry = Registry()
        self.failed: list[FailedPlugin] = []
        self.loaded: list[tuple[str, str, str]] = []
        self.disabled = {n.strip() for n in os.environ.get("NUMPYML_DISABLE_PLUGINS", "").split(",") if n.strip()}
        self.disabled.update(disable or [])
        if strict is None:
            strict = os.environ.get("NUMPYML_STRICT_PLUGINS", "") not in ("", "0", "false", "no")
        self.strict = strict

    def load_entry_points(self) -> None:
        """Load every plugin not disabled. numpyml's own load first, so a third-party plugin that claims a
        built-in name is the one that fails (with both distributions named). A distribution found twice on
        ``sys.path`` is listed once by :func:`importlib.metadata.entry_points`."""
        found = [(*_distribution_of(ep), ep) for ep in metadata.entry_points(group="numpyml")]
        for distribution, version, entry_point in sorted(found, key=lambda f: (f[0] != "numpyml", f[0], f[2].name)):
            if entry_point.name in self.disabled:
                continue
            try:
                with _plugin_code():
                    module = entry_point.load()
            except _PluginRaised as exc:
                self.fail(entry_point.name, f"import failed: {exc}", distribution)
            else:
                self.load_plugin(module, entry_point.name, distribution, version)

    def load_plugin(self, module: Any, plugin: str, distribution: str, version: str) -> None:
        """Register one plugin module (or object with ``@hookimpl`` functions) and its components; a plugin that
        fails is rolled back and recorded in :attr:`failed`."""
        staged: list[Component] = []

        def register(kind: str, name: str, factory: Callable[..., Any] | str) -> None:
            if not isinstance(kind, str) or not isinstance(name, str) or not name:
                raise PluginError(f"register() needs a kind and a name as strings, got {kind!r}, {name!r}")
            (_check_reference if isinstance(factory, str) else _check_factory)(factory, f"{kind} '{name}'")
            staged.append(Component(kind, name, factory, plugin, distribution, version))

        self.pm.module_hooks.clear()
        try:
            with _plugin_code():
                self.pm.register(module, name=plugin)
        except _PluginRaised as exc:
            self.fail(plugin, f"registration failed: {exc}", distribution)
            return
        if self.pm.module_hooks:
            _warn_module_hooks(plugin, distribution, self.pm.module_hooks)
        impls = [i for i in self.pm.hook.numpyml_register_components.get_hookimpls() if i.plugin_name == plugin]
        adds_commands = any(i.plugin_name == plugin for i in self.pm.hook.numpyml_register_commands.get_hookimpls())
        try:
            with _plugin_code():
                for impl in impls:
                    impl.function(register=register)
                if not staged and not adds_commands:
                    raise PluginError(_registered_nothing(module, bool(impls)))
                for component in staged:
                    self.registry.add(component)
        except _PluginRaised as exc:
            plugin_error = isinstance(exc.error, PluginError)
            self.fail(plugin, str(exc.error) if plugin_error else f"register hook {exc.raised}", distribution)
        else:
            self.loaded.append((plugin, distribution, version))
            return
        for component in staged:  # roll back a half-registered plugin
            if self.registry.components.get((component.kind, component.name)) is component:
                del self.registry.components[(component.kind, component.name)]
        self.pm.unregister(name=plugin)

    def register_commands(self, app_for: Callable[[str], Any]) -> None:
        """Call every loaded plugin's ``numpyml_register_commands`` hook with ``app=app_for(plugin)``, in loading
        order. A hook that raises fails its plugin only (recorded in :attr:`failed`, warned)."""
        order = {plugin: index for index, (plugin, _, _) in enumerate(self.loaded)}
        impls = sorted(self.pm.hook.numpyml_register_commands.get_hookimpls(),
                       key=lambda impl: order.get(impl.plugin_name, len(order)))
        for impl in impls:
            try:
                with _plugin_code():
                    impl.function(app=app_for(impl.plugin_name))
            except _PluginRaised as exc:
                self.fail(impl.plugin_name, f"register_commands hook {exc.raised}")

    def fail(self, plugin: str, error: str, distribution: str | None = None) -> None:
        """Record in :attr:`failed`, and warn, that ``plugin`` failed (a loaded one: its components stay
        registered); ``NUMPYML_STRICT_PLUGINS`` makes it a :class:`PluginError`."""
        if distribution is None:
            distribution = next((dist for name, dist, _ in self.loaded if name == plugin), "unknown")
        self.failed.append(FailedPlugin(plugin, distribution, error))
        message = f"numpyml: plugin '{plugin}' from distribution {distribution} failed: {error}"
        if self.strict:
            raise PluginError(message + " (NUMPYML_STRICT_PLUGINS is set)")
        print(f"warning: {message}", file=sys.stderr)

    def create(self, kind: str, name: str, **params: Any) -> Any:
        component = self.registry.get(kind, name)
        from .config import validate_params  # local import: config imports this module

        validate_params(component, params, where=f"{kind} '{name}'")
        try:
            return component.factory(**params)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{kind} '{name}': {exc}") from exc


def _registered_nothing(module: Any, has_hook: bool) -> str:
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
                       "(from numpyml_core import hookimpl).")
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
    """Replace (``None``: reset) the process-wide plugin manager; return the one replaced, to put it back."""
    global _MANAGER
    previous, _MANAGER = _MANAGER, manager
    return previous


def create_from_spec(kind: str, spec: Any, what: str) -> Any:
    """Build a component given as another's parameter ``what`` (a layer's ``activation``): a registered name
    (``"relu"``), a table (``{type = "leaky_relu", alpha = 0.2}``) or a built object; ``ValueError`` if unusable."""
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
    """Build a registered component: ``create("layer", "dense", units=10)``; unknown names and bad parameters
    raise :class:`numpyml_core.ConfigError`."""
    return get_plugin_manager().create(kind, name, **params)
