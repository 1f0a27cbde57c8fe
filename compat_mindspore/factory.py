"""``SuppressPrivacyFactory``: builds a :class:`~compat_mindspore.ctrl.SuppressCtrl`."""

from __future__ import annotations

from mindspore import nn

from compat_mindspore._checks import check_instance
from compat_mindspore.ctrl import SuppressCtrl

__all__ = ["SuppressPrivacyFactory"]


class SuppressPrivacyFactory:
    """Factory class of SuppressCtrl mechanisms (MindArmour's ``SuppressPrivacyFactory``).

    Examples:
        >>> import mindspore.nn as nn
        >>> from compat_mindspore import MaskLayerDes, SuppressPrivacyFactory
        >>> network = nn.SequentialCell([nn.Dense(10, 10)])
        >>> ctrl = SuppressPrivacyFactory().create(network, [MaskLayerDes("0.weight", 0, False, True, 10)],
        ...                                        end_epoch=10, batch_num=1, start_epoch=3,
        ...                                        mask_times=10, lr=0.05, sparse_end=0.95, seed=0)
        >>> type(ctrl).__name__
        'SuppressCtrl'
    """

    def __init__(self) -> None:
        pass

    @staticmethod
    def create(
        networks: nn.Cell,
        mask_layers: list,
        policy: str = "local_train",
        end_epoch: int = 10,
        batch_num: int = 20,
        start_epoch: int = 3,
        mask_times: int = 1000,
        lr: float = 0.05,
        sparse_end: float = 0.90,
        sparse_start: float = 0.0,
        reference_parity: bool = False,
        seed: int | None = None,
    ) -> SuppressCtrl:
        """Create a :class:`~compat_mindspore.ctrl.SuppressCtrl`.

        Args:
            networks (Cell): the training network; the same as the ``network`` of ``SuppressModel``.
            mask_layers (list): :class:`~compat_mindspore.mask_layer.MaskLayerDes` of the layers to suppress.
            policy (str): training policy; only ``"local_train"``. Default: "local_train".
            end_epoch (int): last epoch of the suppress operations,
                ``0 < start_epoch <= end_epoch <= 100``; the ``epoch`` of ``Model.train``. Default: 10.
            batch_num (int): batches in an epoch (``num_samples / batch_size``). Default: 20.
            start_epoch (int): first epoch of the suppress operations. Default: 3.
            mask_times (int): number of suppress operations. Default: 1000.
            lr (Union[float, int]): learning rate, ``0 < lr <= 0.5``; the ``learning_rate`` of
                ``nn.SGD``. Default: 0.05.
            sparse_end (float): sparsity to reach, ``0.0 <= sparse_start < sparse_end < 1.0``. Default: 0.90.
            sparse_start (Union[float, int]): sparsity to start from. Default: 0.0.
            reference_parity (bool): reproduce MindArmour 2.0.0 bit for bit (its 10000-parameter
                large-layer threshold and its prefix-count tie rule) instead of the documented
                behaviour. Default: False.
            seed (Union[int, None]): seed of the noise's PRNG key; ``None`` draws one. Default: None.

        Returns:
            SuppressCtrl, the controller.

        Raises:
            TypeError: ``policy`` is not a str, or another argument has the wrong type.
            ValueError: ``policy`` is not ``"local_train"``, or another argument is out of range.

        Examples:
            >>> import mindspore.nn as nn
            >>> from compat_mindspore import MaskLayerDes, SuppressPrivacyFactory
            >>> network = nn.SequentialCell([nn.Dense(10, 10)])
            >>> ctrl = SuppressPrivacyFactory.create(network, [MaskLayerDes("0.weight", 0, False, True, 10)],
            ...                                      end_epoch=4, batch_num=10, start_epoch=2,
            ...                                      mask_times=3, reference_parity=True, seed=1)
            >>> (ctrl.mask_all_steps, ctrl.reference_parity)
            (30, True)
        """
        check_instance("policy", policy, str)
        if policy != "local_train":
            raise ValueError(f"Only local training is supported now, but got {policy}.")
        return SuppressCtrl(
            networks, mask_layers, end_epoch, batch_num, start_epoch, mask_times, lr, sparse_end,
            sparse_start, reference_parity=reference_parity, seed=seed,
        )
