"""The same five names as ``mindarmour.privacy.sup_privacy`` (a re-export of :mod:`compat_mindspore`).

>>> from compat_mindspore.sup_privacy import SuppressPrivacyFactory
>>> SuppressPrivacyFactory.__name__
'SuppressPrivacyFactory'
"""

from compat_mindspore import *  # noqa: F401,F403
from compat_mindspore import __all__  # noqa: F401
