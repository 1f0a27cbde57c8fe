"""``MaskLayerDes``: which parameter to suppress and with which per-layer options."""

from __future__ import annotations

from compat_mindspore._checks import check_bool, check_instance, check_int, check_number_positive

__all__ = ["MaskLayerDes"]


class MaskLayerDes:
    """Describe one layer whose weights are suppressed (MindArmour's ``MaskLayerDes``).

    Args:
        layer_name (str): matched as a substring of the parameter names of the network, in
            ``networks.get_parameters(expand=True)`` order; the first description not yet
            matched wins, and each description matches exactly one parameter.
        grad_idx (int): position of that parameter in the optimizer's parameter list (the
            gradient tuple). Checked when the controller is linked to a ``SuppressModel``.
        is_add_noise (bool): add ``U(-0.1, 0.1)`` noise to kept weights with ``|w| > 0.5``
            at each suppress operation (no effect on the large-layer path).
        is_lower_clip (bool): pull kept weights with ``|w| <= 0.005`` out to ``+-0.005``
            (no effect on the large-layer path).
        min_num (int): weights that must stay unsuppressed; a negative value means no limit.
        upper_bound (Union[float, int]): largest ``|w|`` kept, used as
            ``max(0.10, upper_bound)`` (no effect on the large-layer path). Default: 1.20.

    Raises:
        TypeError: ``layer_name`` is not a str, ``grad_idx`` or ``min_num`` not an int,
            ``is_add_noise`` or ``is_lower_clip`` not a bool, ``upper_bound`` not a number.
        ValueError: ``grad_idx < 0`` or ``upper_bound <= 0``.

    Unlike MindArmour's, a description is never modified by the controller that uses it,
    so one list can build several controllers.

    Examples:
        >>> from compat_mindspore import MaskLayerDes
        >>> masklayers = []
        >>> masklayers.append(MaskLayerDes("conv1.weight", 0, False, True, 10))
        >>> masklayers[0].upper_bound
        1.2
    """

    def __init__(
        self,
        layer_name: str,
        grad_idx: int,
        is_add_noise: bool,
        is_lower_clip: bool,
        min_num: int,
        upper_bound: float = 1.20,
    ) -> None:
        self.layer_name: str = check_instance("layer_name", layer_name, str)
        grad_idx = check_int("grad_idx", grad_idx)
        if grad_idx < 0:
            raise ValueError(f"grad_idx must not be less than 0, but got {grad_idx}")
        self.grad_idx: int = grad_idx
        self.is_add_noise: bool = check_bool("is_add_noise", is_add_noise)
        self.is_lower_clip: bool = check_bool("is_lower_clip", is_lower_clip)
        self.min_num: int = check_int("min_num", min_num)
        self.upper_bound: float = check_number_positive("upper_bound", upper_bound)

    @property
    def effective_min_num(self) -> int:
        """``min_num``, or ``-1`` (no limit) when it is negative.

        >>> MaskLayerDes("fc1.weight", 2, False, False, -7).effective_min_num
        -1
        """
        return self.min_num if self.min_num >= 0 else -1

    def __repr__(self) -> str:
        return (
            f"MaskLayerDes({self.layer_name!r}, {self.grad_idx}, {self.is_add_noise}, "
            f"{self.is_lower_clip}, {self.min_num}, upper_bound={self.upper_bound})"
        )
