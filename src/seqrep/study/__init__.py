"""Representation Matters (Yang & Nachum 2021), reproduced: pretrain a state encoder on offline
trajectories with each objective, then measure what it buys downstream.

A study is a grid of cells ``environment x objective x downstream setting x mode x seed``:

* data (per environment, collected once with the behaviour zoo, kept as D4RL-layout HDF5 in the
  study folder): a large low-quality set (``pretrain_data``, medium-replay-like by default), a
  small expert set (``expert_episodes`` episodes) and the offline-RL set (medium-replay-like);
* pretraining: every objective trains the same StateEncoder for the same steps on the same
  batches; ``none`` is no pretraining (random init, trained end to end downstream);
* ``imitation``: behaviour cloning on the expert episodes, encoder frozen or fine-tuned;
  ``offline``: TD3+BC on the offline set; ``online``: SAC from the environment's reward.

Every finished cell is appended to ``cells.jsonl``; a rerun skips finished cells and recomputes
an interrupted one from its seed, so a killed study resumes to the same table. Scores are
normalised with the zoo's own (random, expert) returns for the v5 tasks.
"""

from seqrep.study.cells import pretrained_encoder_state, run_cell, study_data
from seqrep.study.config import PAPER_SIZED_COMMAND, PROFILES, SETTINGS, StudyConfig, profile_config
from seqrep.study.grid import (
    CELL_FIELDS,
    CellFilter,
    check_cell_filter,
    grid_cells,
    parse_cell_filter,
)
from seqrep.study.report import (
    efficiency_tables,
    headline,
    online_summary,
    representation_diagnostics,
    summarise_study,
    write_study_report,
)
from seqrep.study.run import PreparedStudy, finished_cells, merge_studies, prepare_study, run_study

__all__ = [
    "CELL_FIELDS",
    "PAPER_SIZED_COMMAND",
    "PROFILES",
    "SETTINGS",
    "CellFilter",
    "PreparedStudy",
    "StudyConfig",
    "check_cell_filter",
    "efficiency_tables",
    "finished_cells",
    "grid_cells",
    "headline",
    "merge_studies",
    "online_summary",
    "parse_cell_filter",
    "prepare_study",
    "pretrained_encoder_state",
    "profile_config",
    "representation_diagnostics",
    "run_cell",
    "run_study",
    "study_data",
    "summarise_study",
    "write_study_report",
]
