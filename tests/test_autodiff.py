"""The hand-written JVP / VJP rules of diffdemo/autodiff.py against PyTorch's own, on layers and a whole UNet."""

from __future__ import annotations

import copy

import pytest
import torch

from diffdemo.analysis import relative_error
from diffdemo.analysis.products import exact_autodiff
from diffdemo.autodiff import ConvAD, GroupNormAD, SiLUAD, autodiff_network

FORMATS = [torch.contiguous_format, torch.channels_last]


def _products(f, x, v, u=None):
    """(f(x), J v, J^T u) by torch.func (u: a seeded draw shaped like f(x) when not given)."""
    with exact_autodiff():
        y, jv = torch.func.jvp(f, (x,), (v,))
        if u is None:
            u = torch.randn(y.shape, generator=torch.Generator().manual_seed(7))
        _, pullback = torch.func.vjp(f, x)
        (ju,) = pullback(u)
    return y.detach(), jv.detach(), ju.detach(), u


def _swap(layer, cls):
    twin = copy.deepcopy(layer)
    twin.__class__ = cls
    return twin


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "layer,cls,shape",
    [
        (torch.nn.Conv2d(8, 6, 3, padding=1), ConvAD, (2, 8, 9, 7)),
        (torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), ConvAD, (2, 8, 9, 7)),
        (torch.nn.GroupNorm(4, 8), GroupNormAD, (2, 8, 9, 7)),
        (torch.nn.GroupNorm(2, 8), GroupNormAD, (2, 8, 21)),  # 3-D input, as in diffusers' attention
        (torch.nn.SiLU(), SiLUAD, (2, 8, 9, 7)),
    ],
)
def test_layer_rules_match_torch(layer, cls, shape, fmt):
    """Same forward value bit for bit; J v and J^T u equal torch's to float32 round-off; <J v, u> = <v, J^T u>."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in layer.parameters():  # non-trivial affine weights for group norm
            p.copy_(torch.randn(p.shape, generator=g))
    x, v = (torch.randn(shape, generator=g) for _ in range(2))
    if len(shape) == 4:
        x, v = x.contiguous(memory_format=fmt), v.contiguous(memory_format=fmt)
    y0, jv0, ju0, u = _products(layer, x, v)
    y1, jv1, ju1, _ = _products(_swap(layer, cls), x, v, u)
    assert torch.equal(y0, y1)
    assert relative_error(jv1, jv0) < 1e-5
    assert relative_error(ju1, ju0) < 1e-5
    lhs, rhs = (jv1.double() * u.double()).sum(), (v.double() * ju1.double()).sum()
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-5)


def test_unet_with_the_rules_gives_the_same_values_and_products(tiny_model):
    """The whole tiny UNet: forward identical, JVP / VJP within 1e-5 of torch's, parameters shared, not copied."""
    net = tiny_model.unet
    twin = autodiff_network(net)
    assert all(a is b for a, b in zip(net.parameters(), twin.parameters()))
    assert {type(m) for m in twin.modules()} >= {ConvAD, GroupNormAD, SiLUAD}
    g = torch.Generator().manual_seed(1)
    x, v, u = (torch.randn(2, 3, 16, 16, generator=g) for _ in range(3))
    T = torch.tensor([700, 30])
    for fmt in FORMATS:
        xf, vf = x.contiguous(memory_format=fmt), v.contiguous(memory_format=fmt)
        y0, jv0, ju0, _ = _products(lambda z: net(z, T).sample, xf, vf, u)
        y1, jv1, ju1, _ = _products(lambda z: twin(z, T).sample, xf, vf, u)
        assert torch.equal(y0, y1)
        assert relative_error(jv1, jv0) < 1e-5
        assert relative_error(ju1, ju0) < 1e-5


def test_analysis_uses_the_rules_in_fp32_whatever_the_views_precision(tiny_model, face64):
    """A bf16 view handed to the analysis still gets float32 Jacobians: the same columns as the fp32 model."""
    from diffdemo import analysis as A

    x0 = torch.nn.functional.avg_pool2d(face64, 4)
    x_t = A.state_at(tiny_model, x0, 300, seed=0)
    fp32 = A.jacobian_columns(tiny_model, x_t, 300, (5, 6))
    from_bf16 = A.jacobian_columns(tiny_model.with_precision("bf16"), x_t, 300, (5, 6))
    for kind in fp32:
        assert torch.equal(fp32[kind], from_bf16[kind])
    assert tiny_model.for_autodiff().autodiff and not tiny_model.autodiff


def test_the_traced_jvp_graph_is_reused_across_states_and_timesteps(tiny_model):
    """One trace per input shape (prepare_probe makes the batch-1 one); later states and timesteps reuse it and
    still match torch.func.jvp on the plain network."""
    from diffdemo import analysis as A

    A.prepare_probe(tiny_model)
    keys = [k for k in tiny_model._derived if k[0] == "jvp_graph" and k[1] == (1, 3, 16, 16)]
    assert len(keys) == 1
    graph = tiny_model._derived[keys[0]]
    g = torch.Generator().manual_seed(5)
    for t in (5, 640):
        x = torch.randn(1, 3, 16, 16, generator=g)
        e = A.pixel_basis(x.shape, (4, 11))
        cols = A.jacobian_columns(tiny_model, x, t, (4, 11))
        with exact_autodiff():
            _, ref = torch.func.jvp(lambda z, t=t: tiny_model.score(z, torch.tensor([t])), (x,), (e,))
        assert relative_error(cols["score"], ref[0]) < 1e-5
    assert tiny_model._derived[keys[0]] is graph  # no re-trace
