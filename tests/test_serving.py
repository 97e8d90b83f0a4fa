"""What a served app allows: canonical model names and a bounded cache, the allow-list, one 'no such model'
message, the work budget, the time cap, the per-client queue limit and the disk bound."""

from __future__ import annotations

import asyncio
import os
import time
from types import SimpleNamespace

import pytest
import torch

from diffdemo import models, serving
from diffdemo.defaults import SPACING
from diffdemo.errors import OverBudget
from diffdemo.models import MODELS_DIR, ModelUnavailable, canonical_name


@pytest.fixture
def public(monkeypatch):
    monkeypatch.setenv("DIFFDEMO_PUBLIC", "1")
    monkeypatch.delenv("DIFFDEMO_ALLOW_LOCAL_MODELS", raising=False)


def test_spellings_of_the_embedded_model_share_one_name():
    spellings = ["faces64", "faces64/", " ./faces64", "./././faces64", "faces64//", str(MODELS_DIR / "faces64")]
    spellings += [str(MODELS_DIR / "faces64" / ".." / "faces64"), "faces64/unet/.."]
    assert {canonical_name(s) for s in spellings} == {"faces64"}


def test_hub_ids_and_folders_are_canonical(tmp_path):
    assert canonical_name("google/ddpm-cifar10-32") == "google/ddpm-cifar10-32"
    (tmp_path / "m").mkdir()
    assert canonical_name(str(tmp_path / "m" / ".." / "m") + "/") == str((tmp_path / "m").resolve())


def test_no_such_model_reads_the_same_whatever_is_on_disk(tmp_path):
    """An existing folder that holds no model and a missing path give one message, naming no path."""
    messages = set()
    for name in ("/root", "/nonexistent", str(tmp_path), "../../../etc", "x" * 5000, "a/b/c", "nope"):
        with pytest.raises(ModelUnavailable) as info:
            models.load_model(name, device="cpu")
        messages.add(str(info.value))
    assert len(messages) == 1
    (message,) = messages
    assert "no such model" in message and "/root" not in message and str(tmp_path) not in message


def test_spellings_and_links_of_one_folder_share_one_cache_entry(monkeypatch, tmp_path, tiny_model_dir):
    monkeypatch.setattr(models, "_cache", type(models._cache)())
    monkeypatch.setattr(models, "MAX_CACHED_MODELS", 2)
    links = []
    for i in range(3):  # three folders: three distinct models as far as the cache can tell
        link = tmp_path / f"copy{i}"
        link.symlink_to(tiny_model_dir, target_is_directory=True)
        links.append(str(tiny_model_dir) if i == 0 else str(link))
    first = models.load_model(links[0], device="cpu")
    # spellings of one folder share one entry
    assert models.load_model(str(tiny_model_dir) + "/./", device="cpu") is first
    assert len(models._cache) == 1
    # symlinks resolve to the same real path: still one entry
    models.load_model(links[1], device="cpu")
    assert len(models._cache) == 1


def test_lru_eviction_order(monkeypatch):
    monkeypatch.setattr(models, "_cache", type(models._cache)())
    monkeypatch.setattr(models, "MAX_CACHED_MODELS", 2)
    monkeypatch.setattr(models, "canonical_name", lambda name: name)
    monkeypatch.setattr(models, "resolve_model_dir", lambda name: MODELS_DIR)
    monkeypatch.setattr(models, "hub_reachable", lambda: True)
    monkeypatch.setattr(models, "_read_unet", lambda loc, local: (None, {}))

    class Stub:
        def __init__(self, unet, config, name, device):
            self.name = name

    monkeypatch.setattr(models, "UNetModel", Stub)
    a = models.load_model("a", device="cpu")
    models.load_model("b", device="cpu")
    assert models.load_model("a", device="cpu") is a  # a is now the most recent
    models.load_model("c", device="cpu")  # evicts b, the least recently used
    assert [k[0] for k in models._cache] == ["a", "c"]


def test_a_slow_load_holds_only_its_own_name(monkeypatch):
    """While one model is being read (a hub download, say), a cached model and another model load at once; a second
    caller for the same name waits for that read and shares its model (one read, not two)."""
    import threading

    monkeypatch.setattr(models, "_cache", type(models._cache)())
    monkeypatch.setattr(models, "canonical_name", lambda name: name)
    monkeypatch.setattr(models, "resolve_model_dir", lambda name: MODELS_DIR)
    release, reading = threading.Event(), threading.Event()
    reads: list[str] = []

    def slow_read_model(canonical, device):
        reads.append(canonical)
        if canonical == "slow":
            reading.set()
            assert release.wait(30)
        return type("Stub", (), {"name": canonical})()

    monkeypatch.setattr(models, "_read_model", slow_read_model)
    cached = models.load_model("cached", device="cpu")
    got: dict[str, list] = {"slow": []}
    slow = [threading.Thread(target=lambda: got["slow"].append(models.load_model("slow", device="cpu"))) for _ in "ab"]
    slow[0].start()
    assert reading.wait(30)
    slow[1].start()
    # the slow read is in progress, its name's lock held: other names are not held up behind it
    assert models.load_model("cached", device="cpu") is cached
    assert models.load_model("other", device="cpu").name == "other"
    assert models.cached_model("cached", device="cpu") is cached
    release.set()
    for thread in slow:
        thread.join(30)
    assert len(got["slow"]) == 2 and got["slow"][0] is got["slow"][1]
    assert sorted(reads) == ["cached", "other", "slow"]  # the second 'slow' caller reused the first read
    assert not models._loading  # no lock left behind


def test_public_deployment_offers_only_the_allow_list(public, monkeypatch, tmp_path, tiny_model_dir):
    assert serving.check_model("./faces64") == "faces64"
    assert serving.check_model("google/ddpm-celebahq-256") == "google/ddpm-celebahq-256"
    refused = set()
    for name in (str(tiny_model_dir), "/root", "/nonexistent", "someone/else", str(tmp_path)):
        with pytest.raises(ModelUnavailable) as info:
            serving.check_model(name)
        refused.add(str(info.value))
    assert len(refused) == 1  # the same message for every refused name
    # the operator's own default model and $DIFFDEMO_ALLOWED_MODELS extend the list
    assert serving.check_model(str(tiny_model_dir), default=str(tiny_model_dir)) == str(tiny_model_dir)
    monkeypatch.setenv("DIFFDEMO_ALLOWED_MODELS", f"someone/else, {tiny_model_dir}")
    assert serving.check_model("someone/else") == "someone/else"
    assert serving.check_model(str(tiny_model_dir)) == str(tiny_model_dir)
    # never local folders on a public deployment, even with the flag
    monkeypatch.setenv("DIFFDEMO_ALLOW_LOCAL_MODELS", "1")
    with pytest.raises(ModelUnavailable):
        serving.check_model(str(tmp_path))


def test_local_deployment_takes_folders_with_the_flag(monkeypatch, tiny_model_dir):
    monkeypatch.delenv("DIFFDEMO_PUBLIC", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("DIFFDEMO_ALLOW_LOCAL_MODELS", raising=False)
    with pytest.raises(ModelUnavailable):
        serving.check_model(str(tiny_model_dir))
    monkeypatch.setenv("DIFFDEMO_ALLOW_LOCAL_MODELS", "1")
    assert serving.check_model(str(tiny_model_dir)) == str(tiny_model_dir)


def test_space_id_means_public(monkeypatch):
    monkeypatch.delenv("DIFFDEMO_PUBLIC", raising=False)
    monkeypatch.setenv("SPACE_ID", "someone/diffdemo")
    lim = serving.limits()
    assert lim.public and lim.max_evaluations == serving.PUBLIC_MAX_EVALUATIONS and lim.time_cap_s == 120


def test_budget_refuses_above_the_cap(monkeypatch):
    monkeypatch.setenv("DIFFDEMO_MAX_EVALUATIONS", "1000")
    assert serving.check_budget(1000) == 1000
    with pytest.raises(OverBudget, match="1,001 network evaluations.*allows 1,000"):
        serving.check_budget(1001)


def test_time_cap_stops_between_frames_and_closes_the_run():
    now = [0.0]
    closed = []

    def frames():
        try:
            for i in range(100):
                now[0] += 1.0  # each frame takes one (fake) second
                yield i
        finally:
            closed.append(True)

    seen = []
    with pytest.raises(serving.TimeCapReached, match="time cap of 3.5 s"):
        for f in serving.capped(frames(), 3.5, clock=lambda: now[0]):
            seen.append(f)
    assert seen == [0, 1, 2, 3] and closed == [True]


def test_client_address_is_the_trusted_hop_never_what_the_client_writes():
    """One trusted proxy (a Space): the last X-Forwarded-For entry, the one the proxy appended; a client's own
    entries further left are ignored. No trusted proxy: the socket's peer, whatever the header says."""
    forged = {"x-forwarded-for": "1.2.3.4, 5.6.7.8, 203.0.113.9"}
    assert serving.client_address(forged, "10.0.0.1", hops=1) == "203.0.113.9"
    assert serving.client_address(forged, "10.0.0.1", hops=2) == "5.6.7.8"  # behind two proxies
    assert serving.client_address(forged, "10.0.0.1", hops=0) == "10.0.0.1"
    assert serving.client_address({}, "10.0.0.1", hops=1) == "10.0.0.1"  # no header: the peer itself

    class Headers:  # starlette's Headers: two X-Forwarded-For lines are one chain, in order
        def getlist(self, name):
            return ["9.9.9.9", "198.51.100.7"] if name == "x-forwarded-for" else []

    assert serving.client_address(Headers(), "10.0.0.1", hops=1) == "198.51.100.7"


def test_trusted_hops_default_to_one_on_a_space_and_zero_elsewhere(monkeypatch):
    monkeypatch.delenv("DIFFDEMO_TRUSTED_PROXY_HOPS", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert serving.limits().trusted_hops == 0
    monkeypatch.setenv("SPACE_ID", "someone/diffdemo")
    assert serving.limits().trusted_hops == 1
    monkeypatch.setenv("DIFFDEMO_TRUSTED_PROXY_HOPS", "2")
    assert serving.limits().trusted_hops == 2


def test_fair_queue_limits_per_address_and_in_evaluations():
    fair = serving.FairQueue(heavy_limit=2, light_limit=3, max_evaluations=5000)
    live = set()

    def add(i, address, heavy=True, evaluations=1000):
        assert fair.refusal(address, heavy, evaluations, live.__contains__) is None
        fair.add(i, address, heavy, evaluations)
        live.add(i)

    add("a1", "A"), add("a2", "A")
    assert "at most 2" in fair.refusal("A", True, 1000, live.__contains__)
    assert fair.refusal("A", False, 0, live.__contains__) is None  # light events have their own count
    add("b1", "B", evaluations=2000)
    # 4,000 queued: one more job of 1,500 would pass the bound of 5,000, from any address
    assert "network evaluations waiting" in fair.refusal("C", True, 1500, live.__contains__)
    assert fair.refusal("C", True, 1000, live.__contains__) is None
    live.discard("a1")  # finished: room again
    assert fair.refusal("A", True, 1000, live.__contains__) is None


def test_round_robin_serves_a_second_address_next_whatever_the_first_has_queued():
    fair = serving.FairQueue(heavy_limit=100, light_limit=100, max_evaluations=10**9)
    queue = [f"a{i}" for i in range(5)] + ["b0", "b1", "c0"]  # arrival order: A's five jobs first
    for i in queue:
        fair.add(i, i[0].upper(), True, 1)
    order = []
    while queue:
        chosen = fair.choose(queue)
        fair.served(chosen)
        queue.remove(chosen)
        order.append(chosen)
    assert order == ["a0", "b0", "c0", "a1", "b1", "a2", "a3", "a4"]


class FakeEventQueue:
    def __init__(self, limit):
        self.queue, self.concurrency_limit, self.current_concurrency = [], limit, 0


class FakeQueue:
    """gradio 6's Queue as far as limit_queue uses it."""

    def __init__(self):
        self.event_ids_to_events = {}
        self.pending_event_ids_session = {}
        self.pending_messages_per_session = {}
        self.event_queue_per_concurrency_id = {"network": FakeEventQueue(1), "light": FakeEventQueue(4)}
        self.n = 0

    async def push(self, body, request, username):
        self.n += 1
        eid = f"e{self.n}"
        session = body.session_hash or eid
        event = SimpleNamespace(
            _id=eid, session_hash=session, fn=SimpleNamespace(batch=False), enqueue_time=time.monotonic()
        )
        self.event_ids_to_events[eid] = event
        self.pending_event_ids_session.setdefault(session, set()).add(eid)
        self.pending_messages_per_session.setdefault(session, asyncio.Queue())
        self.event_queue_per_concurrency_id[body.concurrency_id].queue.append(event)
        return True, eid, "success"

    def get_events(self):
        return None


def _request(peer, forwarded=None):
    return SimpleNamespace(
        client=SimpleNamespace(host=peer), headers={"x-forwarded-for": forwarded} if forwarded else {}
    )


def _read(queue, session):
    """A client reading its session's stream once (as gradio's /queue/data loop does)."""

    async def once():
        messages = queue.pending_messages_per_session[session]
        messages.put_nowait("estimation")
        await messages.get()

    asyncio.run(once())


def test_limit_queue_keys_forged_sessions_and_headers_on_the_real_hop(monkeypatch):
    """A fresh session hash and a made-up first X-Forwarded-For hop per job: still one address, two jobs."""
    monkeypatch.setenv("DIFFDEMO_TRUSTED_PROXY_HOPS", "1")
    monkeypatch.setenv("DIFFDEMO_QUEUE_PER_CLIENT", "2")
    q = FakeQueue()
    serving.limit_queue(q, "network")

    def push(i, real, cid="network"):
        body = SimpleNamespace(session_hash=f"fresh{i}", concurrency_id=cid, fn_index=None)
        return asyncio.run(q.push(body, _request("10.0.0.1", f"198.51.100.{i}, {real}"), None))

    results = [push(i, "203.0.113.5") for i in range(10)]
    assert [ok for ok, _, _ in results] == [True, True] + [False] * 8
    assert results[2][2] == "queue_full" and "at most 2" in results[2][1]
    assert push(99, "203.0.113.6")[0]  # another real address still gets in
    assert push(100, "203.0.113.5", cid="light")[0]  # light events are counted apart


def test_limit_queue_runs_addresses_in_turn_and_drops_jobs_nobody_listens_to(monkeypatch):
    monkeypatch.setenv("DIFFDEMO_QUEUE_PER_CLIENT", "10")
    q = FakeQueue()
    serving.limit_queue(q, "network", grace_s=0.2)

    def push(session, peer):
        body = SimpleNamespace(session_hash=session, concurrency_id="network", fn_index=None)
        return asyncio.run(q.push(body, _request(peer), None))[1]

    a = [push("sa", "10.0.0.1") for _ in range(3)]
    b = push("sb", "10.0.0.2")
    silent = push("silent", "10.0.0.3")  # joined, never opens its stream
    assert q.get_events() is None  # nobody is reading yet: nothing runs
    _read(q, "sa"), _read(q, "sb")
    order = []
    for _ in range(4):
        events, batch, cid = q.get_events()
        order.append(events[0]._id)
    assert order == [a[0], b, a[1], a[2]]
    time.sleep(0.25)
    assert q.get_events() is None  # the silent job is dropped, not run
    assert silent not in q.event_ids_to_events and not q.event_queue_per_concurrency_id["network"].queue


def test_prune_bounds_results_by_size_and_age(tmp_path):
    now = time.time()
    for i in range(5):  # five 1 kB results, one minute apart
        d = tmp_path / f"run{i}"
        d.mkdir()
        (d / "a.png").write_bytes(b"x" * 1000)
        os.utime(d / "a.png", (now - 60 * (5 - i), now - 60 * (5 - i)))
    assert serving.prune([tmp_path], max_bytes=2500, max_age_s=3600, now=now) == 2000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run3", "run4"]  # the newest two kept
    assert serving.prune([tmp_path], max_bytes=10**9, max_age_s=90, now=now) == 1000
    assert [p.name for p in tmp_path.iterdir()] == ["run4"]


def test_prune_takes_the_largest_holders_oldest_files_and_an_upload_only_its_own(tmp_path):
    """Over the bound, the largest holder loses its oldest entries first; an upload (writer=) may only delete the
    uploader's own files, never another user's fresh results, and reports what is still over."""
    now = time.time()

    def entry(name, holder, kb, age_s):
        d = tmp_path / name
        d.mkdir()
        (d / "f").write_bytes(b"x" * kb * 1000)
        os.utime(d / "f", (now - age_s, now - age_s))
        serving.own(d, holder)

    entry("honest-old", "B", 10, 300)  # the oldest entry on disk, an honest user's result
    entry("flood1", "A", 40, 200)
    entry("flood2", "A", 40, 100)
    entry("honest-new", "B", 10, 50)
    # saving: over 60 kB, the largest holder (A, 80 kB) goes first, oldest first, and B keeps everything
    assert serving.prune([tmp_path], max_bytes=60_000, max_age_s=3600, now=now) == 60_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flood2", "honest-new", "honest-old"]
    # an upload by A over the bound: only A's files may go; when they are not enough, B's stay and it is over
    entry("flood3", "A", 40, 10)
    assert serving.prune([tmp_path], max_bytes=30_000, max_age_s=3600, now=now, writer="A") == 20_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["honest-new", "honest-old"]
    entry("flood4", "A", 40, 5)
    assert serving.prune([tmp_path], max_bytes=30_000, max_age_s=3600, now=now, writer="A") == 20_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["honest-new", "honest-old"]


def test_time_cap_stops_inside_a_frame_at_the_next_network_evaluation(tiny_model, monkeypatch):
    """A frame that takes long (many evaluations) is cut at the next evaluation past the deadline (a fake clock:
    the first evaluation takes 20 ms of a 10 ms cap)."""
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])  # what the checkpoint reads before each evaluation
    calls = []

    def frames():
        x = torch.zeros(1, 3, 16, 16)
        while True:
            for _ in range(3):  # three evaluations per frame, the second one past the deadline
                calls.append(1)
                tiny_model.eps(x, 10)
                if len(calls) == 1:
                    now[0] += 0.02
            yield len(calls)

    with pytest.raises(serving.TimeCapReached, match="time cap of 0.01 s"):
        list(serving.capped(frames(), 0.01, clock=lambda: now[0]))
    assert len(calls) == 2  # stopped at the second evaluation of the first frame
    tiny_model.eps(torch.zeros(1, 3, 16, 16), 10)  # outside a capped run nothing is checked


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def public_app(tiny_model_dir, tmp_path_factory):
    """The app in public mode behind one (simulated) trusted proxy, with the tiny model, its uploads and results in
    a folder of its own: (demo, url)."""
    from diffdemo.ui import common

    mp = pytest.MonkeyPatch()
    disk = tmp_path_factory.mktemp("public_app")
    for key, value in {"DIFFDEMO_MODEL": str(tiny_model_dir), "DIFFDEMO_PUBLIC": "1", "DIFFDEMO_STREAM_GRACE_S": "5",
                       "DIFFDEMO_TRUSTED_PROXY_HOPS": "1", "FORWARDED_ALLOW_IPS": "",
                       "GRADIO_TEMP_DIR": str(disk / "gradio")}.items():  # fmt: skip
        mp.setenv(key, value)
    mp.setattr(common, "RESULTS_DIR", disk / "results")
    mp.setattr(common, "VIEWS_DIR", disk / "results" / "views")
    import app
    from diffdemo.ui.server import app_kwargs, serve_queue

    demo = serve_queue(app.build_app())
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=_free_port(),
        prevent_thread_lock=True,
        quiet=True,
        app_kwargs=app_kwargs(),
    )
    try:
        yield demo, url
    finally:
        demo.close()
        mp.undo()


def _call(url, api, args, forwarded):
    import httpx

    body = {"data": args}
    return httpx.post(f"{url}gradio_api/call/{api}", json=body, headers={"x-forwarded-for": forwarded}, timeout=30)


def test_public_app_closes_rest_routes_and_serves_gradio_client_through_the_queue(public_app, tiny_model_dir):
    import httpx
    from gradio_client import Client

    demo, url = public_app
    args = [str(tiny_model_dir), "london_006_neutral", None, 0, 5, 2]
    direct = httpx.post(f"{url}gradio_api/run/denoise", json={"data": args}, timeout=30)
    assert direct.status_code == 404  # api_open=False: no route around the queue
    client = Client(url, verbose=False, headers={"x-forwarded-for": "198.51.100.20"})
    out = client.predict(*args, api_name="/denoise")
    assert out and out[0]


def test_public_app_keys_forged_hops_on_the_proxy_hop_and_drops_unread_jobs(public_app, tiny_model_dir):
    """Ten /call posts, each with a made-up first hop, from one real address: two queue, eight are refused; a
    second real address still gets in; the queued jobs, never read, are dropped within the grace period."""
    demo, url = public_app
    args = [str(tiny_model_dir), "london_006_neutral", None, 0, 5, 2]
    codes = [_call(url, "denoise", args, f"10.9.9.{i}, 203.0.113.5").status_code for i in range(10)]
    assert codes == [200, 200] + [503] * 8
    assert _call(url, "denoise", args, "10.9.9.1, 203.0.113.6").status_code == 200
    time.sleep(6.5)  # the grace period (5 s) and the queue's next look
    assert not any(demo._queue.event_queue_per_concurrency_id["network"].queue)
    assert _call(url, "denoise", args, "203.0.113.5").status_code == 200  # the address has room again


def test_model_field_is_no_oracle_for_what_exists_on_disk(public, monkeypatch):
    """A name is matched as a string first: an existing and a missing path through '..' give the same answer,
    every name not offered the same message, and none of them is ever looked up on disk."""
    from diffdemo.models import MODELS_DIR

    real = str(MODELS_DIR / "faces64")
    assert serving.check_model("/etc/passwd/../.." + real) == serving.check_model("/etc/nope/../.." + real)
    looked_up = []
    monkeypatch.setattr(models, "canonical_name", lambda name: looked_up.append(name) or name)
    messages = set()
    for name in ("/etc/passwd", "/etc/nope", "/root/..", "../../../etc", "x" * 100_000, "a/b/c", {}, None, 3):
        with pytest.raises(ModelUnavailable) as info:
            serving.check_model(name)
        messages.add(str(info.value))
    assert len(messages) == 1 and "etc" not in messages.pop()
    assert not [n for n in looked_up if "etc" in str(n) or "root" in str(n)]


def _peak_rss_of(code: str) -> tuple[int, str]:
    """Peak resident memory (MB) of a fresh interpreter running ``code``, and what it printed."""
    import subprocess
    import sys

    # VmHWM belongs to this interpreter's memory map (ru_maxrss would carry over the parent's peak across exec)
    script = (
        code + "\nprint([int(x.split()[1]) // 1024 for x in open('/proc/self/status') if x.startswith('VmHWM')][0])"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=".")
    *printed, peak = done.stdout.split()
    return int(peak), " ".join(printed)


def test_a_7000px_16_bit_png_decodes_within_a_memory_bound(tmp_path):
    """95 kB on disk, 98 MB once decoded as 16-bit: the old path's float64 copies took 1.3 GB; reduced at decode it
    stays under 350 MB for the whole interpreter (the decoded 16-bit picture, numpy, Pillow)."""
    import numpy as np
    from PIL import Image

    path = tmp_path / "big16.png"
    Image.fromarray(np.full((7000, 7000), 40000, np.uint16)).save(path)
    peak, printed = _peak_rss_of(
        f"from diffdemo.imaging import load_image\na = load_image({str(path)!r}, 64)\nprint(a.shape, int(a.mean()))"
    )
    assert printed == "(64, 64, 3) 156"  # 40000 / 65535 x 255, the same scaling as a small 16-bit picture
    assert peak < 350, peak


def test_a_large_jpeg_is_decoded_at_reduced_scale(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from diffdemo import imaging

    path = tmp_path / "big.jpg"
    Image.fromarray(np.full((3000, 4000, 3), 90, np.uint8)).save(path, quality=90)
    held = []
    hold = imaging.DECODE_BUDGET.hold
    monkeypatch.setattr(imaging.DECODE_BUDGET, "hold", lambda n, **kw: held.append(n) or hold(n, **kw))
    arr = imaging.load_image(path, 64, label="big")
    assert arr.shape == (64, 64, 3) and abs(int(arr.mean()) - 90) <= 2
    assert held and held[0] <= 4 * 500 * 375  # decoded at 1/8 a side (draft), not 48 MB of RGB


def test_decode_budget_bounds_concurrent_decodes_and_their_bytes():
    import threading

    from diffdemo.imaging import BUSY, DecodeBudget, ImageError

    budget = DecodeBudget(slots=2, max_bytes=300)
    release = threading.Event()
    entered = []

    def decode(n):
        with budget.hold(n, timeout=5):
            entered.append(n)
            release.wait(5)

    threads = [threading.Thread(target=decode, args=(100,)) for _ in range(2)]
    for t in threads:
        t.start()
    while len(entered) < 2:
        time.sleep(0.01)
    with pytest.raises(ImageError, match=BUSY):  # a third decode finds both slots taken
        with budget.hold(10, timeout=0.1):
            pass
    release.set()
    for t in threads:
        t.join()
    with pytest.raises(ImageError, match=BUSY):  # 200 + 200 bytes: over the bound together
        with budget.hold(200, timeout=0.01), budget.hold(200, timeout=0.1):
            pass
    assert budget.running == 0 and budget.held == 0


def _folder_bytes(folder) -> int:
    from pathlib import Path

    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def test_public_app_holds_the_disk_bound_at_every_upload_and_keeps_others_results(public_app, monkeypatch):
    """A second user's result (1 MB) is on disk; one address uploads 1 MB files against a 3 MB bound: after every
    upload the disk is within the bound, and the other user's result is still there."""
    import os

    import httpx

    from diffdemo.ui import common

    demo, url = public_app
    monkeypatch.setenv("DIFFDEMO_RESULTS_MAX_MB", "3")
    result = common.RESULTS_DIR / "restore-honest"
    result.mkdir(parents=True, exist_ok=True)
    (result / "result.png").write_bytes(os.urandom(1_000_000))
    serving.own(result, "203.0.113.77")
    roots = [common.RESULTS_DIR, os.environ["GRADIO_TEMP_DIR"]]
    for i in range(8):
        files = {"files": (f"flood{i}.png", os.urandom(1_000_000), "image/png")}
        headers = {"x-forwarded-for": f"10.1.1.{i}, 203.0.113.66"}
        answer = httpx.post(f"{url}gradio_api/upload", files=files, headers=headers, timeout=30)
        assert answer.status_code == 200
        assert sum(_folder_bytes(r) for r in roots) <= 3_000_000
    assert (result / "result.png").exists()


def test_public_app_refuses_wrong_types_in_one_short_line_naming_the_parameter(public_app, tiny_model_dir):
    import json

    import httpx

    demo, url = public_app
    cases = {
        "seed": (
            [str(tiny_model_dir), "london_006_neutral", None, {}, 5, 2, SPACING],
            "Seed must be a number, got dict",
        ),
        "image": ([str(tiny_model_dir), "i" * 1_000_000, None, 0, 5, 2, SPACING], "Unknown image"),
    }
    for i, (args, needle) in enumerate(cases.values()):
        headers = {"x-forwarded-for": f"203.0.113.{100 + i}"}
        with httpx.Client(timeout=60, headers=headers) as http:
            posted = http.post(f"{url}gradio_api/call/denoise", json={"data": args})
            stream = http.get(f"{url}gradio_api/call/denoise/{posted.json()['event_id']}").text
        error = json.loads(stream.split("event: error\ndata:", 1)[1].split("\n", 1)[0])
        message = error.get("error") if isinstance(error, dict) else error
        assert needle in message and len(message) < 300, message


def _counting_check(limit: int, calls: list):
    def check():
        calls.append(1)
        if len(calls) > limit:
            raise serving.TimeCapReached("stopped by the test's check")

    return check


def test_checkpoint_stops_krylov_iterations_on_the_traced_graph_and_reused_pullback(tiny_model):
    """The traced JVP graph and the reused VJP pullback never call model.eps; the Krylov loops still stop at the
    next iteration once the check says so (before: only between frames)."""
    from diffdemo import analysis
    from diffdemo.checkpoint import checkpoint, stop_when

    net = tiny_model.for_autodiff()
    x_t = analysis.state_at(net, torch.zeros(1, 3, 16, 16), 500, seed=0)
    analysis.spectral_radius(net, x_t, 500, iters=2)  # traces the graph outside any check
    for run in (
        lambda: analysis.spectral_radius(net, x_t, 500, iters=6),
        lambda: analysis.top_singular(net, x_t, 500, k=1, iters=6),
    ):
        calls: list = []
        with stop_when(_counting_check(3, calls)), pytest.raises(serving.TimeCapReached, match="test's check"):
            run()
        assert len(calls) == 4  # stopped at the fourth checkpoint, not at the end of the run
    checkpoint()  # outside stop_when nothing is checked


def test_checkpoint_stops_reverse_steps_and_holds_in_the_thread_that_advances_the_run(gaussian_prior):
    """gradio advances a generator from worker threads: capped sets the check around each next() in that thread,
    so a run advanced from several threads is still stopped; another thread's runs are not affected."""
    import threading

    from diffdemo.checkpoint import stop_when
    from diffdemo.samplers import reverse_process

    x = torch.randn(1, *gaussian_prior.sample_shape, generator=torch.Generator().manual_seed(0))
    calls: list = []
    with stop_when(_counting_check(2, calls)), pytest.raises(serving.TimeCapReached):
        list(reverse_process(gaussian_prior, x, [30, 20, 10, 0], seed=0, every=None))
    assert len(calls) == 3  # one checkpoint per reverse step: the third step stopped it

    now = [0.0]
    frames = serving.capped(iter(range(10)), 2.5, clock=lambda: now[0])
    seen, errors = [], []

    def advance():
        try:
            seen.append(next(frames))
            now[0] += 1.0
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    for _ in range(5):
        worker = threading.Thread(target=advance)
        worker.start()
        worker.join()
    assert seen == [0, 1, 2] and isinstance(errors[0], serving.TimeCapReached)

    other: list = []  # a run in another thread does not see this thread's check
    with stop_when(_counting_check(0, [])):
        worker = threading.Thread(target=lambda: other.extend(reverse_process(gaussian_prior, x, [5, 0], every=None)))
        worker.start()
        worker.join()
    assert len(other) == 1
