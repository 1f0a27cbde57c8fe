"""DP-SGD privacy accounting for ``supjax audit``: :mod:`supjax_app.dp.accounting`, re-exported.

The one implementation lives in :mod:`supjax_app.dp.accounting` (shared with
``supjax train --dp``); this module keeps the audit's imports working.

>>> round(dpsgd_epsilon(1.1, 256 / 60000, 60 * 60000 // 256, 1e-5), 2)
2.6
"""

from __future__ import annotations

from supjax_app.dp.accounting import ACCOUNTANTS, PLD_MIN_NOISE, dpsgd_epsilon, noise_multiplier_for_epsilon

__all__ = [
    "ACCOUNTANTS",
    "PLD_MIN_NOISE",
    "dpsgd_epsilon",
    "noise_multiplier_for_epsilon",
]
