"""Convolution and group norm with hand-written JVP / VJP rules, for the analysis's Jacobian products (eqs. 31-35).

PyTorch's forward-mode rule for a convolution also convolves the input with the weight's tangent, a zero tensor
when only the input is perturbed: one wasted convolution per layer. Its group-norm rule expands into ~40 small
ops. Here, with the weights constant, the JVP of a convolution is the same convolution of the tangent without
bias, and group norm's JVP (and VJP, the same map transposed) is

    d y = w * rstd * (d x - mean_g(d x) - x_hat * mean_g(x_hat * d x)),

means taken over each group. ``autodiff_network`` copies a network's module tree with these layers swapped in;
parameters and buffers are shared, not copied, and the forward values are bit-for-bit the same.
"""

from __future__ import annotations

import copy

import torch


class _Conv(torch.autograd.Function):
    """y = conv(x, W) + b with W, b constant: J v = conv(v, W), J^T u = conv_transpose(u, W)."""

    @staticmethod
    def forward(x, module):
        return module._conv_forward(x, module.weight, module.bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.module = inputs[1]
        ctx.save_for_backward(inputs[0])
        # tangents in the primal's memory format: mixed formats slow every elementwise op that follows
        ctx.format = torch.channels_last if _channels_last(inputs[0]) else torch.contiguous_format

    @staticmethod
    def jvp(ctx, x_t, _):
        return ctx.module._conv_forward(x_t.contiguous(memory_format=ctx.format), ctx.module.weight, None)

    @staticmethod
    def backward(ctx, grad):
        m = ctx.module
        (x,) = ctx.saved_tensors
        grad_x, _, _ = torch.ops.aten.convolution_backward(
            grad.contiguous(memory_format=ctx.format),
            x,
            m.weight,
            None,
            m.stride,
            m.padding,
            m.dilation,
            False,
            [0, 0],
            m.groups,
            [True, False, False],
        )
        return grad_x, None


def _channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class _GroupNorm(torch.autograd.Function):
    """y = w * x_hat + b. J_norm = rstd (I - 1 1^T / n - x_hat x_hat^T / n) per group is symmetric, so the JVP
    is w * J_norm v and the VJP is J_norm (w * u): both are per-channel affine maps of v and x,
    A v + B x + c, with A, B, c from per-channel sums (no grouped reshape, any memory format)."""

    @staticmethod
    def forward(x, module):
        n, c = x.shape[:2]
        hw = x[0, 0].numel()
        y, mean, rstd = torch.native_group_norm(x, module.weight, module.bias, n, c, hw, module.num_groups, module.eps)
        return y, mean, rstd

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, module = inputs
        _, mean, rstd = output
        ctx.module = module
        ctx.mark_non_differentiable(mean, rstd)
        ctx.save_for_forward(x, mean, rstd)
        ctx.save_for_backward(x, mean, rstd)

    @staticmethod
    def _apply(ctx, v: torch.Tensor, vjp: bool) -> torch.Tensor:
        x, mean, rstd = ctx.saved_tensors
        m = ctx.module
        n, c = x.shape[:2]
        g = m.num_groups
        count = (c // g) * x[0, 0].numel()
        w = m.weight.view(1, c) if m.weight is not None else torch.ones(1, c, dtype=x.dtype, device=x.device)
        if vjp:
            v = v * w.view(1, c, *([1] * (x.dim() - 2)))
        dims = tuple(range(2, x.dim()))
        sum_v = v.sum(dims).view(n, g, -1).sum(-1)  # (N, G)
        sum_xv = (x * v).sum(dims).view(n, g, -1).sum(-1)
        mean_v = sum_v / count
        coef = rstd * (sum_xv / count - mean * mean_v)  # mean_g(x_hat v)
        # J_norm v = rstd (v - mean_v - (x - mean) rstd coef) = a v + b x + d, per (N, G)
        a, b = rstd, -rstd * rstd * coef
        d = -rstd * mean_v + rstd * rstd * coef * mean
        per_c = (n, g, 1)
        a, b, d = (t.view(per_c).expand(n, g, c // g).reshape(n, c) for t in (a, b, d))
        if not vjp:
            a, b, d = a * w, b * w, d * w
        shape = (n, c, *([1] * (x.dim() - 2)))
        return torch.addcmul(torch.addcmul(d.view(shape), x, b.view(shape)), v, a.view(shape))

    @staticmethod
    def jvp(ctx, x_t, _):
        return _GroupNorm._apply(ctx, x_t, vjp=False), None, None

    @staticmethod
    def backward(ctx, grad, _mean, _rstd):
        return _GroupNorm._apply(ctx, grad, vjp=True), None


class _SiLU(torch.autograd.Function):
    """y = x sigmoid(x): J = diag(s (1 + x (1 - s))), s = sigmoid(x), one fused factor for the JVP and the VJP."""

    @staticmethod
    def forward(x):
        return torch.nn.functional.silu(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_forward(inputs[0])
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def _slope(x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(x)
        return s * (1 + x * (1 - s))

    @staticmethod
    def jvp(ctx, x_t):
        (x,) = ctx.saved_tensors
        return _SiLU._slope(x) * x_t

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return _SiLU._slope(x) * grad


class SiLUAD(torch.nn.SiLU):
    """A SiLU whose input derivatives use ``_SiLU``."""

    def forward(self, x):
        return _SiLU.apply(x)


class ConvAD(torch.nn.Conv2d):
    """A Conv2d whose input derivatives use ``_Conv`` (constant weights)."""

    def forward(self, x):
        return _Conv.apply(x, self)


class GroupNormAD(torch.nn.GroupNorm):
    """A GroupNorm whose input derivatives use ``_GroupNorm``."""

    def forward(self, x):
        return _GroupNorm.apply(x, self)[0]


def autodiff_network(net: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``net`` sharing its parameters and buffers, with Conv2d / GroupNorm layers using the rules above."""
    memo = {id(t): t for t in (*net.parameters(), *net.buffers())}
    out = copy.deepcopy(net, memo)
    for module in out.modules():
        if type(module) is torch.nn.Conv2d:
            module.__class__ = ConvAD
        elif type(module) is torch.nn.GroupNorm:
            module.__class__ = GroupNormAD
        elif type(module) is torch.nn.SiLU:
            module.__class__ = SiLUAD
    return out
