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
    assert lim.public and lim.max_evaluations == 6_000 and lim.time_cap_s == 300


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


def test_client_queue_limit_counts_live_requests_per_client():
    limiter = serving.ClientQueueLimit(2)
    live = {"a1", "a2"}
    key = limiter.client_key(None, {"x-forwarded-for": "203.0.113.9, 10.0.0.1"}, "10.0.0.1")
    assert key == "address:203.0.113.9"
    assert limiter.client_key("abc", {}, "127.0.0.1") == "session:abc"
    for i in ("a1", "a2"):
        assert limiter.admit(key, live.__contains__)
        limiter.add(key, i)
    assert not limiter.admit(key, live.__contains__)
    assert limiter.admit("session:other", live.__contains__)  # another client is not affected
    live.discard("a1")  # one finished: room again
    assert limiter.admit(key, live.__contains__)


def test_limit_queue_refuses_the_extra_request_and_keeps_the_others():
    """limit_queue on a stand-in for gradio's Queue (the same attributes it uses)."""

    class FakeQueue:
        def __init__(self):
            self.event_ids_to_events = {}
            self.pending_event_ids_session = {}
            self.removed = []
            self.n = 0

        async def push(self, body, request, username):
            self.n += 1
            eid = f"e{self.n}"
            self.event_ids_to_events[eid] = SimpleNamespace(concurrency_id=body.cid)
            return True, eid, "success"

        async def remove_from_queue(self, eid):
            self.removed.append(eid)
            self.event_ids_to_events.pop(eid, None)

    q = FakeQueue()
    serving.limit_queue(q, "network", limit=2)
    request = SimpleNamespace(client=SimpleNamespace(host="127.0.0.1"), headers={})

    def push(session, cid="network"):
        return asyncio.run(q.push(SimpleNamespace(session_hash=session, cid=cid), request, None))

    assert push(None)[0] and push(None)[0]
    ok, message, state = push(None)
    assert not ok and state == "queue_full" and "Too many requests" in message and q.removed == ["e3"]
    assert push("browser-tab")[0]  # a second client still gets in
    assert push(None, cid="light")[0]  # light events are not counted


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


def test_time_cap_stops_inside_a_frame_at_the_next_network_evaluation(tiny_model, monkeypatch):
    """A frame that takes long (many evaluations) is cut at the next evaluation past the deadline (a fake clock:
    the first evaluation takes 20 ms of a 10 ms cap)."""
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])  # what check_deadline reads before each evaluation
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
