"""The poster's claims as data, and verdicts computed from measured numbers (never written by hand).

``evaluate_claims`` reads the dict ``reproduce`` writes to metrics.json and returns one row per claim: findings,
verdict and the run's budget. One concept per module, lowest first:

- ``verdicts``: the rules on scipy.stats (``trend``, ``paired``, ``combine``) and the ``Finding`` each returns;
- ``measures``: the stand-ins for Fig. 9's "understandable" singular vectors, and when a vector counts;
- ``poster``: each ``Claim`` as data (figure, statement, what is measured, its rule) and ``CLAIMS``;
- ``report``: the verdict rows, the markdown table, the report's claims section, claims.json and the stored table.

Callers import from here (``from diffdemo.claims import evaluate_claims``).
"""

from diffdemo.claims.measures import VECTOR_GAP, image_correlation, smoothness, vectors_converged
from diffdemo.claims.poster import CLAIMS, POSTER_METHODS, Claim
from diffdemo.claims.report import (
    CLAIMS_NAME,
    SMOKE,
    append_claims_section,
    budget_label,
    claims_markdown,
    evaluate_claims,
    stored_claims_markdown,
    summary_line,
    write_claims_file,
)
from diffdemo.claims.verdicts import (
    AGREES,
    ALPHA,
    DISAGREES,
    INCONCLUSIVE,
    MIN_POINTS,
    MIN_SIDE,
    MIXED,
    NOT_MEASURED,
    RESAMPLES,
    VERDICTS,
    Finding,
    combine,
    paired,
    trend,
)

__all__ = [
    "AGREES",
    "ALPHA",
    "CLAIMS",
    "CLAIMS_NAME",
    "DISAGREES",
    "INCONCLUSIVE",
    "MIN_POINTS",
    "MIN_SIDE",
    "MIXED",
    "NOT_MEASURED",
    "POSTER_METHODS",
    "RESAMPLES",
    "SMOKE",
    "VECTOR_GAP",
    "VERDICTS",
    "Claim",
    "Finding",
    "append_claims_section",
    "budget_label",
    "claims_markdown",
    "combine",
    "evaluate_claims",
    "image_correlation",
    "paired",
    "smoothness",
    "stored_claims_markdown",
    "summary_line",
    "trend",
    "vectors_converged",
    "write_claims_file",
]
