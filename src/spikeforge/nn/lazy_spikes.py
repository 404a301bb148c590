"""Dense spike outputs that are built only when something other than a spikeforge layer
reads them.

A spiking layer's output is a ``[B, T, N]`` float tensor of spikes, but when it feeds
another spikeforge layer (the common ``Sequential(LIF, LI)``) the consumer reads the
sparse spike record and never the dense values: building them costs a ``B·T·N`` array per
step (32 MB and ~12 ms for 32 × 1000 × 256 on a 2-core CPU) for nothing.
:class:`LazySpikes` is a tensor subclass without storage of its own that carries the
shape, dtype, device, autograd history and spike record of the output; any torch
operation on it (``spikes.sum()``, a ``torch.nn.Linear``, indexing, printing,
``.numpy()``, pickling) builds the dense spikes once, caches them and runs on them, so it
behaves as the dense tensor in every respect, gradients included (the dense gradient of
such an operation reaches the producing layer's backward as before).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils._pytree import tree_map

Builder = Callable[[], torch.Tensor]


class LazySpikes(torch.Tensor):
    """A ``[B, T, N]`` spike tensor whose values are built by ``build()`` at first use.

    Create with ``LazySpikes(build, shape, dtype)``; ``build`` returns the dense CPU
    tensor. spikeforge layers read the attached spike record instead (see
    :mod:`spikeforge.nn.records`) and never call ``build``.
    """

    _build: Builder
    _value: torch.Tensor | None

    @staticmethod
    def __new__(cls, build: Builder, shape: tuple[int, ...] | torch.Size,
                dtype: torch.dtype) -> LazySpikes:
        out = torch.Tensor._make_wrapper_subclass(cls, tuple(shape), dtype=dtype,
                                                  device="cpu")
        out._build, out._value = build, None
        return out

    __torch_function__ = torch._C._disabled_torch_function_impl

    def dense(self) -> torch.Tensor:
        """The dense values (built on the first call, then cached)."""
        if self._value is None:
            self._value = self._build()
        return self._value

    @property
    def materialised(self) -> bool:
        """Whether the dense values have been built."""
        return self._value is not None

    def _alias(self) -> LazySpikes:
        """A new wrapper over the same values (what ``detach`` returns); like a detached
        dense tensor it carries no spike record, so no gradient reaches the layer."""
        out = LazySpikes(self.dense, self.shape, self.dtype)  # builds once for both
        out._value = self._value
        return out

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.detach.default or func is torch.ops.aten.alias.default:
            return args[0]._alias()

        def plain(value):
            return value.dense() if isinstance(value, LazySpikes) else value

        return func(*tree_map(plain, args), **tree_map(plain, kwargs or {}))

    # Tensor methods that read storage without going through the dispatcher.
    def numpy(self, *, force: bool = False):
        if self.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        return self.dense().numpy(force=force)

    def __array__(self, dtype=None, copy=None):
        values = self.detach().numpy()
        return values if dtype is None else values.astype(dtype, copy=False)

    def tolist(self):
        return self.dense().tolist()

    def data_ptr(self) -> int:
        return self.dense().data_ptr()

    def untyped_storage(self):
        return self.dense().untyped_storage()

    def __reduce_ex__(self, protocol):
        return self.dense().detach().clone().__reduce_ex__(protocol)

    def __repr__(self, *, tensor_contents=None) -> str:
        return repr(self.dense())

    def __deepcopy__(self, memo):
        return self.dense().detach().clone()


__all__ = ["LazySpikes"]
