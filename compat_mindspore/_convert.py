"""Moving arrays between MindSpore parameters and numpy / JAX.

``Parameter.asnumpy()`` on CPU returns a view of the parameter's own memory, which the next
optimizer step overwrites; :func:`read_parameter` always copies. :func:`write_parameter`
replaces a parameter's data in place (same shape and dtype), so a compiled GRAPH_MODE
train step keeps using it without recompiling.
"""

from __future__ import annotations

import numpy as np
from mindspore import Parameter, Tensor

__all__ = ["make_buffer", "numpy_dtype", "read_parameter", "write_parameter"]


def numpy_dtype(param: Parameter) -> np.dtype:
    """The numpy dtype of a MindSpore parameter or tensor.

    >>> import numpy as np
    >>> from mindspore import Parameter, Tensor
    >>> numpy_dtype(Parameter(Tensor(np.ones(2, np.float32)), name="p"))
    dtype('float32')
    """
    name = str(param.dtype).lower()
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def read_parameter(param: Parameter | Tensor) -> np.ndarray:
    """A host copy of the parameter's current value (never a view of its memory).

    >>> import numpy as np
    >>> from mindspore import Parameter, Tensor
    >>> read_parameter(Parameter(Tensor(np.arange(3, dtype=np.float32)), name="p")).tolist()
    [0.0, 1.0, 2.0]
    """
    return np.array(param.asnumpy(), copy=True)


def write_parameter(param: Parameter, value: np.ndarray) -> None:
    """Replace the parameter's data with ``value`` (cast to its dtype and shape).

    >>> import numpy as np
    >>> from mindspore import Parameter, Tensor
    >>> p = Parameter(Tensor(np.zeros(2, np.float32)), name="p")
    >>> write_parameter(p, np.array([1.0, 2.0]))
    >>> p.asnumpy().tolist()
    [1.0, 2.0]
    """
    array = np.ascontiguousarray(np.asarray(value, dtype=numpy_dtype(param)).reshape(tuple(param.shape)))
    param.set_data(Tensor(array))


def make_buffer(name: str, like: Parameter, fill: float) -> Parameter:
    """A non-trainable parameter shaped like ``like``, filled with ``fill``.

    >>> import numpy as np
    >>> from mindspore import Parameter, Tensor
    >>> w = Parameter(Tensor(np.zeros((2, 3), np.float32)), name="w")
    >>> b = make_buffer("suppress_mul.w", w, 1.0)
    >>> (b.name, b.requires_grad, b.asnumpy().sum())
    ('suppress_mul.w', False, 6.0)
    """
    array = np.full(tuple(like.shape), fill, dtype=numpy_dtype(like))
    return Parameter(Tensor(array), name=name, requires_grad=False)
