"""The runs of seqrep's verbs: one module per verb (``seqrep <verb>`` is
``seqrep.loops.<verb>``: ``pretrain``, ``pretrain_states``, ``sac``, ``offline``, ``curl``,
``mi_bench``, ``series_bench``, ``zoo``), each with its config, its preparation (everything
checked before a run folder is touched), its training loop and its report; beside them the
infrastructure they share (``runs``: run folders and checkpoints; ``progress``; ``memory``;
``online``: checkpoints of online runs; ``report``; ``probes``; ``sweep``: Ray)."""
