"""Time-series data: UCR/UEA sets shipped with aeon, aeon's files, and plain arrays.

Every split becomes one :class:`SeriesDataset`: values ``[N, T_max, C]`` float32, NaN-padded past
each series' length, with ``lengths [N]`` and integer ``labels [N]`` (-1 where the data carry no
labels, the normal case for self-supervised pretraining). Normalisation is fitted on the training
split only (:class:`Standardizer`) and applied to both.

File layouts (:func:`load_series`):

* ``.ts``, ``.arff``, ``.tsv``: aeon's classification formats (labels optional in ``.ts``).
* ``.npy``: one array, ``[n_cases, n_channels, n_timepoints]`` (aeon's collection layout) or
  ``[n_cases, n_timepoints]`` for univariate series; NaN after a series' end for unequal
  lengths. No labels.
* ``.npz``: the array as ``X`` (as ``.npy``) and, optionally, labels as ``y`` ``[n_cases]``.
* ``.csv``, ``.parquet``: one row per series (univariate), its time steps in the numeric
  columns in order (blank / NaN past its end); an optional ``label`` column; for multivariate
  series one row per (series, channel) with ``series`` and ``channel`` columns.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = [
    "SHIPPED_DATASETS",
    "SeriesDataset",
    "Standardizer",
    "load_normalised",
    "load_series",
    "load_splits",
    "load_train_test",
    "padded_from_collection",
    "reference_table",
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
_AEON_SUFFIXES = (".ts", ".arff", ".tsv")
_ARRAY_SUFFIXES = (".npy", ".npz", ".csv", ".parquet")
_SUFFIXES = _AEON_SUFFIXES + _ARRAY_SUFFIXES
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
    def labelled(self) -> bool:
        """Whether the series carry class labels (else every label is -1)."""
        return bool(self.classes)

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


def _encode_labels(
    raw: np.ndarray | None, classes: list[str] | None, n: int
) -> tuple[np.ndarray, list[str]]:
    """Integer labels into ``classes`` (sorted names unless given); unlabelled data (``raw``
    None): -1 each, and no classes."""
    if raw is None:
        return np.full(n, -1, dtype=np.int64), []
    names = [str(v) for v in raw]
    if classes is None:
        classes = sorted(set(names), key=lambda c: (len(c), c) if c.isdigit() else (0, c))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise ValueError(f"labels {unknown[:5]} do not occur in the training split")
    return np.asarray([index[c] for c in names], dtype=np.int64), classes


def _read_file(path: Path) -> tuple[np.ndarray | list[np.ndarray], np.ndarray | None]:
    """The series of a file and its labels (None when it has none): see the module's layouts."""
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"{path}: unknown file type; seqrep reads {', '.join(_SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty")
    try:
        if suffix in _AEON_SUFFIXES:
            return _read_aeon(path)
        if suffix in (".npy", ".npz"):
            return _read_numpy(path)
        return _read_table(path)
    except (ValueError, ImportError):
        raise
    except Exception as e:  # readers raise IOError/IndexError/KeyError on malformed files
        raise ValueError(f"{path} is not a valid {suffix} file: {type(e).__name__}: {e}") from e


def _read_aeon(path: Path) -> tuple[np.ndarray | list[np.ndarray], np.ndarray | None]:
    from aeon.datasets import load_from_arff_file, load_from_ts_file, load_from_tsv_file

    readers = {".ts": load_from_ts_file, ".arff": load_from_arff_file, ".tsv": load_from_tsv_file}
    try:
        x, y = readers[path.suffix.lower()](str(path))
    except Exception as e:  # aeon raises IOError/ValueError/IndexError on malformed files
        raise ValueError(
            f"{path} is not a valid {path.suffix} classification file: {type(e).__name__}: {e}"
        ) from e
    return x, None if y is None or len(y) == 0 else np.asarray(y)


def _collection(x: np.ndarray, path: Path) -> np.ndarray:
    """A numeric array as aeon's [n_cases, n_channels, n_timepoints] (2-D: univariate)."""
    if x.dtype == object or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{path} holds {x.dtype} values, not numbers")
    if x.ndim == 2:
        return x[:, None, :]
    if x.ndim != 3:
        raise ValueError(
            f"{path} holds an array of shape {x.shape}: seqrep reads [n_cases, n_timepoints] or "
            "[n_cases, n_channels, n_timepoints]"
        )
    return x


def _read_numpy(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    if path.suffix.lower() == ".npy":
        return _collection(np.load(path, allow_pickle=False), path), None
    with np.load(path, allow_pickle=False) as archive:
        if "X" not in archive:
            raise ValueError(f"{path} has no array X (has {sorted(archive.files)})")
        y = np.asarray(archive["y"]) if "y" in archive else None
        x = _collection(np.asarray(archive["X"]), path)
    if y is not None and len(y) != len(x):
        raise ValueError(f"{path}: y has {len(y)} labels for {len(x)} series")
    return x, y


def _read_table(path: Path) -> tuple[list[np.ndarray], np.ndarray | None]:
    """A table of series (module docstring): a row per series, or per (series, channel)."""
    try:
        import pandas as pd
    except ImportError as e:
        raise ImportError(
            f"reading {path.suffix} files needs pandas: pip install 'seqrep[series]'"
        ) from e
    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except ImportError as e:
        raise ImportError(
            f"reading .parquet needs pyarrow: pip install 'seqrep[series]' ({e})"
        ) from e
    keys = [c for c in ("series", "channel", "label") if c in frame.columns]
    steps = frame.drop(columns=keys)
    non_numeric = [c for c in steps.columns if not pd.api.types.is_numeric_dtype(steps[c])]
    if non_numeric:
        raise ValueError(
            f"{path}: columns {non_numeric[:5]} are not numbers; time steps must be, besides "
            "optional label, series and channel columns"
        )
    if "channel" in frame.columns:
        if "series" not in frame.columns:
            raise ValueError(
                f"{path}: a channel column needs a series column naming each row's series"
            )
        groups = [g.sort_values("channel") for _, g in frame.groupby("series", sort=False)]
        x = [g.drop(columns=keys).to_numpy(np.float64) for g in groups]
        y = [g["label"].iloc[0] for g in groups] if "label" in frame.columns else None
    else:
        x = [row[None, :] for row in steps.to_numpy(np.float64)]
        y = list(frame["label"]) if "label" in frame.columns else None
    return x, None if y is None else np.asarray(y)


def load_series(
    source: str | Path, split: str = "train", classes: list[str] | None = None
) -> SeriesDataset:
    """Load one split by data set name (aeon-shipped) or by file path.

    Args:
        source: a name from :data:`SHIPPED_DATASETS` (or any other that aeon ships), or a path
            to a file in one of the layouts of this module's docstring (``split`` is then
            ignored).
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
        labels, classes = _encode_labels(y, classes, len(values))
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
            f"Or pass a path to a {'/'.join(_SUFFIXES)} file."
        )
    x, y = load_classification(name, split=split, extract_path=str(shipped_dir))
    return x, np.asarray(y)


def load_splits(source: str, test: str | None = None) -> tuple[SeriesDataset, SeriesDataset | None]:
    """The training split and, where there is one, the test split: ``test`` (a file, or a
    shipped set's name for its test split) whatever ``source`` is; without it, a file
    ``X_TRAIN.*`` is paired with ``X_TEST.*`` beside it, a shipped set with its own test split,
    and any other file has none (None)."""
    path = Path(source)
    if path.suffix.lower() in _SUFFIXES or path.exists():
        if path.suffix.lower() not in _SUFFIXES:
            raise ValueError(f"{path}: unknown file type; seqrep reads {', '.join(_SUFFIXES)}")
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist (relative paths start from {Path.cwd()})"
            )
        train = load_series(path)
        if test is None:
            guess = path.with_name(path.name.replace("_TRAIN", "_TEST"))
            test = str(guess) if guess != path and guess.exists() else None
    else:
        train = load_series(source, "train")
        test = test or source
    if train.labelled and len(np.unique(train.labels)) < 2:
        raise ValueError(
            f"{source}: the training split holds one class ({train.classes[0]!r}); a classifier "
            "probe needs at least two (unlabelled data are pretrained without a probe)"
        )
    if test is None:
        return train, None
    return train, load_series(test, "test", classes=train.classes or None)


def load_train_test(source: str, test: str | None = None) -> tuple[SeriesDataset, SeriesDataset]:
    """Both splits of a labelled data set, for a classifier probe (:func:`load_splits`).

    Raises:
        ValueError: no test split, no labels, or a training split of one class.
    """
    train, test_split = load_splits(source, test)
    if test_split is None:
        raise ValueError(
            f"no test split for {source}: pass the test file explicitly (--test-data FILE; a "
            "file named *_TRAIN.* is paired with the *_TEST.* file beside it)"
        )
    if not (train.labelled and test_split.labelled):
        raise ValueError(f"{source}: a classifier probe needs labelled training and test splits")
    return train, test_split


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

    def to_dict(self) -> dict[str, list[float]]:
        """The fitted statistics as plain lists (JSON)."""
        if self.mean is None or self.std is None:
            raise RuntimeError("Standardizer.to_dict called before fit")
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, stats: dict[str, list[float]]) -> Standardizer:
        """A fitted Standardizer from :meth:`to_dict`'s output."""
        scaler = cls()
        scaler.mean, scaler.std = np.asarray(stats["mean"]), np.asarray(stats["std"])
        return scaler

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


def reference_table(name: str = "timeseries_classification.csv") -> dict[str, dict[str, str]]:
    """Published reference numbers shipped with seqrep, keyed by data set."""
    text = resources.files("seqrep.data").joinpath("reference", name).read_text()
    rows = csv.DictReader(
        io.StringIO("\n".join(line for line in text.splitlines() if not line.startswith("#")))
    )
    return {r["dataset"]: r for r in rows}
