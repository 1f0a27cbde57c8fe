"""The same five names as ``mindarmour.privacy.sup_privacy``.

>>> from compat_mindspore.sup_privacy import SuppressPrivacyFactory
>>> SuppressPrivacyFactory.__name__
'SuppressPrivacyFactory'
"""

from compat_mindspore.ctrl import SuppressCtrl
from compat_mindspore.factory import SuppressPrivacyFactory
from compat_mindspore.mask_layer import MaskLayerDes
from compat_mindspore.masker import SuppressMasker
from compat_mindspore.model import SuppressModel

__all__ = [
    "MaskLayerDes",
    "SuppressCtrl",
    "SuppressMasker",
    "SuppressModel",
    "SuppressPrivacyFactory",
]
