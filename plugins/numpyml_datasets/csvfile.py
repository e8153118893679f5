"""``csv``: rows of numeric features with a label column, from a CSV file (and optionally a second one
for the test split).

The file is read once per process, row by row, into float32 chunks (memory follows the data, with no
Python list of every value). A ragged row, an empty or non-numeric feature cell, a label of the test file
that the training file does not have: each is one error naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np

from numpyml_core import UserError
from numpyml_core.plugin_api import ArraySplit

from . import _files

_INTEGER = re.compile(r"[+-]?\d+")
_CHUNK_ROWS = 4096


class _Table:
    """A parsed CSV file: float32 features ``(N, F)``, raw label strings, the feature names."""

    def __init__(self, features: np.ndarray, labels: list[str], label_lines: list[int], names: list[str],
                 label_name: str):
        self.features, self.labels, self.label_lines, self.names, self.label_name = (
            features, labels, label_lines, names, label_name)


def _column_index(label_column: int | str, header: list[str] | None, width: int, path: Path) -> int:
    if isinstance(label_column, str):
        if header is None:
            if _INTEGER.fullmatch(label_column.strip()):
                label_column = int(label_column)
            else:
                raise UserError(f"{path}: label_column = {label_column!r} names a column, but header = false (the file "
                                "has no names); give the column's index (0 = first, -1 = last).")
        else:
            names = [h.strip() for h in header]
            if label_column.strip() not in names:
                raise UserError(f"{path}: no column named {label_column!r} for the labels; the header names "
                                f"{', '.join(repr(n) for n in names)}. Set label_column in the [dataset] table.")
            return names.index(label_column.strip())
    index = label_column + width if label_column < 0 else label_column
    if not 0 <= index < width:
        raise UserError(f"{path}: label_column = {label_column} is outside the {width} columns of the file "
                        f"(0..{width - 1}, or -1 for the last).")
    return index


def read_table(path: Path, label_column: int | str, header: bool, delimiter: str,
               expected_names: list[str] | None = None) -> _Table:
    """Parse ``path``; ``expected_names``: the training file's feature names (a test file must match)."""
    size = path.stat().st_size
    if size > _files.MAX_DATA_BYTES:
        raise UserError(f"{path} holds {size:,} bytes, more than the limit of {_files.MAX_DATA_BYTES:,} bytes for a CSV "
                        "dataset; convert it to .npz (the npz dataset memory-maps it).")
    chunks: list[np.ndarray] = []
    rows: list[list[float]] = []
    labels: list[str] = []
    label_lines: list[int] = []
    names: list[str] | None = None
    width = index = -1
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                line = reader.line_num
                if width < 0:
                    width = len(row)
                    if width < 2:
                        raise UserError(f"{path}, line {line}: only {width} column; expected at least one feature "
                                        f"column and the label column, separated by {delimiter!r} (the delimiter "
                                        "parameter).")
                    index = _column_index(label_column, row if header else None, width, path)
                    if header:
                        names = [h.strip() or f"column {i + 1}" for i, h in enumerate(row)]
                        continue
                    names = [f"column {i + 1}" for i in range(width)]
                if len(row) != width:
                    raise UserError(f"{path}, line {line}: {len(row)} columns, but the {'header' if header else 'first row'} "
                                    f"has {width}; every row must have the same number of cells (a ragged file, or a "
                                    "delimiter inside an unquoted cell).")
                values = []
                for column, cell in enumerate(row):
                    if column == index:
                        continue
                    try:
                        value = float(cell)
                    except ValueError:
                        assert names is not None
                        raise UserError(
                            f"{path}, line {line}, column {column + 1} ({names[column]!r}): {cell.strip()[:40]!r} is "
                            "not a number; every feature cell must be numeric (only the label column may hold text)."
                        ) from None
                    values.append(value)
                rows.append(values)
                labels.append(row[index].strip())
                label_lines.append(line)
                if len(rows) == _CHUNK_ROWS:
                    chunks.append(np.asarray(rows, dtype=np.float32))
                    rows = []
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not a UTF-8 text file ({exc.reason} at byte {exc.start}); expected a CSV file.") from None
    except csv.Error as exc:
        raise UserError(f"{path}: not a readable CSV file ({exc}).") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}.") from None
    if rows:
        chunks.append(np.asarray(rows, dtype=np.float32))
    if names is None:
        raise UserError(f"{path} holds no rows; expected a CSV file with {'a header and ' if header else ''}one sample "
                        "per row.")
    features_names = [n for i, n in enumerate(names) if i != index]
    if expected_names is not None and len(features_names) != len(expected_names):
        raise UserError(f"{path} has {len(features_names)} feature columns but the training file has "
                        f"{len(expected_names)}; the test file must have the same columns.")
    features = np.concatenate(chunks) if chunks else np.empty((0, width - 1), np.float32)
    if features.size and not np.all(np.isfinite(features)):
        row, column = map(int, np.argwhere(~np.isfinite(features))[0])
        raise UserError(f"{path}, line {label_lines[row]}: feature {features_names[column]!r} is "
                        f"{features[row, column]}; features must be finite numbers.")
    return _Table(features, labels, label_lines, features_names, names[index])


class CSV:
    """A dataset from CSV files: one sample per row, numeric feature columns and one label column.

    * ``path``: the training file; ``test_path``: an optional test file with the same columns (without
      it there is no test split: hold out rows with ``[dataset] validation = N``, the last N rows).
      Paths are absolute, relative to the current folder, or relative to ``--data-dir`` /
      ``NUMPYML_DATA_DIR``.
    * ``label_column``: the label column's name (with a header) or index (0 = first, -1 = last).
    * ``header``: the first row names the columns; ``delimiter``: the cell separator.
    * Labels: when every label is an integer they are the class indices (``num_classes`` = the largest
      plus one unless given); otherwise each distinct text is a class, in sorted order, and the names
      are kept (``class_names``, shown by reports).
    * ``normalize``: standardize every feature with ``mean``/``std`` if given, else with the training
      file's statistics.
    """

    title = "csv"

    def __init__(self, path: str, test_path: str | None = None, label_column: int | str = -1, header: bool = True,
                 delimiter: str = ",", num_classes: int | None = None, normalize: bool = False,
                 mean: list[float] | None = None, std: list[float] | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise ValueError(f"path must name a CSV file, got {path!r}")
        if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\r\n":
            raise ValueError(f"delimiter must be one character (not a quote or a line break), got {delimiter!r}")
        if isinstance(label_column, bool):
            raise ValueError(f"label_column must be a column name or index, got {label_column!r}")
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                        or num_classes < 1):
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        _files.check_normalization(normalize, mean, std)
        self.path, self.test_path = str(path), None if test_path is None else str(test_path)
        self.label_column, self.header, self.delimiter = label_column, bool(header), delimiter
        self._num_classes = num_classes
        self.normalize, self.mean, self.std = bool(normalize), mean, std
        self._data_dir: str | os.PathLike | None = None

    def __repr__(self) -> str:
        return f"CSV(path={self.path!r}, test_path={self.test_path!r})"

    def _files(self) -> dict[str, Path]:
        files = {"train": _files.resolve_path(self.path, "file", self.title, self._data_dir)}
        if self.test_path is not None:
            files["test"] = _files.resolve_path(self.test_path, "test_path file", self.title, self._data_dir)
        return files

    def _parsed(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str], dict[str, str]]:
        files = self._files()
        options = (self.label_column, self.header, self.delimiter, self._num_classes)
        key = tuple(_files.cache_key("csv", p, *options) for p in files.values())
        return _files.cached(key, lambda: self._parse(files))

    def _parse(self, files: dict[str, Path]):
        tables = {"train": read_table(files["train"], self.label_column, self.header, self.delimiter)}
        if "test" in files:
            tables["test"] = read_table(files["test"], self.label_column, self.header, self.delimiter,
                                        tables["train"].names)
        train = tables["train"]
        if all(_INTEGER.fullmatch(label) for table in tables.values() for label in table.labels):
            labels = {}
            for split, table in tables.items():
                values = np.array([int(label) for label in table.labels], dtype=np.int64)
                try:
                    labels[split] = _files.integer_labels(f"{files[split]} (column {table.label_name!r})", values,
                                                          self._num_classes)
                except UserError as exc:
                    row = int(np.flatnonzero((values < 0) | (values >= (self._num_classes or 1 << 62)))[0])
                    raise UserError(f"{exc} (line {table.label_lines[row]})") from None
            classes = self._num_classes or int(max(int(y.max()) for y in labels.values() if y.size)) + 1
            names = [str(i) for i in range(classes)]
        else:
            names = sorted(set(train.labels))
            if self._num_classes is not None and self._num_classes != len(names):
                raise UserError(f"{files['train']}: num_classes = {self._num_classes} but the label column "
                                f"{train.label_name!r} holds {len(names)} distinct labels.")
            position = {name: i for i, name in enumerate(names)}
            labels = {}
            for split, table in tables.items():
                for label, line in zip(table.labels, table.label_lines):
                    if label not in position:
                        raise UserError(f"{files[split]}, line {line}: label {label[:40]!r} does not occur in the "
                                        f"training file {files['train']}; its classes are "
                                        f"{', '.join(repr(n) for n in names[:10])}{', ...' if len(names) > 10 else ''}.")
                labels[split] = np.array([position[label] for label in table.labels], dtype=np.int64)
        features = {split: table.features for split, table in tables.items()}
        return features, labels, names, {split: str(path) for split, path in files.items()}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self._parsed()[0]["train"].shape[1],)

    @property
    def num_classes(self) -> int:
        return len(self._parsed()[2])

    @property
    def class_names(self) -> list[str]:
        return list(self._parsed()[2])

    @property
    def split_sizes(self) -> dict[str, int]:
        return {split: len(x) for split, x in self._parsed()[0].items()}

    def load(self, data_dir: str | None = None) -> dict[str, ArraySplit]:
        """``{"train": ..., "test": ...}`` (``test`` only with ``test_path``): float32 features."""
        self._data_dir = data_dir
        features, labels, _, sources = self._parsed()
        arrays = {split: (features[split], labels[split]) for split in features}
        return _files.make_splits(self.title, arrays, sources, self.normalize, self.mean, self.std)
