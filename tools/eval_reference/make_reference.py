"""Reference numbers for medvqa-eval's statistics (exact McNemar test, percentile quantiles).

Run:  pip install -r requirements-stats.txt && python make_reference.py > stats_reference.json
The Rust unit tests in crates/eval/src/compare.rs and summary.rs read stats_reference.json.
"""
import json

import numpy as np
import scipy
import statsmodels
from statsmodels.stats.contingency_tables import mcnemar

# Discordant counts (b = A right / B wrong, c = A wrong / B right), from trivial to large.
PAIRS = [(0, 0), (0, 1), (1, 0), (1, 1), (3, 7), (5, 5), (10, 2), (0, 20), (12, 30),
         (25, 40), (100, 130), (59, 41), (1000, 1100), (4000, 4150)]


def quantile_input(n):
    # Deterministic, unsorted, with ties: the Rust test rebuilds exactly this array.
    return [((i * 37) % 101) / 100.0 for i in range(n)]


def main():
    out = {
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__,
                     "statsmodels": statsmodels.__version__},
        "mcnemar_exact": [],
        "percentile_linear": [],
    }
    for b, c in PAIRS:
        # Concordant cells do not enter the exact test; 17 and 4 show that.
        res = mcnemar([[17, b], [c, 4]], exact=True)
        out["mcnemar_exact"].append({"b": b, "c": c, "pvalue": float(res.pvalue)})
    for n in (1, 2, 5, 100, 1999):
        x = quantile_input(n)
        q = np.percentile(x, [2.5, 50.0, 97.5])  # default method "linear"
        out["percentile_linear"].append({"n": n, "q2_5": q[0], "q50": q[1], "q97_5": q[2]})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
