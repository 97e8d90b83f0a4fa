"""The ZeroGPU shim: spaces.GPU where the ``spaces`` package exists (a Hugging Face Space), a no-op elsewhere."""

import importlib
import sys
import types

from diffdemo import zerogpu


def test_no_spaces_package_leaves_handlers_untouched(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces -> ImportError
    shim = importlib.reload(zerogpu)
    try:

        def handler(x):
            yield x

        assert shim.spaces is None and shim.gpu(handler) is handler and not shim.ZERO_GPU
    finally:
        monkeypatch.undo()
        importlib.reload(zerogpu)


def test_spaces_gpu_wraps_handlers_with_the_duration(monkeypatch):
    calls = []
    fake = types.ModuleType("spaces")

    def GPU(duration=None):
        def wrap(fn):
            calls.append((fn.__name__, duration))
            return lambda *a, **k: ("on gpu", fn(*a, **k))

        return wrap

    fake.GPU = GPU
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("DIFFDEMO_GPU_SECONDS", "90")
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    shim = importlib.reload(zerogpu)
    try:
        wrapped = shim.gpu(lambda x: x + 1)
        assert wrapped(1) == ("on gpu", 2) and calls == [("<lambda>", 90)] and shim.ZERO_GPU
    finally:
        monkeypatch.undo()
        importlib.reload(zerogpu)
