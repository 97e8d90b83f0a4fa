"""Which models a client may choose here: the allow-list, matched as plain strings before anything touches the
file system (only the operator's names are resolved on disk, never a client's)."""

from __future__ import annotations

import os
import posixpath

from diffdemo.errors import DiffdemoError
from diffdemo.hub import HUB_MODELS
from diffdemo.serving.deployment import limits


def allowed_models(default: str | None = None) -> list[str]:
    """The models a client may choose: the embedded ones, the known hub ids, the app's own default model
    ($DIFFDEMO_MODEL, chosen by whoever started it) and $DIFFDEMO_ALLOWED_MODELS (comma-separated)."""
    return list(dict.fromkeys(_allowed_spellings(default).values()))


def _plain(name) -> str | None:
    """A model name normalised as a string only (never looked up on disk): ``./faces64/``, ``faces64/unet/..`` ->
    ``faces64``; None for what cannot be a name (not text, empty, over 512 characters, control characters)."""
    if not isinstance(name, str):
        return None
    name = name.strip()
    if not name or len(name) > 512 or any(ord(ch) < 32 for ch in name):
        return None
    plain = posixpath.normpath(name)
    return plain[2:] if plain.startswith("./") else plain


def _allowed_spellings(default: str | None = None) -> dict[str, str]:
    """Plain spelling -> canonical name of every model offered here. Only the operator's names (embedded models,
    hub ids, $DIFFDEMO_MODEL, $DIFFDEMO_ALLOWED_MODELS) are resolved on disk, never a client's."""
    from diffdemo.models import MODELS_DIR, available_models, canonical_name

    spellings: dict[str, str] = {}
    for name in available_models():
        for spelling in (name, str(MODELS_DIR / name), str(MODELS_DIR.resolve() / name)):
            spellings[posixpath.normpath(spelling)] = name
    for name in HUB_MODELS:
        spellings[name] = name
    extra = [n.strip() for n in os.environ.get("DIFFDEMO_ALLOWED_MODELS", "").split(",") if n.strip()]
    for name in [default, *extra]:
        plain = _plain(name)
        if plain:
            try:
                canonical = canonical_name(name)
            except DiffdemoError:
                continue
            spellings[plain] = spellings[posixpath.normpath(canonical)] = canonical
    return spellings


def check_model(name: str, default: str | None = None) -> str:
    """The canonical name of a model a client may use here, or the one 'no such model' message.

    The name is matched against the allow-list as a string before anything touches the file system, so the
    answer (and its time) is the same for every name not offered, whatever exists on this server under it.
    Only ``--allow-local-models`` on a local deployment resolves a client's name on disk."""
    from diffdemo.models import canonical_name, no_such_model

    if limits().allow_local_models:
        return canonical_name(name)
    canonical = _allowed_spellings(default).get(_plain(name) or "")
    if canonical is None:
        raise no_such_model()
    return canonical
