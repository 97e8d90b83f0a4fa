"""The Gradio app end to end: launched in-process on 127.0.0.1 with the tiny random UNet, driven through
gradio_client by its api_names. The outputs are noise (random weights) but shapes, keys and behaviour are real."""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffdemo.cli import main
from tests.conftest import strict_loads

gradio_client = pytest.importorskip("gradio_client")

IMAGE = "london_006_neutral"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    """(client, model name): the app on a free local port, DIFFDEMO_MODEL pointing at the tiny model."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DIFFDEMO_MODEL", str(tiny_model_dir))
    import app
    from diffdemo.ui.server import serve_queue

    demo = app.build_app()
    serve_queue(demo, default_concurrency_limit=2)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield gradio_client.Client(url, verbose=False), str(tiny_model_dir)
    finally:
        demo.close()
        mp.undo()


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def written_record(files) -> dict:
    """The run's results.json, parsed strictly (NaN / Infinity rejected)."""
    (path,) = [f for f in files if str(f).endswith("results.json")]
    return strict_loads(Path(path).read_text())


def truth_picture(size: int = 16) -> np.ndarray:
    from diffdemo.imaging import bundled_images, load_image

    return load_image(bundled_images()[IMAGE], size)


def picture_psnr(picture: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB on [0, 1] of a shown uint8 picture: the oracle for the number the app prints beside it (the
    engine scores the float image; rounding to 8 bits moves PSNR by far less than the tolerance used)."""
    err = picture.astype(np.float64) / 255 - truth.astype(np.float64) / 255
    return float(10 * np.log10(1.0 / np.mean(err**2)))


def heatmaps(plot: dict) -> list[np.ndarray]:
    """The z arrays of the heatmaps in a gr.Plot value (plotly JSON; numpy arrays travel base64-encoded)."""
    fig = json.loads(plot["plot"])
    out = []
    for trace in fig["data"]:
        if trace.get("type") != "heatmap":
            continue
        z = trace["z"]
        if isinstance(z, dict):
            arr = np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"]))
            out.append(arr.reshape(z.get("shape", arr.shape)) if isinstance(z.get("shape"), list) else arr)
        else:
            out.append(np.asarray(z, dtype=float))
    return out


def restore_args(model, **kw):
    args = dict(
        model_name=model,
        image=IMAGE,
        upload=None,
        seed=0,
        operator="gaussian_blur",
        blur_std=2.0,
        kernel_size=13,
        box="center",
        drop=0.5,
        sigma_y=0.05,
        method="dps",
        t0=300,
        zeta=1.0,
        scale=3.0,
        steps=3,
    )
    args.update(kw)
    return list(args.values())


def test_api_names(served):
    client, _ = served
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/denoise", "/sample", "/restore", "/probe", "/spectrum"} <= names


def test_denoise_streams_and_scores(served):
    client, model = served
    job = client.submit(model, IMAGE, None, 0, 100, 6, api_name="/denoise")
    noisy, x_t, x0_hat, table, record, files = job.result(timeout=120)
    assert len(job.outputs()) >= 2  # intermediate frames were streamed before the final one
    for path in (noisy, x_t, x0_hat):
        assert read(path).shape == (16, 16, 3)
    assert record["t"] == 100 and record["steps"] == 6
    # the result's score is that of the picture shown (x0_hat after the last step)
    truth = truth_picture()
    assert record["denoised"]["psnr"] == pytest.approx(picture_psnr(read(x0_hat), truth), abs=0.05)
    # eq. 3 at t = 100: x_t / sqrt(abar_t) = x0 + sigma_t z with sigma_t^2 = (1 - abar_t) / abar_t, so before clipping
    # the noised input's MSE on [0, 1] is sigma_t^2 / 4 (clipping to [0, 1] only lowers it)
    from diffdemo.models import load_model

    abar = load_model(model).schedule.abar(100)
    floor = 10 * np.log10(4 * abar / (1 - abar))
    assert floor - 0.5 < record["noisy"]["psnr"] < floor + 3.0, (record["noisy"]["psnr"], floor)
    assert "PSNR" in table and ("unavailable" in table or record["denoised"]["lpips"] is not None)
    assert written_record(files) == record


def test_sample_grid(served):
    client, model = served
    x_t, x0_hat, status, record, files = client.predict(model, 1, 2, 3, api_name="/sample")
    assert read(x_t).shape == (20, 38, 3)  # imaging.grid: 2 tiles of 16 px with 2 px white gaps
    assert read(x0_hat).shape == (20, 38, 3)
    assert record["n"] == 2 and "Done" in status
    pngs = {Path(str(f)).name: str(f) for f in files if str(f).endswith(".png")}
    originals = [name for name in pngs if not name.endswith("_512px.png")]
    assert len(originals) == 2 and len(pngs) == 4  # each 16 px sample beside its enlarged copy for slides
    for name in originals:
        small = np.asarray(Image.open(pngs[name]))
        big = np.asarray(Image.open(pngs[name[: -len(".png")] + "_512px.png"]))
        assert big.shape == (512, 512, 3)  # 16 px x 32, nearest neighbour: every pixel a 32 x 32 block
        assert np.array_equal(big, np.repeat(np.repeat(small, 32, axis=0), 32, axis=1))
    assert written_record(files) == record


def test_restore_dps_single(served):
    client, model = served
    truth, meas, gallery, table, plot, status, record, files = client.predict(
        *restore_args(model), None, True, 4, api_name="/restore"
    )
    assert read(meas).shape == read(truth).shape == (16, 16, 3)
    # 4 DPS chains averaged: the result with its scores and the chains' spread; a finished run's x_t is its result,
    # so it is not shown twice
    assert [g["caption"].split(":")[0] for g in gallery] == ["DPS", "DPS"]
    assert "dB, SSIM" in gallery[0]["caption"] and "LPIPS" in gallery[0]["caption"]
    assert record["params"]["samples"] == 4 and "spread across the chains" in gallery[1]["caption"]
    assert record["estimated_seconds"] > 0 and record["seconds"] > 0
    # the numbers are the pictures' own: the measurement's and the result's PSNR against the truth shown beside them
    assert np.array_equal(read(truth), truth_picture())
    assert record["psnr_measurement"] == pytest.approx(picture_psnr(read(meas), read(truth)), abs=0.05)
    result_psnr = picture_psnr(read(gallery[0]["image"]), read(truth))
    assert record["results"][0]["psnr"] == pytest.approx(result_psnr, abs=0.05)
    assert f"{record['results'][0]['psnr']:.2f} dB" in gallery[0]["caption"]
    assert table["headers"][:3] == ["method", "PSNR (dB)", "SSIM"]
    assert [row[0] for row in table["data"]] == ["DPS"]
    assert record["sigma_y"] == 0.05 and record["operator"]["operator"] == "gaussian_blur"
    assert record["results"][0]["nfe"] == 3
    assert len(record["traces"]["dps"]["psnr"]) == 3  # every step streamed and scored
    psnr_trace = json.loads(plot["plot"])["data"][0]  # the streamed PSNR per step, as recorded
    assert psnr_trace["name"] == "DPS" and psnr_trace["y"] == pytest.approx(record["traces"]["dps"]["psnr"])
    assert written_record(files) == record


@pytest.mark.parametrize("normalize,samples", [(True, 3), (False, 4), (True, 1)])
def test_restore_row_is_the_clis_row(served, tmp_path, capsys, normalize, samples):
    """The same seeded call through the app and through `python -m diffdemo restore` gives the same row."""
    client, model = served
    record = client.predict(*restore_args(model), None, normalize, samples, api_name="/restore")[6]
    argv = ["restore", "--model", model, "--image", IMAGE, "--seed", "0", "--operator", "gaussian_blur"]
    argv += ["--blur-std", "2", "--kernel-size", "13", "--sigma-y", "0.05", "--method", "dps", "--scale", "3"]
    argv += ["--steps", "3", "--samples", str(samples), "--out", str(tmp_path)]
    assert main(argv + ([] if normalize else ["--raw-dps-step"])) == 0
    line = strict_loads(capsys.readouterr().out.strip().splitlines()[-1])
    (row,) = record["results"]
    assert {k: record["params"][k] for k in line["params"]} == line["params"] and line["params"]["samples"] == samples
    used = row["precision"] if "precision" in row else record["precision"]["dps"]  # per row, or per method
    assert used == line["precision"] and row["nfe"] == line["nfe"] == 3
    for key in ("psnr", "ssim", "lpips"):
        assert row[key] == pytest.approx(line[key], abs=1e-9), key


def test_restore_averages_posterior_samples_on_request(served):
    client, model = served
    one = client.predict(*restore_args(model), None, True, 1, api_name="/restore")
    three = client.predict(*restore_args(model), None, True, 3, api_name="/restore")
    assert one[6]["params"]["samples"] == 1 and three[6]["params"]["samples"] == 3
    assert any("spread across the chains" in g["caption"] for g in three[2])
    assert not any("spread" in g["caption"] for g in one[2])
    # one seeded measurement for both; each result is scored as the picture it shows
    assert np.array_equal(read(one[1]), read(three[1]))
    for out in (one, three):
        shown = picture_psnr(read(out[2][0]["image"]), read(out[0]))
        assert out[6]["results"][0]["psnr"] == pytest.approx(shown, abs=0.05)
    # the spread picture is the chains' per-pixel standard deviation: zero nowhere it is not (3 random chains differ)
    spread = read(next(g["image"] for g in three[2] if "spread across the chains" in g["caption"]))
    assert spread.std() > 0


@pytest.mark.slow
def test_restore_compare_all_inpainting(served):
    client, model = served
    out = client.predict(*restore_args(model, operator="box_inpaint", method="compare"), api_name="/restore")
    record = out[6]
    methods = [r["method"] for r in record["results"]]
    assert set(methods) == {"sdedit", "score_ald", "dps", "tv", "biharmonic"}
    for row in record["results"]:
        assert {"psnr", "ssim", "lpips", "residual", "seconds", "nfe"} <= set(row)
    assert len(out[2]) == 5  # one picture per method in the gallery
    # every method's PSNR is that of its picture against the truth, and its caption prints it
    truth = read(out[0])
    by_caption = {g["caption"]: picture_psnr(read(g["image"]), truth) for g in out[2]}
    for row in record["results"]:
        (shown,) = [p for caption, p in by_caption.items() if f"{row['psnr']:.2f} dB" in caption]
        assert row["psnr"] == pytest.approx(shown, abs=0.05), row["method"]
    # the classical methods spend no network evaluation; the ranking the table shows is by PSNR
    assert {r["method"]: r["nfe"] for r in record["results"] if r["method"] in ("tv", "biharmonic")} == {
        "tv": 0,
        "biharmonic": 0,
    }


def test_probe_maps_are_the_engines_columns(served):
    client, model = served
    first = client.predict(model, IMAGE, None, 0, 200, 3, 4, "denoiser", api_name="/probe")
    second = client.predict(model, IMAGE, None, 0, 200, 12, 9, "denoiser", api_name="/probe")
    view, maps, energy, text, record, files = first
    assert read(view).shape == (256, 256, 3)  # the clickable view: 16 px enlarged 16x (nearest neighbour)
    # each heatmap is the engine's Jacobian column at the clicked pixel, summed over output channels
    from diffdemo import analysis
    from diffdemo.imaging import bundled_images, load_image, to_tensor
    from diffdemo.models import load_model

    net = load_model(model)
    x0 = to_tensor(load_image(bundled_images()[IMAGE], net.size))
    x_t = analysis.state_at(net, x0, 200, 0)
    for pixel, shown in (((3, 4), heatmaps(maps)), ((12, 9), heatmaps(second[1]))):
        probe = analysis.probe(net, x_t, 200, pixel, energy_on="denoiser", exclude_centre=False, compare=False)
        assert len(shown) == len(analysis.KINDS) == 3
        for kind, z in zip(analysis.KINDS, shown, strict=True):
            expected = probe.columns[kind].sum(0).numpy()
            np.testing.assert_allclose(z.reshape(16, 16), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    assert record["pixel"] == [3, 4] and second[4]["pixel"] == [12, 9]
    assert {"r50", "r90", "n_eff", "fd_vs_jvp_rel_err"} <= set(record)
    assert len(record["sweep"]) >= 6 and "r50" in text
    assert len(json.loads(energy["plot"])["data"]) == len(record["sweep"])
    assert written_record(files) == record


def test_spectrum(served):
    client, model = served
    sv, vectors, limit, text, record, files = client.predict(
        model, IMAGE, None, 0, ["50", "400"], 2, 3, api_name="/spectrum"
    )
    assert [r["t"] for r in record["timesteps"]] == [50, 400]
    # a pinned slice of the seeded run: the engine's own spectrum of the same x_t, number for number
    from diffdemo import analysis
    from diffdemo.imaging import to_tensor
    from diffdemo.models import load_model

    net = load_model(model)
    x0 = to_tensor(truth_picture(net.size))
    engine = [analysis.spectrum_sweep(net, x0, [t], k=2, iters=3, seed=0)[0] for t in (50, 400)]  # one t at a time
    for r, e in zip(record["timesteps"], engine, strict=True):
        assert r["singular_values_Js"] == pytest.approx(e.singular_Js.values.tolist(), rel=1e-5)
        assert r["rho_Jf"] == pytest.approx(e.rho_Jf, rel=1e-5) and r["rho_Js"] == pytest.approx(e.eig.rho_Js, rel=1e-5)
        assert abs(complex(*r["eigenvalues_Jf"][0])) == pytest.approx(r["rho_Jf"], rel=1e-9)
        assert r["singular_values_Js"] == sorted(r["singular_values_Js"], reverse=True)
        # the Euler step of the default strided run: h = 1 - abar_t / abar_(t - stride)
        stride = r["stride_used"]
        h = 1 - net.schedule.abar(r["t"]) / net.schedule.abar(r["t"] - stride)
        assert r["h_used"] == pytest.approx(h, rel=1e-6)
    assert "rho(J_f)" in text
    assert [trace["type"] for trace in json.loads(vectors["plot"])["data"]] == ["image"] * 4  # 2 vectors x 2 t
    assert written_record(files) == record


def test_uploads_any_format(served, tmp_path):
    client, model = served
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (300, 200), (255, 0, 0, 128)).save(rgba)
    gray = tmp_path / "gray.jpg"
    Image.new("L", (40, 90), 128).save(gray)
    for path in (rgba, gray):
        noisy, *_ = client.predict(
            model, "(uploaded file)", gradio_client.handle_file(str(path)), 0, 50, 2, api_name="/denoise"
        )
        assert read(noisy).shape == (16, 16, 3)


def test_bad_input_is_an_error_not_a_crash(served, tmp_path):
    """Each bad input gives a clear AppError (a gr.Error in the UI); the app keeps answering afterwards."""
    client, model = served
    up = "(uploaded file)"
    text = tmp_path / "notes.txt"
    text.write_text("certainly not a picture")
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (8, 8)).save(tiny)
    huge = tmp_path / "huge.png"
    Image.new("1", (12000, 9000)).save(huge)  # 108 megapixels in a few kB: a decompression bomb
    cases = {
        "not an image": (
            (model, up, gradio_client.handle_file(str(text)), 0, 100, 2),
            "/denoise",
            "not a readable image",
        ),
        "tiny image": ((model, up, gradio_client.handle_file(str(tiny)), 0, 100, 2), "/denoise", "at least 16 px"),
        "huge image": ((model, up, gradio_client.handle_file(str(huge)), 0, 100, 2), "/denoise", "megapixels"),
        "upload missing": ((model, up, None, 0, 100, 2), "/denoise", "Upload an image first"),
        "no image": ((model, "", None, 0, 200, 3, 3, "denoiser"), "/probe", "Choose an image"),
        "no pixel": ((model, IMAGE, None, 0, 200, None, None, "denoiser"), "/probe", "[Cc]lick a pixel"),
        "pixel outside": ((model, IMAGE, None, 0, 200, 40, 3, "denoiser"), "/probe", "between 0 and 15"),
        "t out of range": ((model, IMAGE, None, 0, 5000, 2), "/denoise", "greater than maximum|between"),
        "too many chains": ([*restore_args(model), None, True, 99], "/restore", "greater than maximum|between"),
        "bad operator": (
            restore_args(model, operator="motion_blur"),
            "/restore",
            "not in the list|Unknown operator|must be one of",
        ),
        "no timesteps": ((model, IMAGE, None, 0, [], 2, 3), "/spectrum", "at least one timestep"),
        # offline: refused in ~2 s without the hub's minute of retries; online: the hub answers 404
        "hub unreachable": (("diffdemo-tests/no-such-model", IMAGE, None, 0, 100, 2), "/denoise", "Model unavailable"),
        "missing folder": ((str(tmp_path / "nothing"), IMAGE, None, 0, 100, 2), "/denoise", "Model unavailable"),
    }
    for name, (args, api, match) in cases.items():
        with pytest.raises(gradio_client.exceptions.AppError, match=match):
            client.predict(*args, api_name=api)
        if name == "hub unreachable":  # a failed model load must not poison the next call
            assert read(client.predict(model, IMAGE, None, 0, 50, 1, api_name="/denoise")[0]).shape == (16, 16, 3)
    noisy, *_ = client.predict(model, IMAGE, None, 0, 50, 1, api_name="/denoise")
    assert read(noisy).shape == (16, 16, 3)


def test_restore_with_drawn_mask(served, tmp_path):
    client, model = served
    layer = np.zeros((256, 256, 4), np.uint8)
    layer[64:160, 32:224] = (255, 0, 0, 255)  # a painted band across the middle of the enlarged canvas
    path = tmp_path / "layer.png"
    Image.fromarray(layer).save(path)
    editor = {"background": None, "layers": [gradio_client.handle_file(str(path))], "composite": None}
    args = restore_args(model, operator="box_inpaint", box="drawn", method="dps", steps=2) + [editor]
    record = client.predict(*args, api_name="/restore")[6]
    assert record["operator"]["operator"] == "drawn_mask"
    assert abs(record["operator"]["hole_fraction"] - (96 * 192) / 256**2) < 0.05
    empty = {"background": None, "layers": [], "composite": None}
    with pytest.raises(gradio_client.exceptions.AppError, match="drawn mask is empty"):
        client.predict(*(restore_args(model, operator="box_inpaint", box="drawn") + [empty]), api_name="/restore")


def test_step_sizes_follow_the_steps_unless_set_by_hand_and_full_quality_is_the_posters():
    import gradio as gr

    from diffdemo.defaults import FULL_QUALITY, SPACING, params_for
    from diffdemo.ui.restore import follow_steps, full_quality, spacing_default, steps_default

    for op in ("gaussian_blur", "box_inpaint"):
        zeta, scale = follow_steps(op, 20, SPACING, [])
        assert (
            scale == params_for("dps", op, steps=20)["scale"] and zeta == params_for("score_ald", op, steps=20)["zeta"]
        )
        zeta, scale = follow_steps(op, 250, "uniform", ["scale"])  # moved by hand: left alone
        assert isinstance(scale, type(gr.skip())) and zeta == params_for("score_ald", op, steps=250)["zeta"]
    steps, spacing, zeta, scale, by_hand = full_quality(True, "dps", "gaussian_blur")
    assert (steps, spacing) == (FULL_QUALITY["steps"], FULL_QUALITY["spacing"]) and by_hand == []
    assert scale == params_for("dps", "gaussian_blur", steps=FULL_QUALITY["steps"])["scale"]
    steps, spacing, _, scale, _ = full_quality(False, "dps", "gaussian_blur")  # back to the quick default
    assert (steps, spacing, scale) == (
        steps_default("dps", "gaussian_blur"),
        params_for("dps", "gaussian_blur")["spacing"],
        params_for("dps", "gaussian_blur")["scale"],
    )
    # the list is the task's own: DPS deblurring's logsnr, the quadratic default elsewhere (and for Compare all, DPS's)
    assert spacing_default("dps", "gaussian_blur") == "logsnr" != SPACING == spacing_default("dps", "box_inpaint")
    assert (
        spacing_default("compare", "gaussian_blur") == "logsnr"
        and spacing_default("score_ald", "gaussian_blur") == SPACING
    )
    assert full_quality(False, "score_ald", "gaussian_blur")[1] == SPACING
    assert (
        params_for("dps", "gaussian_blur", steps=FULL_QUALITY["steps"])["scale"]
        != params_for("dps", "gaussian_blur")["scale"]
    )


def test_restore_sliders_follow_the_operators_tuned_defaults():
    from diffdemo.defaults import params_for
    from diffdemo.ui.restore import task_defaults

    for op in ("gaussian_blur", "box_inpaint", "random_inpaint"):
        assert task_defaults(op) == (
            params_for("sdedit", op)["t0"],
            params_for("score_ald", op)["zeta"],
            params_for("dps", op)["scale"],
        )
    assert task_defaults("gaussian_blur") != task_defaults("box_inpaint")  # deblurring has its own values


def test_samples_slider_follows_method_and_operator():
    from diffdemo.defaults import params_for
    from diffdemo.ui.restore import samples_default

    for op in ("gaussian_blur", "box_inpaint", "random_inpaint"):
        for method in ("sdedit", "score_ald", "dps"):
            assert samples_default(method, op) == params_for(method, op)["samples"]
        assert samples_default("wiener", op) == 1


def test_time_estimate_counts_the_averaged_chains():
    from diffdemo.estimates import evaluations, image_evaluations, run_seconds

    cost = {"forward_s": 0.02, "grad_s": 0.06}
    one, four = evaluations("dps", steps=100), evaluations("dps", steps=100, samples=4)
    assert run_seconds(cost, **four) == pytest.approx(4 * run_seconds(cost, **one)) == pytest.approx(24.0)
    assert (image_evaluations(one), image_evaluations(four)) == (100, 400)
    # a measured batch slope: each further chain adds half an image's cost -> 4 chains cost 2.5x one
    sloped = dict(cost, batch_slope=0.5)
    assert run_seconds(sloped, **four) == pytest.approx(2.5 * run_seconds(sloped, **one))
    assert evaluations("sdedit", steps=150, t0=100, samples=2) == {"forwards": 101, "batch": 2}


class _TimedModel:
    """A stand-in network whose evaluation takes a known 20 ms + 10 ms per image (so batch 4 = 2x batch 1) on a
    fake clock that only its evaluations advance: the timing is exact, whatever else the machine is doing."""

    sample_shape, device, size, name, n_params = (3, 4, 4), "cpu", 4, "timed", None
    schedule = type("Schedule", (), {"T": 1000})()

    def __init__(self):
        self.now = 0.0

    def eps(self, x, t):
        self.now += 0.02 + 0.01 * len(x)
        return x

    def x0_hat(self, x, t):
        return self.eps(x, t) * 1.0


def test_measured_cost_recovers_a_known_batch_slope(monkeypatch):
    from diffdemo.estimates import measure_cost

    model = _TimedModel()
    monkeypatch.setattr(time, "perf_counter", lambda: model.now)
    cost = measure_cost(model)
    assert cost["forward_s"] == pytest.approx(0.03, abs=1e-12)
    assert cost["grad_s"] == pytest.approx(0.03, abs=1e-12)
    assert cost["batch_slope"] == pytest.approx(1 / 3, abs=1e-12)  # (0.06 / 0.03 - 1) / 3


# --- hardening for a public deployment (diffdemo/serving/, diffdemo/validation.py) ------------------------
def call_raw(url: str, api: str, args: list) -> str:
    """POST /gradio_api/call/<api> with a JSON body written as is (NaN and Infinity included, as any HTTP client
    may send them), then read its event stream; returns the stream's text."""
    import httpx

    body = '{"data": [' + ", ".join(json.dumps(a) for a in args) + "]}"
    base = url.rstrip("/") + "/gradio_api/call/" + api
    with httpx.Client(timeout=60) as http:
        event_id = http.post(base, content=body, headers={"content-type": "application/json"}).json()["event_id"]
        return http.get(f"{base}/{event_id}").text


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"scale": float("nan")}, "finite"),
        ({"scale": float("inf")}, "finite|greater than maximum"),  # gradio's slider bound or ours
        ({"zeta": float("-inf")}, "finite|less than minimum"),
        ({"sigma_y": float("nan")}, "finite"),
        ({"scale": -1.0}, "between|less than minimum"),
        ({"seed": -1}, "between|less than minimum"),
        ({"blur_std": 0.0}, "between|less than minimum"),
        ({"steps": 2.5}, "whole number"),
        ({"seed": float("nan")}, "finite"),
        ({"steps": float("nan")}, "finite"),
        ({"samples": float("inf")}, "finite|greater than maximum"),
    ],
)
def test_api_refuses_odd_parameters_before_any_work(served, change, needle):
    client, model = served
    samples = change.pop("samples", 1)
    text = call_raw(client.src, "restore", restore_args(model, **change) + [None, True, samples, "auto", "uniform"])
    assert "event: error" in text and re.search(needle, text), text
    assert "event: complete" not in text


def test_api_no_such_model_is_one_message_without_a_path(served):
    client, _ = served
    messages = []
    for name in ("/root", "/nonexistent", "/tmp", "../../../etc"):
        with pytest.raises(gradio_client.exceptions.AppError) as info:
            client.predict(name, IMAGE, None, 0, 50, 2, api_name="/denoise")
        messages.append(str(info.value))
    assert len(set(messages)) == 1 and "no such model" in messages[0] and "/root" not in messages[0]


def test_api_budget_and_time_cap(served, monkeypatch):
    client, model = served
    monkeypatch.setenv("DIFFDEMO_MAX_EVALUATIONS", "40")
    with pytest.raises(gradio_client.exceptions.AppError, match="needs 48 network evaluations.*allows 40"):
        client.predict(*restore_args(model, steps=12, method="dps"), None, True, 4, api_name="/restore")
    monkeypatch.setenv("DIFFDEMO_MAX_EVALUATIONS", "100000")
    monkeypatch.setenv("DIFFDEMO_TIME_CAP_S", "0")  # stopped after its first frame
    with pytest.raises(gradio_client.exceptions.AppError, match="time cap of 0 s"):
        client.predict(model, IMAGE, None, 0, 50, 20, api_name="/denoise")
    monkeypatch.delenv("DIFFDEMO_TIME_CAP_S")
    assert read(client.predict(model, IMAGE, None, 0, 50, 2, api_name="/denoise")[0]).shape == (16, 16, 3)


def test_mask_layer_bomb_is_refused_with_one_message(served, tmp_path):
    from tests.test_imaging_modes import bomb_png

    client, model = served
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png(9999))
    editor = {"background": None, "layers": [gradio_client.handle_file(str(bomb))], "composite": None}
    args = restore_args(model, operator="box_inpaint", box="drawn", steps=2) + [editor]
    with pytest.raises(gradio_client.exceptions.AppError, match="a mask layer is 9999x9999: more than 4 megapixels"):
        client.predict(*args, api_name="/restore")


def test_restore_rows_match_the_cli(served, tmp_path):
    """The app's /restore and ``python -m diffdemo restore`` take one engine path (diffdemo.experiments): the same
    seeded call gives the same result row."""
    from diffdemo import cli

    client, model = served
    record = client.predict(*restore_args(model), None, True, 1, "fp32", "uniform", api_name="/restore")[6]
    argv = ["restore", "--model", model, "--image", IMAGE, "--method", "dps", "--operator", "gaussian_blur",
            "--blur-std", "2.0", "--kernel-size", "13", "--sigma-y", "0.05", "--scale", "3.0", "--steps", "3",
            "--samples", "1", "--seed", "0", "--precision", "fp32", "--spacing", "uniform",
            "--out", str(tmp_path)]  # fmt: skip
    assert cli.main(argv) == 0
    cli_row = json.loads((tmp_path / "metrics.json").read_text())
    (app_row,) = record["results"]
    assert app_row["method"] == cli_row["method"] == "dps"
    for key in ("psnr", "ssim", "lpips", "residual", "nfe", "precision", "spacing"):
        assert app_row[key] == cli_row[key], key
    assert record["psnr_measurement"] == cli_row["psnr_measurement"]


def test_psnr_curve_is_the_engines_figure_1(served):
    """The Denoise tab's PSNR-vs-t curve plots diffdemo.experiments.psnr_lpips_vs_t (the noisy input scored as
    x_t / sqrt(abar_t)), the one definition reproduce uses too."""
    from diffdemo.experiments import log_timesteps, psnr_lpips_vs_t
    from diffdemo.imaging import bundled_images, load_image, to_tensor
    from diffdemo.models import load_model

    client, model = served
    plot, strip = client.predict(model, IMAGE, None, 0, 3, 3, api_name="/psnr_vs_t")
    noisy, denoised = (trace_values(t["y"]) for t in json.loads(plot["plot"])["data"][:2])
    net = load_model(model)
    x0 = to_tensor(load_image(bundled_images()[IMAGE], net.size))
    rows = list(psnr_lpips_vs_t(net, x0, log_timesteps(net.schedule.T, 3), steps=3, seed=0))
    assert np.allclose(noisy, [r["psnr_noisy"] for r in rows]) and np.allclose(
        denoised, [r["psnr_denoised"] for r in rows]
    )
    assert strip.count("<figure") == 1 + len(rows)  # the clean image and one denoised picture per t


def trace_values(y) -> np.ndarray:
    """A plotly trace's values (numpy arrays travel base64-encoded)."""
    if isinstance(y, dict):
        return np.frombuffer(base64.b64decode(y["bdata"]), dtype=np.dtype(y["dtype"]))
    return np.asarray(y, dtype=float)


LANDING = ("denoise", "curve", "generate", "restore", "sensitivity", "spectrum")


@pytest.mark.slow
def test_landing_views_are_each_tabs_first_demo_run_by_its_own_handler(tiny_model_dir, monkeypatch):
    """At start-up each tab's first demo runs once through its own handler with the values its controls start at,
    labelled as precomputed, its pictures kept outside the pruned results folder; it waits while a user runs."""
    import threading

    monkeypatch.setenv("DIFFDEMO_MODEL", str(tiny_model_dir))
    import app
    from diffdemo.ui import common, landing
    from diffdemo.ui.restore import run_restore

    landing.reset()
    try:
        app.build_app()
        monkeypatch.setattr(common, "_running", [1])  # a user's run is going on: the landing views wait
        worker = threading.Thread(target=landing.prepare, daemon=True)
        worker.start()
        time.sleep(1.0)
        assert not any(landing.ready(name) for name in LANDING)
        common._running[0] = 0
        worker.join(timeout=600)
        assert not worker.is_alive()
        for name in LANDING:
            assert landing.ready(name), name
            spec = landing._specs[name]
            shown = landing._results[(str(tiny_model_dir), name)]
            assert "Precomputed example with the defaults" in shown[spec.status], name
            assert f"press {spec.run_label} to run it live" in shown[spec.status], name
        denoised = landing._results[(str(tiny_model_dir), "denoise")][1]
        assert denoised.startswith(str(landing.LANDING_DIR)) and Path(denoised).is_file()
        # the same request as pressing Restore at once: the same numbers
        spec = landing._specs["restore"]
        *_, live_record, _ = list(run_restore(*spec.args))[-1]
        kept = landing._results[(str(tiny_model_dir), "restore")][6]
        assert [r["psnr"] for r in kept["results"]] == [r["psnr"] for r in live_record["results"]]
        assert kept["params"] == live_record["params"]
    finally:
        landing.reset()


def test_compare_all_runs_each_method_at_its_own_chains(served):
    """Compare all: each diffusion method at its own tuned number of chains (DPS's 4 for deblurring is DPS's
    alone), said in the record; the line under Run names what it runs."""
    from diffdemo.defaults import params_for
    from diffdemo.ui.restore import compare_plan

    client, model = served
    args = [model, "london_006_neutral", None, 0, "gaussian_blur", 1.0, 5, "center", 0.5, 0.05, "compare"]
    out = client.predict(*args, 20, 1.0, 1.0, 4, None, True, 1, api_name="/restore")
    record = out[6]
    own = {m: params_for(m, "gaussian_blur").get("samples", 1) for m in ("sdedit", "score_ald", "dps")}
    assert record["chains"] == own  # each its own (not DPS's for all)
    plan = compare_plan("gaussian_blur", 4, 20)
    chains = f"{own['dps']} chain" + ("s" if own["dps"] > 1 else "")
    assert f"DPS (4 steps, {chains})" in plan and "SDEdit (from t0 = 20, 4 steps, 1 chain)" in plan
    assert "image evaluations" in plan and "Wiener" in plan
