"""MindArmour's Suppress Privacy API on MindSpore 2.10, with every rule taken from supjax.

``from compat_mindspore import SuppressPrivacyFactory`` replaces
``from mindarmour.privacy.sup_privacy import SuppressPrivacyFactory`` (and so for the other
four names; they are also under ``compat_mindspore.sup_privacy``). Beyond MindArmour 2.0.0:
GRAPH_MODE, any optimizer (suppressed weights stay exactly 0), a ``ValueError`` when a
``grad_idx`` does not point at its parameter, seeded noise, and ``reference_parity=True``
to reproduce MindArmour bit for bit.

>>> from compat_mindspore import MaskLayerDes
>>> MaskLayerDes("conv1.weight", 0, False, True, 10).min_num
10
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
