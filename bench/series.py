"""UCR/UEA benchmark: CPC / triplet / pairwise-contrastive / raw / random encoder, 5 seeds.

The same as `seqrep bench series` (which this calls): every data set that aeon ships x method x
seed, the TS2Vec SVM protocol on frozen features, one default configuration for all data sets.
Writes bench/results/series.json (one row per dataset x method x seed: dataset, method, seed,
accuracy, seconds, ...) and bench/results/series.md (mean ± std beside the published columns).
Rerunning resumes: finished rows are skipped.

    python bench/series.py                        # the full sweep (about 40 min on 2 cores)
    python bench/series.py --methods cpc --seeds 0
"""

import sys

from seqrep.cli import main

if __name__ == "__main__":
    # The committed results are this script's default; `seqrep bench series` writes under runs/.
    given = sys.argv[1:]
    out = (
        []
        if any(a == "--out" or a.startswith("--out=") for a in given)
        else ["--out", "bench/results/series.json"]
    )
    main(["bench", "series", *out, *given])
