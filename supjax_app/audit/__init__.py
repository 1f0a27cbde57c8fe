"""``supjax audit``: membership-inference privacy audits of training recipes.

* :mod:`supjax_app.audit.accounting` — DP-SGD ε with the ``dp-accounting`` package.

>>> from supjax_app.audit import accounting
>>> accounting.ACCOUNTANTS
('rdp', 'pld')
"""

__all__: list[str] = []
