"""The registry fails closed, against a real `mlflow server` behind a proxy that fails one call.

Every REST call a registration makes is failed in turn (403, 503, or applied and then never
answered): the registration raises naming the registry, `champion` stays where it was, and every
alias move that reached the server is undone. Several registrations at once, one of them working
past the promotion lock's stale limit, are inside the lock one at a time and leave the best
version champion.
"""

from __future__ import annotations

import multiprocessing

import pytest
from mlflow import MlflowClient

from lifecycle.registry.errors import RegistrationError
from lifecycle.registry.policy import alias_version
from tests.faulty_registry import (
    Fault,
    FaultyRegistry,
    register,
    register_in_process,
    trained_models,
)

pytestmark = pytest.mark.integration

NAME = "ames-faults"
# Failed in all three ways (see `plan`).
KEY_KINDS = (
    "POST model-versions/create",
    "GET registered-models/alias champion",
    "GET registered-models/alias challenger",
    "POST registered-models/alias challenger",
    "POST registered-models/alias champion",
    "POST model-versions/set-tag",
    "POST registered-models/create (lock)",
    "GET registered-models/get (lock)",
    "DELETE registered-models/delete (lock)",
)
FAULTS = ("403", "503", "timeout")


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("faulty-registry")
    with FaultyRegistry(workdir) as running, pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        patch.setenv("MLFLOW_TRACKING_URI", running.url)
        # One request per call (a 503 is not retried) and a short wait for an answer.
        patch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        patch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "4")
        patch.setenv("OMP_NUM_THREADS", "1")
        running.proxy.hang_seconds = 5.0
        yield running


@pytest.fixture(scope="module")
def models():
    """alpha 10 fits Ames well; alpha 1e5 all but ignores the features."""
    config, train, test, (good, bad) = trained_models([10.0, 1e5])
    return config, train, test, good, bad


def state(client, name=NAME) -> tuple[dict, list[str]]:
    model = client.get_registered_model(name)
    versions = sorted(str(v.version) for v in client.search_model_versions(f"name='{name}'"))
    return {alias: str(version) for alias, version in model.aliases.items()}, versions


def locks(client) -> list[str]:
    return [m.name for m in client.search_registered_models("name LIKE '%promotion-lock%'")]


def plan(calls) -> list[Fault]:
    """The first key call of each kind in all three ways; any later one, and the first call of every
    other registry kind and of the run's logging, in one way, in turn."""
    faults, seen = [], set()
    for index, call in enumerate(calls, 1):
        registry_call = call.endpoint.startswith(("registered-models/", "model-versions/"))
        if call.kind in KEY_KINDS and call.kind not in seen:
            faults += [Fault(index, kind) for kind in FAULTS]
        elif call.kind in KEY_KINDS or (call.kind not in seen and (registry_call or not seen)):
            faults.append(Fault(index, FAULTS[len(faults) % 3]))
        seen.add(call.kind)
    return faults


def test_absent_alias_and_model_over_rest_read_as_none(faulty):
    client = MlflowClient(faulty.server.url)
    client.create_registered_model("ames-absent")
    assert alias_version(client, "ames-absent", "champion") is None  # 400 INVALID_PARAMETER_VALUE
    assert alias_version(client, "ames-nothing", "champion") is None  # 404 RESOURCE_DOES_NOT_EXIST


def test_every_call_of_a_registration_failing_leaves_champion_as_it_was(faulty, models):
    config, train, test, good, bad = models
    direct = MlflowClient(faulty.server.url)
    register(bad, config, train, test, NAME)  # v1, champion
    faulty.proxy.reset()
    register(good, config, train, test, NAME)  # the calls of a registration that promotes
    calls = faulty.proxy.calls
    assert {"POST registered-models/alias champion", "DELETE registered-models/delete (lock)"} <= {
        c.kind for c in calls
    }
    # Back to v1 as champion: each faulty registration below would promote if it went through.
    direct.delete_model_version(NAME, "2")
    for alias in ("champion", "challenger"):
        direct.set_registered_model_alias(NAME, alias, "1")
    before = state(direct)
    faults = plan(calls)
    assert {calls[f.index - 1].kind for f in faults} >= set(KEY_KINDS)

    outcomes = []
    for fault in faults:
        faulty.proxy.reset(fault)
        with pytest.raises(RegistrationError) as raised:
            register(good, config, train, test, NAME)
        faulted = faulty.proxy.faulted
        assert faulted is not None and faulted.kind == calls[fault.index - 1].kind, (fault, faulted)
        message = str(raised.value)
        assert f"MLflow registry {faulty.url}" in message, message
        after = state(direct)
        assert after == before, (fault, faulted.kind, message, after)
        assert locks(direct) == [], (fault, faulted.kind)
        # Every alias move that reached the server went to this registration's version and back.
        moves = [(m.method, m.alias, m.version) for m in faulty.proxy.alias_moves]
        assert all(method == "POST" for method, _, _ in moves), moves  # both aliases existed: none deleted
        for alias in ("champion", "challenger"):
            of_alias = [version for _, a, version in moves if a == alias]
            there, back = of_alias[0::2], of_alias[1::2]
            assert len(there) == len(back) and "1" not in there and set(back) <= {"1"}, (fault, faulted.kind, moves)
        outcomes.append((fault.index, fault.kind, faulted.kind, len(moves)))
    assert any(moves for *_, moves in outcomes), "no fault came after an alias moved"


def test_a_refused_champion_look_up_never_promotes_a_worse_model(faulty, models):
    config, train, test, good, bad = models
    name = "ames-refused"
    direct = MlflowClient(faulty.server.url)
    faulty.proxy.reset()
    register(good, config, train, test, name)
    calls = len(faulty.proxy.calls)
    faulty.proxy.reset()
    register(bad, config, train, test, name)  # v2, challenger only
    lookup = next(i for i, c in enumerate(faulty.proxy.calls, 1) if c.kind == "GET registered-models/alias champion")
    assert calls > lookup
    faulty.proxy.reset(Fault(lookup, "403"))
    with pytest.raises(RegistrationError, match="403"):
        register(bad, config, train, test, name)
    assert state(direct, name) == ({"champion": "1", "challenger": "2"}, ["1", "2"])


def test_concurrent_registrations_hold_the_lock_one_at_a_time_and_the_best_wins(faulty):
    name = "ames-concurrent-lock"
    stale, heartbeat, slow = 2.0, 0.3, 5.0
    context = multiprocessing.get_context("spawn")
    alphas = [1000.0, 1e5, 100.0, 10.0]  # the first works 2.5 stale limits under the lock
    start, inside, arrived, results = (
        context.Barrier(len(alphas)),
        context.Event(),
        context.Semaphore(0),
        context.Queue(),
    )
    faulty.proxy.reset()
    workers = []
    for i, alpha in enumerate(alphas):
        slowed = slow if i == 0 else 0.0
        arguments = (
            faulty.url,
            name,
            alpha,
            slowed,
            stale,
            heartbeat,
            start,
            inside,
            arrived,
            len(alphas) - 1,
            results,
        )
        workers.append(context.Process(target=register_in_process, args=arguments))
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)

    assert [o[0] for o in outcomes] == ["registered"] * len(alphas), outcomes
    spans = sorted((enter, leave, alpha) for _, alpha, _, held in outcomes for enter, leave in held)
    assert all(leave is not None for _, leave, _ in spans), spans
    for (_, left, first), (entered, _, second) in zip(spans, spans[1:], strict=False):
        assert entered >= left, f"alpha {second} entered the lock {left - entered:.2f} s before alpha {first} left it"
    slowest = max(leave - enter for enter, leave, _ in spans)
    assert slowest > 2 * stale  # the slow holder really outlived the stale limit inside
    registrations = {alpha: registration for _, alpha, registration, _ in outcomes}
    best = min(registrations.values(), key=lambda r: r["metrics"]["test_rmsle"])
    direct = MlflowClient(faulty.server.url)
    aliases, versions = state(direct, name)
    assert aliases["champion"] == best["version"] and len(versions) == len(alphas)
    # Every alias move is one a registration reports.
    moves = [(m.alias, m.version) for m in faulty.proxy.alias_moves if m.name == name]
    reported = [(alias, r["version"]) for r in registrations.values() for alias in r["aliases"]]
    assert sorted(moves) == sorted(reported)
    assert locks(direct) == []
