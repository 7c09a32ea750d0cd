"""Balance after weighting is no worse than before on the bundled demo (issue 14, done-when 3).

Runs the demo's own uplift configuration (``causalrec.cli.demo.DEMO_UPLIFT``) on
``data_samples/text_logs`` with the packaged MiniLM, through the public ``estimate``.
"""

from pathlib import Path

from causalrec.cli.demo import DEMO_UPLIFT
from causalrec.uplift import estimate

LOGS = Path(__file__).resolve().parents[2] / "data_samples" / "text_logs" / "logs.parquet"


def test_demo_balance_after_weighting_no_worse_than_before():
    r = estimate(LOGS, **{**DEMO_UPLIFT, "methods": ("aipw",)}, device="cpu", seed=0)
    bal = r.nuisance["balance"]
    assert len(bal.table) >= 10  # leading components of the user and the item text
    assert bal.max_abs_after <= bal.max_abs_before, bal.table
    assert r.diagnostics["smd_max_after"] == bal.max_abs_after
    assert not any("balance is worse" in w for w in r.warnings), r.warnings
