"""Evaluation helpers and the ``test_time_augmentation`` callback."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from numpyml_core import hookimpl


def evaluate_split(model: Any, cost: Any, split: Any, batch_size: int = 1000,
                   views: Any = None) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on a whole split in evaluation mode, as the trainer
    computes them; with ``views`` (a :class:`Views`), of the weighted average of the outputs of
    several augmented views of every batch."""
    n = len(split)
    total_loss = 0.0
    correct = 0
    for start in range(0, n, batch_size):
        indices = np.arange(start, min(start + batch_size, n))
        x, y = split.batch(indices)
        if views is None:
            loss, outputs = model.loss(x, y, cost)
        else:
            loss, outputs = views.loss(model, cost, x, y)
        total_loss += float(loss) * len(indices)
        if outputs.ndim == 2 and y.ndim == 1:
            correct += int(np.count_nonzero(outputs.argmax(axis=1) == y))
    return {"loss": total_loss / max(n, 1), "accuracy": correct / max(n, 1)}


def _fused(model: Any, cost: Any) -> bool:
    head = getattr(model, "head", None)
    fused = getattr(cost, "fused_activation", None)
    return head is not None and fused is not None and fused == getattr(head, "fusable_as", None)


class Views:
    """The augmented views of an NHWC batch and their weights (airbench's ``infer_mirror_translate``):

    * ``mirror``: the image and its left-right mirror, 1/2 each;
    * ``mirror_translate``: those (1/4 each), and the mirrored pair of the image shifted by
      ``translate`` pixels up-left and down-right with reflect padding (1/8 each).
    """

    def __init__(self, kind: str, translate: int, average: str) -> None:
        self.kind = kind
        self.translate = translate
        self.average = average

    def images(self, x: np.ndarray) -> list[tuple[np.ndarray, float]]:
        if x.ndim != 4:
            raise ValueError(f"test_time_augmentation needs NHWC image batches, got shape {x.shape}")
        pairs = [(x, 1.0)]
        if self.kind == "mirror_translate":
            t = self.translate
            h, w = x.shape[1:3]
            if t >= h or t >= w:
                raise ValueError(f"test_time_augmentation: translate = {t} needs images larger than {t} pixels")
            padded = np.pad(x, ((0, 0), (t, t), (t, t), (0, 0)), mode="reflect")
            pairs = [(x, 0.5), (padded[:, :h, :w], 0.25), (padded[:, 2 * t:2 * t + h, 2 * t:2 * t + w], 0.25)]
        views = []
        for image, weight in pairs:
            views.append((image, weight / 2))
            views.append((image[:, :, ::-1], weight / 2))
        return views

    def loss(self, model: Any, cost: Any, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """The cost of the weighted average of the views' logits (or probabilities) and that average."""
        total = None
        by_logits = self.average == "logits"
        for image, weight in self.images(x):
            image = np.ascontiguousarray(image)
            out = model.logits(image, training=False) if by_logits else model.predict(image)
            out = out * out.dtype.type(weight)
            total = out if total is None else total + out
        if not by_logits:
            return float(cost.loss(total, y)), total
        if _fused(model, cost):
            return float(cost.loss_from_logits(total, y)), total
        head = getattr(model, "head", None)
        outputs = head.forward(total, False) if head is not None else total
        return float(cost.loss(outputs, y)), outputs


class TestTimeAugmentation:
    """Test-time augmentation: evaluate on the weighted average of several views of every image.

    * ``views``: ``"mirror"`` (the image and its mirror) or ``"mirror_translate"`` (also the mirrored
      pair shifted by ``translate`` pixels up-left and down-right, reflect padding: airbench's
      6-view TTA, weights 1/4, 1/4, 1/8 x 4);
    * ``average``: of the ``"logits"`` (airbench) or of the ``"probabilities"`` (what ``[training]
      eval_flip`` does); the loss is the cost of the average;
    * ``when``: ``"end"`` (once, after training, into ``summary.json``: the model as saved, after an
      ``ema``'s average was loaded) or ``"every_epoch"`` (columns of metrics.csv);
    * ``splits``: the splits to evaluate (default: the run's evaluation splits);
    * ``batch_size``: default ``[training] eval_batch_size``.

    Adds ``tta_<split>_loss`` and ``tta_<split>_accuracy``. Costs ``2`` or ``6`` evaluations.
    """

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, views: Literal["mirror", "mirror_translate"] = "mirror_translate", translate: int = 1,
                 average: Literal["logits", "probabilities"] = "logits",
                 when: Literal["end", "every_epoch"] = "end", splits: list[str] | None = None,
                 batch_size: int | None = None) -> None:
        if views not in ("mirror", "mirror_translate"):
            raise ValueError(f'views must be "mirror" or "mirror_translate", got {views!r}')
        if isinstance(translate, bool) or not isinstance(translate, int) or translate < 1:
            raise ValueError(f"translate must be a positive integer, got {translate!r}")
        if average not in ("logits", "probabilities"):
            raise ValueError(f'average must be "logits" or "probabilities", got {average!r}')
        if when not in ("end", "every_epoch"):
            raise ValueError(f'when must be "end" or "every_epoch", got {when!r}')
        if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.views = Views(views, translate, average)
        self.when = when
        self.splits = None if splits is None else list(splits)
        self.batch_size = batch_size

    def measure(self, run: Any) -> dict[str, float]:
        """``tta_<split>_loss`` and ``tta_<split>_accuracy`` of the run's model now."""
        names = self.splits if self.splits is not None else run.eval_splits
        unknown = [name for name in names if name not in run.splits]
        if unknown:
            raise ValueError(f"test_time_augmentation: no split {unknown}; this run has {sorted(run.splits)}")
        batch_size = self.batch_size or run.spec.training.eval_batch_size
        figures = {}
        for name in names:
            result = evaluate_split(run.model, run.cost, run.splits[name], batch_size, self.views)
            figures[f"tta_{name}_loss"] = result["loss"]
            figures[f"tta_{name}_accuracy"] = result["accuracy"]
        return figures

    @hookimpl(tryfirst=True)  # before metrics_csv writes the row
    def numpyml_on_epoch_end(self, run: Any, metrics: dict) -> None:
        if self.when == "every_epoch":
            metrics.update(self.measure(run))

    @hookimpl(trylast=True)
    def numpyml_on_run_end(self, run: Any, summary: dict) -> None:
        if self.when == "end":
            summary.update(self.measure(run))

    def __repr__(self) -> str:
        return (f"TestTimeAugmentation(views={self.views.kind!r}, translate={self.views.translate}, "
                f"average={self.views.average!r}, when={self.when!r}, splits={self.splits}, "
                f"batch_size={self.batch_size})")
