"""A sweep's search space: ``--grid``, ``--random`` and ``--set`` parsed and checked, and the trials they make.

Standard library only. Every mistake is a :class:`~numpyml_core.UserError` naming the option and the key,
raised before anything runs.

Syntax (docs/sweeps.md):

* ``--grid KEY=V1,V2,...``: the values of one key; several ``--grid`` options make the cartesian product
  (the last one varies fastest). Values are TOML values (``0.1``, ``64``, ``true``, ``"he"``,
  ``[3, 3]``), a bare word is a string; commas inside brackets or quotes do not split.
* ``--random KEY=DIST`` with ``--samples N``: ``N`` draws of every such key, for each grid point (so
  ``N x grid`` trials). ``DIST`` is one of ``loguniform(LOW, HIGH)`` (``0 < LOW < HIGH``),
  ``uniform(LOW, HIGH)`` (``LOW < HIGH``), ``randint(LOW, HIGH)`` (integers, both ends included) and
  ``choice(V1, V2, ...)`` (TOML values). Drawn floats are rounded to 4 significant digits, so that run
  folder names and config.toml show the value that was trained. The draws come from ``--seed`` (default
  0): the same command makes the same trials, which is what lets a sweep resume.
* ``--set KEY=VALUE``: one value for every trial.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable

from numpyml_core import UserError
from numpyml_core.plugin_api import did_you_mean

#: the distributions of ``--random``
DISTRIBUTIONS = ("loguniform", "uniform", "randint", "choice")
_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.+-]*")
_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_CALL = re.compile(r"([A-Za-z_]\w*)\s*\((.*)\)", re.DOTALL)


def parse_value(text: str, where: str) -> Any:
    """One value as written on the command line: a TOML value, or a bare word as a string."""
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if _BARE_WORD.fullmatch(text):
            return text
        raise UserError(f"{where}: {text!r} is not a value: write a TOML value (0.1, 64, true, \"he\", [3, 3]) "
                        "or a bare word (a string).") from None


def split_top_level(text: str) -> list[str]:
    """``text`` split at commas that are not inside brackets, braces or quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def split_assignment(text: str, option: str) -> tuple[str, str]:
    """``KEY=REST`` -> (KEY, REST), the key checked to be dotted words."""
    key, equals, rest = text.partition("=")
    key = key.strip()
    if not equals or not rest.strip():
        raise UserError(f"{option} {text}: expected KEY=VALUE, e.g. {option} optimizer.learning_rate=0.1.")
    if not _KEY.fullmatch(key):
        raise UserError(f"{option} {text}: {key!r} is not a key: dotted names and list indices, e.g. "
                        "optimizer.learning_rate or model.layers.1.units.")
    return key, rest.strip()


@dataclass(frozen=True)
class Distribution:
    """One ``--random`` distribution: its name, its arguments and the text it was given as."""

    name: str
    args: tuple[Any, ...]
    text: str

    def draw(self, rng: random.Random) -> Any:
        if self.name == "choice":
            return self.args[rng.randrange(len(self.args))]
        if self.name == "randint":
            return rng.randint(*self.args)
        low, high = self.args
        value = (math.exp(rng.uniform(math.log(low), math.log(high))) if self.name == "loguniform"
                 else rng.uniform(low, high))
        return float(f"{value:.4g}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_distribution(key: str, text: str, value_parser: Callable[[str, str], Any] = parse_value) -> Distribution:
    """``loguniform(1e-3, 1)`` and the like, checked."""
    where = f"--random {key}={text}"
    match = _CALL.fullmatch(text.strip())
    if not match or match.group(1) not in DISTRIBUTIONS:
        name = match.group(1) if match else text.strip()
        hint = did_you_mean(name, DISTRIBUTIONS) if match else ""
        raise UserError(f"{where}: not a distribution{hint}; write one of loguniform(LOW, HIGH), uniform(LOW, HIGH), "
                        "randint(LOW, HIGH) or choice(V1, V2, ...), e.g. --random optimizer.learning_rate="
                        "loguniform(1e-3, 1).")
    name, inner = match.group(1), match.group(2)
    args = tuple(value_parser(part, where) for part in split_top_level(inner)) if inner.strip() else ()
    if name == "choice":
        if not args:
            raise UserError(f"{where}: choice needs at least one value, e.g. choice(32, 64).")
        return Distribution(name, args, text.strip())
    if len(args) != 2:
        raise UserError(f"{where}: {name} takes two numbers, LOW and HIGH; got {len(args)} argument"
                        f"{'s' if len(args) != 1 else ''}.")
    low, high = args
    if name == "randint":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in args) or low > high:
            raise UserError(f"{where}: randint needs two integers LOW <= HIGH (both included), e.g. randint(1, 4).")
    elif not (_number(low) and _number(high)) or not low < high:
        raise UserError(f"{where}: {name} needs two numbers LOW < HIGH, got {low!r} and {high!r}.")
    elif name == "loguniform" and not low > 0:
        raise UserError(f"{where}: loguniform needs 0 < LOW < HIGH (it draws the logarithm uniformly), got LOW "
                        f"{low!r}.")
    return Distribution(name, (low, high), text.strip())


@dataclass(frozen=True)
class Trial:
    """One trial: its number, its swept values (key -> value) and its run folder's name."""

    number: int
    values: dict[str, Any]
    name: str


@dataclass
class Space:
    """What a sweep command asks for, parsed: what :func:`trials` expands."""

    grid: list[tuple[str, list[Any]]] = field(default_factory=list)
    random: list[tuple[str, Distribution]] = field(default_factory=list)
    fixed: dict[str, Any] = field(default_factory=dict)
    samples: int = 1
    seed: int = 0

    @property
    def keys(self) -> list[str]:
        """The swept keys, in the order of the command line (grid first): sweep.csv's columns."""
        return [key for key, _ in self.grid] + [key for key, _ in self.random]

    def definition(self) -> dict[str, Any]:
        """What makes two sweep commands the same sweep (stored in sweep.json)."""
        return {"grid": [[key, values] for key, values in self.grid],
                "random": [[key, dist.text] for key, dist in self.random],
                "samples": self.samples if self.random else None, "seed": self.seed if self.random else None,
                "set": self.fixed}


def parse_space(grid: list[str], random_: list[str], fixed: list[str], samples: int | None, seed: int,
                value_parser: Callable[[str, str], Any] = parse_value,
                fixed_parser: Callable[[list[str]], dict[str, Any]] | None = None) -> Space:
    """The command line's ``--grid``, ``--random``, ``--set``, ``--samples`` and ``--seed``, checked.

    ``fixed_parser``, when given, parses the ``--set`` options (numpyml's own ``--set`` parser);
    otherwise each is split at its first ``=`` and its value read with ``value_parser``."""
    space = Space(seed=seed)
    seen: dict[str, str] = {}

    def claim(key: str, option: str) -> None:
        if key in seen:
            raise UserError(f"{option} {key}: the key is given twice (also by {seen[key]}); give each key once.")
        seen[key] = option

    for text in grid:
        key, rest = split_assignment(text, "--grid")
        where = f"--grid {text}"
        if _CALL.fullmatch(rest) and _CALL.fullmatch(rest).group(1) in DISTRIBUTIONS:
            raise UserError(f"{where}: {rest} is a distribution, which a grid cannot enumerate: give it with "
                            f"--random {key}={rest} and --samples N.")
        if any(not part.strip() for part in split_top_level(rest)):
            raise UserError(f"{where}: an empty value; write the values separated by commas, e.g. --grid {key}=0.1,0.5.")
        values = [value_parser(part, where) for part in split_top_level(rest)]
        claim(key, "--grid")
        space.grid.append((key, values))
    for text in random_:
        key, rest = split_assignment(text, "--random")
        claim(key, "--random")
        space.random.append((key, parse_distribution(key, rest, value_parser)))
    if fixed_parser is not None:
        for text in fixed:
            split_assignment(text, "--set")  # the same message for a missing '='
        space.fixed = dict(fixed_parser(list(fixed)))
    else:
        for text in fixed:
            key, rest = split_assignment(text, "--set")
            space.fixed[key] = value_parser(rest, f"--set {text}")
    for key in space.fixed:
        claim(key, "--set")
    if samples is not None and samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}.")
    if space.random and samples is None:
        raise UserError(f"--random {space.random[0][0]}: random search needs --samples N, the number of draws.")
    if samples is not None and not space.random:
        raise UserError("--samples N draws the keys given with --random KEY=DIST, and there is none; add e.g. "
                        "--random optimizer.learning_rate=loguniform(1e-3,1).")
    if not space.grid and not space.random:
        raise UserError("nothing to sweep: give --grid KEY=V1,V2,... (repeatable) and/or --random KEY=DIST with "
                        "--samples N (docs/sweeps.md).")
    space.samples = samples or 1
    return space


def value_text(value: Any) -> str:
    """A value as sweep.csv and the tables show it: TOML's spelling, strings bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_text(v) if not isinstance(v, str) else f'"{v}"' for v in value) + "]"
    return str(value)


def labels(keys: list[str]) -> dict[str, str]:
    """Each key's shortest dotted suffix that no other key ends with: ``learning_rate``, ``batch_size``."""
    found = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            label = ".".join(parts[-n:])
            if not any(other != key and (other == label or other.endswith("." + label)) for other in keys):
                break
        found[key] = label
    return found


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", text)


def trials(space: Space) -> list[Trial]:
    """Every trial of ``space``: the grid's product (last key fastest), ``samples`` draws for each point."""
    rng = random.Random(space.seed)
    points = list(itertools.product(*(values for _, values in space.grid)))
    made: list[dict[str, Any]] = []
    for point in points:
        for _ in range(space.samples):
            values = {key: value for (key, _), value in zip(space.grid, point)}
            values.update({key: dist.draw(rng) for key, dist in space.random})
            made.append(values)
    width = max(3, len(str(len(made) - 1)))
    short = labels(space.keys)
    result = []
    for number, values in enumerate(made):
        name = f"{number:0{width}d}-" + "-".join(f"{short[k]}={value_text(v)}" for k, v in values.items())
        result.append(Trial(number, values, _safe(name)[:120]))
    return result
