"""seqrep: contrastive representation learning on sequential data and for decision making.

Layers, top to bottom (a module imports only from its own level or below):

<!-- layers: generated from tests/test_layers.py -->
| level | modules | what |
|---|---|---|
| 9 interface | `seqrep.cli`, `seqrep.__main__`, `seqrep` | the `seqrep` command, `python -m seqrep`, and the package's public names |
| 8 study | `seqrep.study` | the Representation Matters grid: config, grid, cells, run, report |
| 7 over the verbs | `seqrep.loops.api`, `seqrep.loops.series_bench`, `seqrep.loops.transform`, `seqrep.loops.encode`, `seqrep.loops.collect` | the Python API (every verb as a function, seqrep.load), the UCR/UEA benchmark, the scikit-learn transformer, encode, collect |
| 6 verbs | `seqrep.loops.pretrain`, `seqrep.loops.pretrain_states`, `seqrep.loops.sac`, `seqrep.loops.offline`, `seqrep.loops.curl`, `seqrep.loops.mi_bench`, `seqrep.loops.zoo` | one module per verb: its config, preparation, training loop and report |
| 5 run infrastructure | `seqrep.loops`, `seqrep.loops.runs`, `seqrep.loops.tensorboard_log`, `seqrep.loops.progress`, `seqrep.loops.memory`, `seqrep.loops.online`, `seqrep.loops.report`, `seqrep.loops.probes`, `seqrep.loops.sweep` | run folders and checkpoints, TensorBoard, progress bars, memory tuning, online checkpoints, report pieces, probes, Ray |
| 4 models | `seqrep.methods`, `seqrep.rl` | what is trained: representation methods registered by name; agents, environments, replay, collection |
| 3 nets | `seqrep.nets` | encoders for signals, states and pixels; the momentum (EMA) copy |
| 2 math | `seqrep.losses`, `seqrep.critics`, `seqrep.mi` | pure tensor math: InfoNCE and the margin losses, scoring functions, MI bounds |
| 1 core | `seqrep.options`, `seqrep.devices`, `seqrep.distributed` | option checks of every config, device choice, torch.distributed helpers |
| 0 data | `seqrep.data` | adapters to the ecosystem's formats, returning plain arrays: UCR/UEA series, files, trajectories (Minari, D4RL HDF5); imports nothing of seqrep |
<!-- /layers -->
"""

from typing import Any

from seqrep.losses import (
    batch_contrastive_margin,
    batch_triplet,
    contrastive_margin,
    info_nce,
    info_nce_bound,
    info_nce_result,
    triplet_margin,
)

__version__ = "0.2.0"

# The Python API, imported on first use: `import seqrep` (and `import seqrep.losses`) needs
# torch and numpy alone; the verbs need their extras (pip install 'seqrep[all]').
_LAZY = {
    "load": "seqrep.loops.api",
    "pretrain": "seqrep.loops.api",
    "pretrain_states": "seqrep.loops.api",
    "sac": "seqrep.loops.api",
    "bc": "seqrep.loops.api",
    "offline_rl": "seqrep.loops.api",
    "curl": "seqrep.loops.api",
    "mi_bench": "seqrep.loops.api",
    "CPCTransformer": "seqrep.loops.transform",
    "Policy": "seqrep.rl.policy",
    "PretrainConfig": "seqrep.loops.pretrain",
    "StatePretrainConfig": "seqrep.loops.pretrain_states",
    "SACRunConfig": "seqrep.loops.sac",
    "OfflineRunConfig": "seqrep.loops.offline",
    "PixelRunConfig": "seqrep.loops.curl",
    "MIBenchConfig": "seqrep.loops.mi_bench",
}

__all__ = [
    "CPCTransformer",
    "MIBenchConfig",
    "OfflineRunConfig",
    "PixelRunConfig",
    "Policy",
    "PretrainConfig",
    "SACRunConfig",
    "StatePretrainConfig",
    "batch_contrastive_margin",
    "batch_triplet",
    "bc",
    "contrastive_margin",
    "curl",
    "info_nce",
    "info_nce_bound",
    "info_nce_result",
    "load",
    "mi_bench",
    "offline_rl",
    "pretrain",
    "pretrain_states",
    "sac",
    "triplet_margin",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seqrep' has no attribute {name!r}")
