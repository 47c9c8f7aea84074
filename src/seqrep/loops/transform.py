"""seqrep's sequence encoders as an aeon collection transformer (scikit-learn fit/transform).

    from sklearn.linear_model import LogisticRegression  # or any tabular model
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from seqrep.loops.transform import CPCTransformer

    model = make_pipeline(CPCTransformer(), StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(X_train, y_train)             # X: [n_cases, n_channels, n_timepoints] or a list
    model.score(X_test, y_test)             #    of [n_channels, n_timepoints_i] arrays

``fit`` pretrains the self-supervised objective (CPC by default; labels are never used) on the
collection, z-scored per channel with its statistics; ``transform`` returns the frozen
features [n_cases, n_features] of any collection (each series' steps pooled as ``pool``: max
and mean by default), z-scored with the fitted statistics. aeon's own self-supervised
transformers need TensorFlow; this one is PyTorch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

try:
    from aeon.transformations.collection import BaseCollectionTransformer
except ImportError as e:  # the series extra: say which, not aeon's internals
    raise ImportError(
        f"CPCTransformer is an aeon estimator ({e}): pip install 'seqrep[series]'"
    ) from e

from seqrep.data.series import SeriesDataset, Standardizer, padded_from_collection
from seqrep.loops.pretrain import PretrainConfig, load_pretrained, pretrain
from seqrep.loops.probes import encode_dataset, encode_steps
from seqrep.methods import SeriesMethod
from seqrep.options import OptionError

__all__ = ["CPCTransformer"]

_DEFAULT = PretrainConfig()  # the transformer's defaults are the command line's
# PretrainConfig's fields set from another parameter of the transformer.
_PARAMETER = {"seed": "random_state", "context_dim": "z_dim"}


class CPCTransformer(BaseCollectionTransformer):
    """Self-supervised sequence features (CPC, or the triplet / pairwise window objectives).

    Args:
        method: ``cpc``, ``triplet`` or ``contrastive``.
        iterations: pretraining steps (100 of batch 8 by default: one step of bidirectional
            CPC trains both directions, so this costs TS2Vec's 200 x 8).
        batch_size: series per step.
        window: crop length (steps) of the training windows.
        lr: Adam's learning rate.
        hidden: the encoder's channels.
        depth: the encoder's residual blocks.
        z_dim: the size of z_t (and of CPC's context c_t).
        horizon: CPC's K, the steps ahead it predicts.
        negatives: where CPC's negatives come from (``batch``, ``time``, ``both``, ``position``).
        bidirectional: a backward CPC beside the forward one.
        crop_context: CPC's context reads a random crop (see ``seqrep pretrain --help``).
        pool: how steps are pooled into one vector (``max``, ``max-mean``).
        random_state: seeds the initialisation and the crops (the same seed, the same features).
        device: ``auto``, ``cpu`` or ``cuda``.
        per_timestep: ``transform`` returns one vector per time step instead of per series.
        encoding_window: per time step, pool the last ``encoding_window`` steps (> 0).
        causal: per time step, no vector reads a later step.

    ``CPCTransformer.from_run(run_dir)`` (or ``seqrep.load``) gives the fitted transformer of a
    ``seqrep pretrain`` run: the same features as ``seqrep encode``.
    """

    _tags: ClassVar[dict[str, Any]] = {
        "output_data_type": "Tabular",
        "X_inner_type": ["np-list", "numpy3D"],
        "capability:unequal_length": True,
        "capability:multivariate": True,
        "fit_is_empty": False,
        "algorithm_type": "deeplearning",
    }

    def __init__(
        self,
        method: str = _DEFAULT.method,
        iterations: int = _DEFAULT.iterations,
        batch_size: int = _DEFAULT.batch_size,
        window: int = _DEFAULT.window,
        lr: float = _DEFAULT.lr,
        hidden: int = _DEFAULT.hidden,
        depth: int = _DEFAULT.depth,
        z_dim: int = _DEFAULT.z_dim,
        horizon: int = _DEFAULT.horizon,
        negatives: str = _DEFAULT.negatives,
        bidirectional: bool = _DEFAULT.bidirectional,
        crop_context: bool = _DEFAULT.crop_context,
        pool: str = _DEFAULT.pool,
        random_state: int = 0,
        device: str = _DEFAULT.device,
        per_timestep: bool = False,
        encoding_window: int = 0,
        causal: bool = True,
    ) -> None:
        self.method = method
        self.iterations = iterations
        self.batch_size = batch_size
        self.window = window
        self.lr = lr
        self.hidden = hidden
        self.depth = depth
        self.z_dim = z_dim
        self.horizon = horizon
        self.negatives = negatives
        self.bidirectional = bidirectional
        self.crop_context = crop_context
        self.pool = pool
        self.random_state = random_state
        self.device = device
        self.per_timestep = per_timestep
        self.encoding_window = encoding_window
        self.causal = causal
        super().__init__()

    def _config(self) -> PretrainConfig:
        cfg = PretrainConfig(
            method=self.method,
            iterations=self.iterations,
            batch_size=self.batch_size,
            window=self.window,
            lr=self.lr,
            hidden=self.hidden,
            depth=self.depth,
            z_dim=self.z_dim,
            context_dim=self.z_dim,
            horizon=self.horizon,
            negatives=self.negatives,
            bidirectional=self.bidirectional,
            crop_context=self.crop_context,
            pool=self.pool,
            seed=self.random_state,
            device=self.device,
        )
        try:
            cfg.validate()
        except OptionError as e:  # name the estimator's parameter, not the command line's flag
            raise ValueError(e.naming(_PARAMETER.get(e.option, e.option))) from None
        return cfg

    def _preprocess_collection(self, X: Any, store_metadata: bool = True) -> Any:
        """aeon's input checks, after one clear line for what they report obscurely: an
        empty collection (an IndexError) and, in transform, a channel count other than
        fit's (a message printed as a tuple)."""
        _check_collection(X, None if store_metadata else getattr(self, "n_channels_", None))
        return super()._preprocess_collection(X, store_metadata)

    @staticmethod
    def _dataset(X: np.ndarray | list[np.ndarray]) -> SeriesDataset:
        values, lengths = padded_from_collection(X)
        n = len(values)
        return SeriesDataset(values, lengths, np.zeros(n, np.int64), ["-"], name="collection")

    def _fit(self, X: np.ndarray | list[np.ndarray], y: Any = None) -> CPCTransformer:
        """Pretrain on X ([n_cases, n_channels, n_timepoints] or a list of 2-D arrays)."""
        cfg = self._config()
        data = self._dataset(X)
        scaler = Standardizer().fit(data)
        model, _ = pretrain(cfg, scaler.transform(data), quiet=True)
        self._set_fitted(model, scaler, cfg)
        return self

    def _set_fitted(self, model: SeriesMethod, scaler: Standardizer, cfg: PretrainConfig) -> None:
        self.model_, self.scaler_, self.config_ = model.eval(), scaler, cfg
        assert scaler.mean is not None
        self.n_channels_ = len(scaler.mean)

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "cpu", **params: Any) -> CPCTransformer:
        """The fitted transformer of a ``seqrep pretrain`` run folder (its last checkpoint and
        normaliser), on ``device``; ``params`` set the output options (``per_timestep``,
        ``encoding_window``, ``causal``)."""
        cfg, model, scaler, steps = load_pretrained(run_dir, device)
        estimator = cls._fitted(model, scaler, replace(cfg, device=device), **params)
        estimator.trained_iterations_ = steps
        return estimator

    @classmethod
    def _fitted(
        cls, model: SeriesMethod, scaler: Standardizer, cfg: PretrainConfig, **params: Any
    ) -> CPCTransformer:
        """A fitted transformer of a model trained elsewhere (``seqrep.pretrain``, a run
        folder): its parameters are the config's, where the transformer has them."""
        own = {_PARAMETER.get(f, f): getattr(cfg, f) for f in cfg.__dataclass_fields__}
        names = cls._get_param_names()
        estimator = cls(**{k: v for k, v in own.items() if k in names}, **params)
        estimator._set_fitted(model, scaler, cfg)
        estimator.is_fitted = True  # aeon's flag: fitted without a call to fit
        return estimator

    def _transform(self, X: np.ndarray | list[np.ndarray], y: Any = None) -> np.ndarray:
        """Frozen features of X (see :meth:`encode`), as the transformer's options ask."""
        return self.encode(X)

    @torch.no_grad()
    def encode(
        self,
        X: np.ndarray | list[np.ndarray],
        *,
        per_timestep: bool | None = None,
        encoding_window: int | None = None,
        causal: bool | None = None,
        batch_size: int = 64,
    ) -> np.ndarray:
        """Features of X ([n_cases, n_channels, n_timepoints] or a list of [n_channels, T_i]
        arrays), z-scored with the fitted statistics; the options default to the
        transformer's own.

        Returns:
            ``per_timestep`` False (and ``encoding_window`` 0): one vector per series, [n, d]
            (each series' steps pooled, as ``pool``). Otherwise one vector per time step,
            [n, T', d'] (T' = T for the dilated encoder), NaN past each series' end: with
            ``encoding_window`` > 0 each step's vector pools the last ``encoding_window``
            steps' (a causal sliding window).
            ``causal``: no vector depends on a later step (a bidirectional CPC's backward half
            is then left out).
        """
        per_timestep = self.per_timestep if per_timestep is None else per_timestep
        window = self.encoding_window if encoding_window is None else encoding_window
        causal = self.causal if causal is None else causal
        _check_collection(X, self.n_channels_)
        data = self.scaler_.transform(self._dataset(X))
        if not per_timestep and not window:
            return encode_dataset(self.model_, data, batch_size).astype(np.float64)
        return encode_steps(self.model_, data, window, causal, batch_size).astype(np.float64)

    @classmethod
    def _get_test_params(cls, parameter_set: str = "default") -> dict[str, Any]:
        """A tiny configuration for aeon's estimator checks."""
        return {"iterations": 2, "batch_size": 4, "hidden": 4, "depth": 1, "z_dim": 4, "horizon": 2}


def _check_collection(X: Any, channels: int | None) -> None:
    """One clear line for a collection the estimator cannot read (aeon's own checks fail with
    an IndexError on an empty one, and print a tuple for a channel mismatch)."""
    if len(X) == 0:
        raise ValueError(
            "X holds no series: pass [n_cases >= 1, n_channels, n_timepoints] or a non-empty "
            "list of [n_channels, n_timepoints_i] arrays"
        )
    shapes = {np.shape(x)[0] if np.ndim(x) == 2 else None for x in X}
    if None in shapes:
        raise ValueError(
            "each series in X must be 2-d [n_channels, n_timepoints]: pass X as "
            "[n_cases, n_channels, n_timepoints] or a list of 2-d arrays"
        )
    if channels is not None and shapes != {channels}:
        raise ValueError(
            f"X has {', '.join(str(c) for c in sorted(c for c in shapes if c is not None))} "
            "channels; the transformer was fitted "
            f"on {channels}"
        )
