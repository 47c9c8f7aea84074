"""``seqrep encode``: the frozen features of a pretrained run, per series or per time step, into
a ``.npy``, ``.csv`` or ``.parquet`` file.

File layouts: ``.npy`` holds [N, D] (one vector per series) or [N, T, D] (per time step, NaN
past each series' end); ``.csv`` and ``.parquet`` hold one row per series (``split``, ``label``,
``f0`` .. ``f{D-1}``) or, per time step, one row per (series, step) with ``series`` and ``step``
columns besides.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from seqrep.data.series import SeriesDataset, load_series
from seqrep.loops.pretrain import PretrainConfig
from seqrep.loops.runs import atomic_write_bytes, load_run
from seqrep.loops.transform import CPCTransformer

__all__ = ["FORMATS", "check_target", "run_data_source", "splits_to_encode", "write_features"]

FORMATS = (".npy", ".csv", ".parquet")


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse an output of an unknown format, or an existing one without ``overwrite``.

    Raises:
        ValueError: what is wrong, in one line.
    """
    if target.suffix not in FORMATS:
        raise ValueError(f"--out {target}: write .npy, .csv or .parquet")
    if target.is_dir() or (target.exists() and not overwrite):
        raise ValueError(
            f"--out {target} already exists: pass --overwrite to replace it, or choose another file"
        )


def _names_a_file(source: str) -> bool:
    """A path (it has a suffix, or exists) rather than the name of a shipped data set."""
    return Path(source).suffix != "" or Path(source).exists()


def run_data_source(run_dir: str | Path, key: str = "data") -> str:
    """Where a pretrain run's ``data`` (or ``test_data``) is: the path as the run was given it
    if it resolves from here, else the absolute path the run recorded in data.json; a shipped
    set's name as it is.

    Raises:
        FileNotFoundError: the file is found neither way.
    """
    cfg, _ = load_run(run_dir, "pretrain", PretrainConfig)
    recorded = getattr(cfg, key)
    if not recorded or Path(recorded).exists() or not _names_a_file(recorded):
        return str(recorded)
    record = Path(run_dir) / "data.json"
    if record.exists():
        absolute = json.loads(record.read_text()).get(key, "")
        if Path(absolute).exists():
            return str(absolute)
    flag = "--" + key.replace("_", "-")
    raise FileNotFoundError(
        f"{recorded} (the run's {flag}) is not found from {Path.cwd()}; run from the folder the "
        f"run started in, or pass {flag} PATH"
    )


def splits_to_encode(
    run_dir: str | Path, data: str = "", split: str = "both"
) -> tuple[dict[str, SeriesDataset], str]:
    """The raw series to encode, by split name, and where they come from: ``data`` (a file, or a
    shipped set's ``split``), else the run's own data's ``split`` (train, test or both)."""
    names = ("train", "test") if split == "both" else (split,)
    if data:
        if _names_a_file(data):
            return {"file": load_series(data)}, data
        return {k: load_series(data, k) for k in names}, data
    source = run_data_source(run_dir, "data")
    if not _names_a_file(source):
        return {k: load_series(source, k) for k in names}, source
    splits = {"train": load_series(source)} if "train" in names else {}
    if "test" in names:
        test = run_data_source(run_dir, "test_data")
        guess = Path(source).with_name(Path(source).name.replace("_TRAIN", "_TEST"))
        test = test or (str(guess) if guess != Path(source) and guess.exists() else "")
        if not test:
            raise ValueError(f"the run's data {source} has no test split: pass --split train")
        splits["test"] = load_series(test)
    return splits, source


def write_features(
    target: Path,
    transformer: CPCTransformer,
    splits: dict[str, SeriesDataset],
    *,
    per_timestep: bool = False,
    encoding_window: int = 0,
    causal: bool = True,
) -> str:
    """Encode every split (as :meth:`CPCTransformer.encode`) and write ``target`` atomically;
    returns a one-line summary."""
    parts = {
        k: transformer.encode(
            _collection(v),
            per_timestep=per_timestep,
            encoding_window=encoding_window,
            causal=causal,
        ).astype(np.float32)
        for k, v in splits.items()
    }
    features = np.concatenate(list(parts.values()))
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, features)
        atomic_write_bytes(target, buffer.getvalue())
    else:
        _write_table(target, parts, splits)
    counts = ", ".join(f"{k} {len(v)}" for k, v in parts.items())
    shape = " x ".join(map(str, features.shape[1:]))
    return f"{target}: {features.shape[0]} series ({counts}) x {shape} features"


def _collection(data: SeriesDataset) -> list[np.ndarray]:
    """aeon's list layout [n_channels, T_i] of a data set's series (their valid steps)."""
    return [data.values[i, : data.lengths[i]].T for i in range(len(data))]


def _write_table(
    target: Path, parts: dict[str, np.ndarray], splits: dict[str, SeriesDataset]
) -> None:
    try:
        import pandas as pd
    except ImportError as e:
        raise ImportError(
            f"writing {target.suffix} needs pandas: pip install 'seqrep[series]'"
        ) from e
    frames = []
    for name, x in parts.items():
        data = splits[name]
        labels = [data.classes[c] if data.labelled else "" for c in data.labels]
        if x.ndim == 2:
            frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
            frame.insert(0, "label", labels)
        else:  # one row per (series, valid step)
            rows = [
                (i, t)
                for i in range(len(x))
                for t in range(x.shape[1])
                if not np.isnan(x[i, t]).all()
            ]
            frame = pd.DataFrame(
                np.stack([x[i, t] for i, t in rows]), columns=[f"f{j}" for j in range(x.shape[2])]
            )
            frame.insert(0, "step", [t for _, t in rows])
            frame.insert(0, "label", [labels[i] for i, _ in rows])
            frame.insert(0, "series", [i for i, _ in rows])
        frame.insert(0, "split", name)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    tmp = target.with_name(target.name + ".tmp")
    try:
        if target.suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
        tmp.replace(target)
    except ImportError as e:
        raise ImportError(
            f"writing .parquet needs pyarrow: pip install 'seqrep[series]' ({e})"
        ) from e
    finally:
        tmp.unlink(missing_ok=True)
