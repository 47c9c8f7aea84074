"""Time-series classification data: UCR/UEA sets shipped with aeon, or any .ts/.arff/.tsv file.

Every split becomes one :class:`SeriesDataset`: values ``[N, T_max, C]`` float32, NaN-padded past
each series' length, with ``lengths [N]`` and integer ``labels [N]``. Normalisation is fitted on the
training split only (:class:`Standardizer`) and applied to both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "SHIPPED_DATASETS",
    "SeriesDataset",
    "Standardizer",
    "load_normalised",
    "load_series",
    "load_train_test",
    "padded_from_collection",
]

# The UCR/UEA sets that aeon ships inside its wheel (no download).
SHIPPED_DATASETS = (
    "ArrowHead",
    "ACSF1",
    "GunPoint",
    "ItalyPowerDemand",
    "OSULeaf",
    "PickupGestureWiimoteZ",
    "BasicMotions",
    "JapaneseVowels",
)
_SUFFIXES = (".ts", ".arff", ".tsv")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class SeriesDataset:
    """A split of a classification data set.

    Attributes:
        values: [N, T_max, C] float32, NaN after each series' end.
        lengths: [N] int64, valid time steps per series.
        labels: [N] int64 class indices into ``classes``.
        classes: the original class names, sorted.
        name: where it came from.
    """

    values: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    classes: list[str]
    name: str = ""
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.values.ndim != 3:
            raise ValueError(f"values must be [N, T, C], got shape {self.values.shape}")
        n = self.values.shape[0]
        if n == 0:
            raise ValueError(f"{self.name or 'data set'} holds no series")
        if self.lengths.shape != (n,) or self.labels.shape != (n,):
            raise ValueError("lengths and labels must have one entry per series")

    @property
    def num_channels(self) -> int:
        return int(self.values.shape[2])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def max_length(self) -> int:
        return int(self.values.shape[1])

    @property
    def mask(self) -> np.ndarray:
        """[N, T_max] bool, True at valid time steps."""
        return np.arange(self.max_length)[None, :] < self.lengths[:, None]

    @property
    def equal_length(self) -> bool:
        return bool((self.lengths == self.max_length).all())

    def __len__(self) -> int:
        return int(self.values.shape[0])


def padded_from_collection(x: np.ndarray | list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """aeon's [N, C, T] array or list of [C, T_i] arrays -> ([N, T_max, C] NaN-padded, lengths).

    Trailing all-NaN steps count as padding; inf values and series without a number are errors.
    """
    series = list(x) if isinstance(x, list) else [s for s in x]
    if not series:
        raise ValueError("no series found")
    lengths, infinite = [], []
    for s in series:
        s = np.asarray(s, dtype=np.float64)
        infinite.append(bool(np.isinf(s).any()))
        # Trailing all-NaN steps are padding (how UCR stores unequal lengths in equal-width files).
        valid = ~np.isnan(s).all(axis=0)
        lengths.append(int(np.nonzero(valid)[0][-1] + 1) if valid.any() else 0)
    empty = [i for i, n in enumerate(lengths) if n == 0]
    if empty:
        raise ValueError(
            f"series {empty[:5]} hold no numeric values: the file is malformed or truncated"
        )
    bad = [i for i, inf in enumerate(infinite) if inf]
    if bad:
        raise ValueError(
            f"series {bad[:5]} contain inf values: replace or drop them (NaN marks a missing or "
            "padded value)"
        )
    huge = [
        i
        for i, s in enumerate(series)
        if np.nanmax(np.abs(np.asarray(s, float)), initial=0) > _FLOAT32_MAX
    ]
    if huge:
        raise ValueError(
            f"series {huge[:5]} hold values beyond float32's range (|x| > {_FLOAT32_MAX:.1e}), "
            "which the encoders compute in: rescale the data (e.g. divide by a power of ten)"
        )
    channels = int(np.asarray(series[0]).shape[0])
    out = np.full((len(series), max(lengths), channels), np.nan, dtype=np.float32)
    for i, (s, n) in enumerate(zip(series, lengths, strict=True)):
        s = np.asarray(s, dtype=np.float32)
        if s.shape[0] != channels:
            raise ValueError(f"series {i} has {s.shape[0]} channels, the first has {channels}")
        out[i, :n] = s[:, :n].T
    return out, np.asarray(lengths, dtype=np.int64)


def _encode_labels(raw: np.ndarray, classes: list[str] | None) -> tuple[np.ndarray, list[str]]:
    names = [str(v) for v in raw]
    if classes is None:
        classes = sorted(set(names), key=lambda c: (len(c), c) if c.isdigit() else (0, c))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise ValueError(f"labels {unknown[:5]} do not occur in the training split")
    return np.asarray([index[c] for c in names], dtype=np.int64), classes


def _read_file(path: Path) -> tuple[np.ndarray | list[np.ndarray], np.ndarray]:
    from aeon.datasets import load_from_arff_file, load_from_ts_file, load_from_tsv_file

    readers = {".ts": load_from_ts_file, ".arff": load_from_arff_file, ".tsv": load_from_tsv_file}
    if path.suffix.lower() not in readers:
        raise ValueError(f"{path}: unknown file type; seqrep reads {', '.join(_SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty")
    try:
        x, y = readers[path.suffix.lower()](str(path))
    except Exception as e:  # aeon raises IOError/ValueError/IndexError on malformed files
        raise ValueError(
            f"{path} is not a valid {path.suffix} classification file: {type(e).__name__}: {e}"
        ) from e
    if y is None or len(y) == 0:
        raise ValueError(f"{path} has no class labels; seqrep's classification loaders need them")
    return x, np.asarray(y)


def load_series(
    source: str | Path, split: str = "train", classes: list[str] | None = None
) -> SeriesDataset:
    """Load one split by data set name (aeon-shipped) or by file path.

    Args:
        source: a name from :data:`SHIPPED_DATASETS` (or any other that aeon ships), or a path
            to a ``.ts``/``.arff``/``.tsv`` file (``split`` is then ignored).
        split: ``"train"`` or ``"test"`` for named data sets.
        classes: the class names of the training split, so test labels map to the same ids.
    """
    path = Path(source)
    if path.suffix.lower() in _SUFFIXES or path.exists():
        x, y = _read_file(path)
        name = path.stem
    else:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        x, y = _load_shipped(str(source), split)
        name = f"{source}_{split.upper()}"
    try:
        values, lengths = padded_from_collection(x)
        labels, classes = _encode_labels(y, classes)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from e
    return SeriesDataset(values, lengths, labels, classes, name=name)


def _load_shipped(name: str, split: str) -> tuple[np.ndarray | list[np.ndarray], np.ndarray]:
    import aeon.datasets
    from aeon.datasets import load_classification

    shipped_dir = Path(aeon.datasets.__file__).parent / "data"
    available = sorted(
        p.name for p in shipped_dir.iterdir() if p.is_dir() and any(p.glob("*_TRAIN.ts"))
    )
    if name not in available:
        raise ValueError(
            f"unknown data set {name!r}. Shipped with aeon (no download): {', '.join(available)}. "
            "Or pass a path to a .ts/.arff/.tsv file."
        )
    x, y = load_classification(name, split=split, extract_path=str(shipped_dir))
    return x, np.asarray(y)


def load_train_test(source: str, test: str | None = None) -> tuple[SeriesDataset, SeriesDataset]:
    """Both splits. ``test`` (a file, or a shipped set's name for its test split) is the test
    split whatever ``source`` is; without it, a file ``X_TRAIN.ts`` is paired with ``X_TEST.ts``
    beside it and a shipped set with its own test split."""
    path = Path(source)
    if path.suffix.lower() in _SUFFIXES or path.exists():
        if path.suffix.lower() not in _SUFFIXES:
            raise ValueError(f"{path}: unknown file type; seqrep reads {', '.join(_SUFFIXES)}")
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist (relative paths start from {Path.cwd()})"
            )
        if test is None:
            guess = path.with_name(path.name.replace("_TRAIN", "_TEST"))
            if guess == path or not guess.exists():
                raise ValueError(
                    f"no test split for {path}: pass the test file explicitly (--test-data FILE; a "
                    "file named *_TRAIN.* is paired with the *_TEST.* file beside it)"
                )
            test = str(guess)
        train = load_series(path)
    else:
        train = load_series(source, "train")
    if len(np.unique(train.labels)) < 2:
        raise ValueError(
            f"{source}: the training split holds one class ({train.classes[0]!r}); a classifier "
            "probe needs at least two"
        )
    return train, load_series(test or source, "test", classes=train.classes)


def load_normalised(source: str, test: str = "") -> tuple[SeriesDataset, SeriesDataset]:
    """Train and test splits (:func:`load_train_test`), z-scored per channel with the training
    split's statistics."""
    train, test_split = load_train_test(source, test or None)
    scaler = Standardizer().fit(train)
    return scaler.transform(train), scaler.transform(test_split)


class Standardizer:
    """Per-channel z-score fitted on the training split's valid (non-NaN) values."""

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, data: SeriesDataset) -> Standardizer:
        """Per-channel mean and standard deviation of the valid values, in float64: float32
        statistics overflow for values above about 1e19 and would turn every feature to 0."""
        flat = data.values.reshape(-1, data.num_channels).astype(np.float64)
        self.mean = np.nanmean(flat, axis=0)
        std = np.nanstd(flat, axis=0)
        if not (np.isfinite(self.mean).all() and np.isfinite(std).all()):
            raise ValueError(f"{data.name}: the values' mean or spread is not a finite number")
        self.std = np.where(std > 1e-8, std, 1.0)  # a constant channel stays constant
        return self

    def transform(self, data: SeriesDataset) -> SeriesDataset:
        if self.mean is None or self.std is None:
            raise RuntimeError("Standardizer.transform called before fit")
        if data.num_channels != self.mean.shape[0]:
            raise ValueError(
                f"{data.name} has {data.num_channels} channels, the training split had "
                f"{self.mean.shape[0]}"
            )
        values = ((data.values - self.mean) / self.std).astype(np.float32)
        if np.isinf(values).any():
            raise ValueError(
                f"{data.name} holds values too far from the training split's (z-scores beyond "
                "float32's range): it does not come from the same source"
            )
        return SeriesDataset(values, data.lengths, data.labels, data.classes, data.name, data.meta)
