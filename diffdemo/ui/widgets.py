"""Layout pieces every tab uses: its lead sentence and folded maths, the Run/Stop row, and the event settings
(light events, estimates, Stop, and the one concurrency group of the heavy, network-running events)."""

from __future__ import annotations

from contextlib import contextmanager

import gradio as gr

from diffdemo.defaults import FEW_STEPS, FULL_QUALITY, SPACING, UI
from diffdemo.ui.common import HEAVY, HEAVY_LIMIT
from diffdemo.ui.texts import LEAD, MATHS


@contextmanager
def tab(title: str, task: str):
    """A tab, opening with its lead sentence and closing with its maths, folded (diffdemo/ui/texts.py): the maths
    sits below the results so that the controls and the result stay above the fold at 1280x800."""
    with gr.Tab(title, id=task) as made:
        gr.Markdown(LEAD[task], elem_classes="lead")
        yield made
        with gr.Accordion("The maths and the words", open=False, elem_classes="advanced"):
            gr.Markdown(MATHS[task])


def slider(name: str, label: str, **kw) -> gr.Slider:
    """The slider of diffdemo/defaults.py's UI table ``name``: its bounds, initial value and step from there; its
    elem_id is the name with a dash unless given (tests read the initial values back by it)."""
    low, high, value, step = UI[name]
    kw.setdefault("elem_id", name.replace(".", "-"))
    return gr.Slider(low, high, value=value, step=step, label=label, **kw)


SPACING_CHOICES = ["uniform", "quadratic", "karras", "spectral", "logsnr"]
FULL_LABEL = f"Full quality ({FULL_QUALITY['steps']} steps, as the poster's figures)"


def spacing_menu(elem_id: str, value: str = SPACING) -> gr.Dropdown:
    """Where the reverse steps go (diffdemo/spacing.py's lists); starts at the few-step default's list."""
    return gr.Dropdown(
        SPACING_CHOICES,
        value=value,
        label="timestep spacing",
        info="where the steps go: uniform stride, quadratic (DDIM), Karras rho=7, spectral (equal h rho(J_s) per "
        "step, from the model's stability profile) or logsnr (the same rule with rho = 1/(1 - abar_t))",
        elem_id=elem_id,
    )


def full_quality_box(elem_id: str, what: str = "", quick: str = f"the quick {FEW_STEPS} steps, {SPACING} list"):
    """One click to the poster's setting (defaults.FULL_QUALITY) and back to the quick defaults (``quick`` says
    which)."""
    return gr.Checkbox(
        False,
        label=FULL_LABEL,
        info=f"{FULL_QUALITY['spacing']} list, ~{FULL_QUALITY['steps'] // FEW_STEPS}x the time{what}; off: {quick}",
        elem_id=elem_id,
    )


def quality(on: bool, quick_steps: int) -> tuple[int, str]:
    """(steps, spacing): the poster's full-quality setting, or the quick default ``quick_steps`` on SPACING."""
    return (FULL_QUALITY["steps"], FULL_QUALITY["spacing"]) if on else (quick_steps, SPACING)


def run_row(run_label: str, prefix: str, eta_below: bool = True):
    """The Run button, its Stop right next to it, and the time estimate under them (or, ``eta_below=False``,
    made unrendered for the caller to ``.render()`` further down)."""
    with gr.Row():
        run = gr.Button(run_label, variant="primary", elem_id=f"{prefix}-run", min_width=120)
        stop = gr.Button("Stop", variant="stop", elem_id=f"{prefix}-stop", min_width=80)
    eta = gr.Markdown(elem_classes="eta", elem_id=f"{prefix}-eta", render=eta_below)
    return run, stop, eta


def picker_changes(ui) -> list:
    """Events after which the working picture is different (the folded preview itself may not be mounted)."""
    return [ui["model_md"].change, ui["image"].change, ui["upload"].change]


EST = {"api_visibility": "private", "concurrency_limit": 4, "show_progress": "hidden"}
LIGHT = {"api_visibility": "private", "concurrency_limit": 4}
STOPPED = {"api_visibility": "private", "queue": False}


def heavy_event() -> dict:
    return {"concurrency_id": HEAVY, "concurrency_limit": HEAVY_LIMIT}
