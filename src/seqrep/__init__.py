"""seqrep: contrastive representation learning on sequential data and for decision making.

Layers, bottom to top (a module only imports from layers below it):

* ``losses``, ``critics``, ``mi`` - pure tensor math (InfoNCE, margin losses, MI bounds);
* ``nets`` - encoders, MLPs, :class:`~seqrep.nets.MomentumEncoder`;
* ``runs``, ``mi_bench`` - run folders, progress, training/evaluation loops;
* ``cli`` - the ``seqrep`` command.
"""

from seqrep.losses import (
    batch_contrastive_margin,
    batch_triplet,
    contrastive_margin,
    info_nce,
    info_nce_bound,
    info_nce_result,
    triplet_margin,
)

__version__ = "0.1.0"

__all__ = [
    "batch_contrastive_margin",
    "batch_triplet",
    "contrastive_margin",
    "info_nce",
    "info_nce_bound",
    "info_nce_result",
    "triplet_margin",
]
