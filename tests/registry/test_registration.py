"""Registration and promotion against a real MLflow registry (SQLite)."""

import contextlib
import re
import time
import types

import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from lifecycle.contract.ranges import read_input_ranges
from lifecycle.dataset.config import ConfigError
from lifecycle.dataset.process import process_frame, split_frame
from lifecycle.modelling.estimators import build_estimator, expand_search_space
from lifecycle.modelling.evaluation import holdout_metrics
from lifecycle.modelling.features import build_featurizer, features_and_target
from lifecycle.monitoring.reference import profile_ranges, reference_profile_text
from lifecycle.registry import aliases as alias_changes
from lifecycle.registry import lock as promotion_lock
from lifecycle.registry import policy
from lifecycle.registry.errors import RegistrationError
from lifecycle.registry.registered_model import load_registered
from lifecycle.registry.registration import register_model
from tests.conftest import quick

NAME = "ames-test"
LOCK = f"{NAME}.promotion-lock"


@pytest.fixture(scope="module")
def ames_parts(ames_raw, ames_config):
    config = quick(
        ames_config, cv_folds=3, search_space=[{"estimator": "ridge", "params": {"alpha": [10.0, 100000.0]}}]
    )
    train, test = split_frame(process_frame(ames_raw, config), config)
    featurizer = build_featurizer(config).fit(features_and_target(train, config)[0])
    good, bad = (
        Pipeline([("features", featurizer), ("model", build_estimator(c, config))]).fit(
            *features_and_target(train, config)
        )
        for c in expand_search_space(config)
    )
    return config, train, test, good, bad


def register(parts, model, margin=0.0, input_ranges=None, **lineage):
    config, train, test, _, _ = parts
    return register_model(
        model,
        train,
        test,
        config,
        holdout_metrics(model, test, config),
        NAME,
        margin,
        lineage={"git_commit": "abc123", "data_sha256": "d" * 64, **lineage},
        artifacts={},
        params={"candidate": "x"},
        input_ranges=input_ranges,
    )


def aliases(client):
    return {a: str(client.get_model_version_by_alias(NAME, a).version) for a in ("champion", "challenger")}


def test_first_version_becomes_champion_with_lineage_and_signature(mlflow_store, ames_parts):
    registration = register(ames_parts, ames_parts[3])
    assert registration.version == "1" and registration.aliases == ["challenger", "champion"]
    client = MlflowClient()
    version = client.get_model_version(NAME, "1")
    assert version.tags["git_commit"] == "abc123" and version.tags["data_sha256"] == "d" * 64
    assert "test_rmsle" in version.tags
    import mlflow.models

    info = mlflow.models.get_model_info(f"models:/{NAME}@champion")
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    names = info.signature.inputs.input_names()
    assert "Neighborhood" in names and "Sale_Price" not in names
    loaded = load_registered(f"models:/{NAME}@champion")
    assert loaded.sha256 == version.tags["model_sha256"], "the version carries its model file's digest from the start"
    X = features_and_target(ames_parts[2], ames_parts[0])[0].head(5)
    assert (loaded.model.predict(X) == ames_parts[3].predict(X)).all()


def test_a_champion_whose_file_changed_fails_the_registration_and_changes_nothing(mlflow_store, ames_parts):
    """Someone with write access to the artifact store swaps the champion's model file: the next
    registration refuses to load it (naming the file and both digests) and leaves the registry as it was."""
    from pathlib import Path

    register(ames_parts, ames_parts[4])
    client = MlflowClient()
    stored = Path(client.get_model_version_download_uri(NAME, "1").removeprefix("file://")) / "model.skops"
    data = bytearray(stored.read_bytes())
    data[-100] ^= 0x01
    stored.write_bytes(bytes(data))
    registered = client.get_model_version(NAME, "1").tags["model_sha256"]
    with pytest.raises(
        RegistrationError,
        match=rf"model.skops: sha256 [0-9a-f]{{64}} does not match the registered sha256 {registered}",
    ):
        register(ames_parts, ames_parts[3])
    assert versions(client) == ["1"] and aliases(client) == {"champion": "1", "challenger": "1"}


def test_equal_or_worse_model_never_takes_champion(mlflow_store, ames_parts):
    register(ames_parts, ames_parts[3])
    same = register(ames_parts, ames_parts[3])
    worse = register(ames_parts, ames_parts[4])
    assert same.aliases == ["challenger"] and "does not beat champion v1" in same.promotion["reason"]
    assert worse.aliases == ["challenger"]
    assert aliases(MlflowClient()) == {"champion": "1", "challenger": "3"}


def test_better_model_takes_champion_only_beyond_the_margin(mlflow_store, ames_parts):
    register(ames_parts, ames_parts[4])
    within = register(ames_parts, ames_parts[3], margin=10.0)
    assert within.aliases == ["challenger"]
    beyond = register(ames_parts, ames_parts[3], margin=0.01)
    assert beyond.aliases == ["challenger", "champion"]
    assert beyond.promotion["champion_version"] == "1"
    assert aliases(MlflowClient()) == {"champion": "3", "challenger": "3"}


def test_failure_after_version_exists_rolls_back(mlflow_store, ames_parts, monkeypatch):
    register(ames_parts, ames_parts[4])
    original = MlflowClient.set_registered_model_alias

    def failing(self, name, alias, version):
        if alias == "champion":
            raise MlflowException("registry went away")
        return original(self, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", failing)
    with pytest.raises(
        RegistrationError, match="registering ames-test v2 failed and was rolled back: registry went away"
    ):
        register(ames_parts, ames_parts[3])
    monkeypatch.undo()
    client = MlflowClient()
    assert [str(v.version) for v in client.search_model_versions(f"name='{NAME}'")] == ["1"]
    assert aliases(client) == {"champion": "1", "challenger": "1"}
    assert last_run_status(client) == "FAILED"


def last_run_status(client):
    experiment = client.get_experiment_by_name(NAME)
    return client.search_runs([experiment.experiment_id], order_by=["attribute.start_time DESC"], max_results=1)[
        0
    ].info.status


def versions(client):
    return sorted(str(v.version) for v in client.search_model_versions(f"name='{NAME}'"))


def champion_writes(monkeypatch):
    """Records every version `champion` is set to, while still setting it."""
    original, written = MlflowClient.set_registered_model_alias, []

    def recording(self, name, alias, version):
        if alias == "champion":
            written.append(str(version))
        return original(self, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", recording)
    return written


@pytest.mark.parametrize("step", ["set_tags", "end_run"])
def test_failure_after_the_version_tag_leaves_champion_and_challenger_as_they_were(
    mlflow_store, ames_parts, monkeypatch, step
):
    register(ames_parts, ames_parts[4])
    register(ames_parts, ames_parts[4])
    client = MlflowClient()
    assert aliases(client) == {"champion": "1", "challenger": "2"}
    written = champion_writes(monkeypatch)

    original = getattr(mlflow, step)

    def unavailable(*args, **kwargs):
        if step == "end_run":  # as MLflow's own: the run leaves this client, then the request fails
            original()
        raise RuntimeError("503")

    monkeypatch.setattr(mlflow, step, unavailable)
    with pytest.raises(RegistrationError, match="registering ames-test v3 failed and was rolled back: 503"):
        register(ames_parts, ames_parts[3])
    monkeypatch.undo()
    assert written == []
    assert versions(client) == ["1", "2"]
    assert aliases(client) == {"champion": "1", "challenger": "2"}
    assert last_run_status(client) == "FAILED"
    assert not client.search_registered_models(f"name='{LOCK}'")


def test_rollback_restores_aliases_even_when_the_version_cannot_be_deleted(mlflow_store, ames_parts, monkeypatch):
    register(ames_parts, ames_parts[4])
    register(ames_parts, ames_parts[4])

    def unavailable(*args, **kwargs):
        raise RuntimeError("503")

    monkeypatch.setattr(mlflow, "set_tags", unavailable)
    monkeypatch.setattr(MlflowClient, "delete_model_version", unavailable)
    with pytest.raises(RegistrationError, match=r"v3 failed and was rolled back in part \(see the log\): 503"):
        register(ames_parts, ames_parts[3])
    monkeypatch.undo()
    client = MlflowClient()
    assert aliases(client) == {"champion": "1", "challenger": "2"}
    assert versions(client) == ["1", "2", "3"]


def test_a_waiter_outlasts_a_stale_lock():
    # Otherwise a lock left by a dead registration fails every registration until it goes stale.
    assert promotion_lock.LOCK_WAIT_SECONDS > promotion_lock.LOCK_STALE_SECONDS + 5.0


def test_stale_lock_is_broken_and_the_registration_goes_through(mlflow_store, ames_parts, monkeypatch, caplog):
    client = MlflowClient()
    client.create_registered_model(LOCK, description="held by a registration that died")
    monkeypatch.setattr(promotion_lock, "LOCK_STALE_SECONDS", 0.0)
    monkeypatch.setattr(promotion_lock, "LOCK_WAIT_SECONDS", 30.0)
    registration = register(ames_parts, ames_parts[3])
    assert registration.version == "1" and registration.aliases == ["challenger", "champion"]
    assert "breaking promotion lock ames-test.promotion-lock: held by a registration that died" in caplog.text
    assert not client.search_registered_models(f"name='{LOCK}'")


def test_live_lock_makes_the_waiter_fail_and_roll_back(mlflow_store, ames_parts, monkeypatch):
    register(ames_parts, ames_parts[4])
    client = MlflowClient()
    client.create_registered_model(LOCK, description="held by a registration still running")
    monkeypatch.setattr(promotion_lock, "LOCK_WAIT_SECONDS", 1.0)
    written = champion_writes(monkeypatch)
    started = time.monotonic()
    with pytest.raises(
        RegistrationError,
        match="registering ames-test v2 failed and was rolled back: another registration of ames-test "
        "held the promotion lock 'ames-test.promotion-lock' for over 1 s",
    ):
        register(ames_parts, ames_parts[3])
    assert time.monotonic() - started >= 1.0
    assert written == []
    assert versions(client) == ["1"]
    assert aliases(client) == {"champion": "1", "challenger": "1"}
    assert client.get_registered_model(LOCK).description == "held by a registration still running"


def lock_models(client) -> list[str]:
    return sorted(m.name for m in client.search_registered_models(f"name LIKE '{LOCK}%'"))


class FindsTheLockThenWaits:
    """A waiter's registry client whose first read of the lock returns, and then another waiter
    breaks that stale lock and takes it before this one goes on."""

    def __init__(self, client, meanwhile):
        self.client, self.meanwhile = client, meanwhile

    def get_registered_model(self, name):
        found = self.client.get_registered_model(name)
        if self.meanwhile:
            self.meanwhile.pop()()
        return found

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_two_waiters_breaking_one_stale_lock_leave_the_faster_ones_lock(mlflow_store, monkeypatch):
    client = MlflowClient()
    client.create_registered_model(LOCK, description="held by a registration that died")
    time.sleep(0.01)
    monkeypatch.setattr(promotion_lock, "LOCK_STALE_SECONDS", 0.0)
    with contextlib.ExitStack() as faster:
        slower = FindsTheLockThenWaits(
            client, [lambda: faster.enter_context(promotion_lock.promotion_lock(client, NAME, wait=5))]
        )
        assert promotion_lock.break_stale_lock(slower, LOCK) is False
        # The faster waiter's lock stands, and no claim is left behind.
        assert "died" not in client.get_registered_model(LOCK).description
        assert lock_models(client) == [LOCK]
    assert lock_models(client) == []


def test_a_waiter_whose_clock_runs_ahead_does_not_break_a_live_lock(mlflow_store, monkeypatch):
    client = MlflowClient()
    client.create_registered_model(LOCK, description="held by a registration still running")
    ahead = types.SimpleNamespace(time=lambda: time.time() + 3600, monotonic=time.monotonic, sleep=time.sleep)
    monkeypatch.setattr(promotion_lock, "time", ahead)
    assert promotion_lock.break_stale_lock(client, LOCK) is False
    assert client.get_registered_model(LOCK).description == "held by a registration still running"
    assert lock_models(client) == [LOCK]


def test_a_claim_left_by_a_breaker_that_died_is_removed_and_the_lock_broken(mlflow_store, monkeypatch, caplog):
    client = MlflowClient()
    stale = client.create_registered_model(LOCK, description="held by a registration that died")
    client.create_registered_model(f"{LOCK}.break-{stale.creation_timestamp}", description="a breaker that died")
    time.sleep(0.01)
    monkeypatch.setattr(promotion_lock, "LOCK_STALE_SECONDS", 0.0)
    with promotion_lock.promotion_lock(client, NAME, wait=10):
        assert lock_models(client) == [LOCK] and "died" not in client.get_registered_model(LOCK).description
    assert "removing promotion lock claim" in caplog.text and "breaking promotion lock" in caplog.text
    assert lock_models(client) == []


def test_unreviewed_types_are_refused_before_anything_is_stored(mlflow_store, ames_parts):
    config, train, test, good, _ = ames_parts
    odd = Pipeline([("odd", FunctionTransformer(lambda X: X)), ("model", good)]).fit(
        *features_and_target(train, config)
    )
    with pytest.raises(RegistrationError, match="types skops does not trust"):
        register(ames_parts, odd)
    assert MlflowClient().search_model_versions(f"name='{NAME}'") == []


def mlmodel_of(version: str) -> dict:
    from pathlib import Path

    folder = Path(MlflowClient().get_model_version_download_uri(NAME, version).removeprefix("file://"))
    return yaml.safe_load((folder / "MLmodel").read_text())


def test_the_training_ranges_from_the_profile_go_into_the_mlmodel(mlflow_store, ames_parts):
    config, train, test, good, _ = ames_parts
    ranges = profile_ranges(reference_profile_text(good, train, test, config))
    register(ames_parts, good, input_ranges=ranges)
    X = features_and_target(train, config)[0]
    numeric = [c for c in X if X[c].dtype.kind == "f"]
    assert len(numeric) == 33
    assert mlmodel_of("1")["metadata"] == {
        "input_ranges": {c: {"min": float(X[c].min()), "max": float(X[c].max())} for c in numeric}
    }
    trusted = load_registered(f"models:/{NAME}/1")
    assert read_input_ranges(trusted.meta.metadata, set(numeric)) == ranges


def test_a_registration_without_ranges_writes_no_metadata(mlflow_store, ames_parts):
    register(ames_parts, ames_parts[3])
    assert "metadata" not in mlmodel_of("1")


@pytest.mark.parametrize(
    ("ranges", "problem"),
    [
        ({"Neighborhood": (0.0, 1.0)}, "metadata.input_ranges: 'Neighborhood' is not a numeric input column"),
        ({"Sale_Price": (0.0, 1.0)}, "metadata.input_ranges: 'Sale_Price' is not a numeric input column"),
        ({"Lot_Area": (0.0, float("inf"))}, "metadata.input_ranges.Lot_Area.max: expected a finite number, got inf"),
        ({"Lot_Area": (5.0, 1.0)}, "metadata.input_ranges.Lot_Area: min 5.0 is above max 1.0"),
    ],
)
def test_ranges_the_predictor_would_refuse_are_refused_before_anything_is_stored(
    mlflow_store, ames_parts, ranges, problem
):
    with pytest.raises(RegistrationError, match=re.escape(f"input_ranges cannot be registered: {problem}")):
        register(ames_parts, ames_parts[3], input_ranges=ranges)
    assert MlflowClient().search_model_versions(f"name='{NAME}'") == []


def test_tracking_uri_is_required(ames_parts, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(RegistrationError, match="MLFLOW_TRACKING_URI is not set"):
        register(ames_parts, ames_parts[3])


# The registry fails closed: only "this alias does not exist" means "no champion".


def bare_versions(client, count):
    """Versions with no model behind them, for the alias bookkeeping that needs no scoring."""
    client.create_registered_model(NAME)
    return [str(client.create_model_version(NAME, source=f"/nowhere/{i}").version) for i in range(count)]


def test_an_absent_alias_or_model_reads_as_none_and_any_other_error_is_raised(mlflow_store):
    client = MlflowClient()
    assert policy.alias_version(client, NAME, "champion") is None  # no such model
    bare_versions(client, 1)
    assert policy.alias_version(client, NAME, "champion") is None  # no such alias
    client.set_registered_model_alias(NAME, "champion", "1")
    assert policy.alias_version(client, NAME, "champion") == "1"


class Refusing:
    """A client whose alias look-ups fail the way MLflow reports a proxy's plain-text answer."""

    def __init__(self, client, error_code, message, alias=None):
        self.client, self.error_code, self.message, self.alias = client, error_code, message, alias

    def get_model_version_by_alias(self, name, alias):
        if self.alias in (None, alias):
            raise MlflowException(self.message, error_code=self.error_code)
        return self.client.get_model_version_by_alias(name, alias)

    def __getattr__(self, name):
        return getattr(self.client, name)


@pytest.mark.parametrize(
    "code, message",
    [
        (
            "PERMISSION_DENIED",
            "API request to endpoint /api/2.0/mlflow/registered-models/alias failed with error code 403",
        ),
        (
            "RESOURCE_DOES_NOT_EXIST",
            "API request to endpoint /api/2.0/mlflow/registered-models/alias failed with error code 404",
        ),
        (
            "INVALID_PARAMETER_VALUE",
            "API request to endpoint /api/2.0/mlflow/registered-models/alias failed with error code 400",
        ),
        (
            "TEMPORARILY_UNAVAILABLE",
            "API request to endpoint /api/2.0/mlflow/registered-models/alias failed with error code 503",
        ),
    ],
)
def test_a_refused_or_failed_alias_look_up_is_not_an_absent_alias(mlflow_store, code, message):
    client = Refusing(MlflowClient(), code, message)
    with pytest.raises(MlflowException, match=message):
        policy.alias_version(client, NAME, "champion")


def test_a_refused_champion_look_up_fails_the_registration_and_promotes_nothing(mlflow_store, ames_parts, monkeypatch):
    register(ames_parts, ames_parts[3])
    original = MlflowClient.get_model_version_by_alias

    def refused(self, name, alias):
        if alias == "champion":
            raise MlflowException(
                "API request to endpoint /api/2.0/mlflow/registered-models/alias failed with error code 403 != 200",
                error_code="PERMISSION_DENIED",
            )
        return original(self, name, alias)

    monkeypatch.setattr(MlflowClient, "get_model_version_by_alias", refused)
    with pytest.raises(
        RegistrationError, match=rf"ames-test v2 failed and was rolled back: .*403.*\(MLflow registry {mlflow_store}\)"
    ):
        register(ames_parts, ames_parts[4])
    monkeypatch.undo()
    client = MlflowClient()
    assert versions(client) == ["1"] and aliases(client) == {"champion": "1", "challenger": "1"}
    assert last_run_status(client) == "FAILED"
    assert lock_models(client) == []


def test_an_alias_whose_state_could_not_be_read_is_never_touched(mlflow_store, ames_parts, monkeypatch):
    register(ames_parts, ames_parts[3])
    original = MlflowClient.get_model_version_by_alias

    def refused(self, name, alias):
        if alias == "challenger":
            raise MlflowException("failed with error code 403", error_code="PERMISSION_DENIED")
        return original(self, name, alias)

    monkeypatch.setattr(MlflowClient, "get_model_version_by_alias", refused)
    monkeypatch.setattr(mlflow, "set_tags", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("503")))
    with pytest.raises(RegistrationError, match="v2 failed and was rolled back: failed with error code 403"):
        register(ames_parts, ames_parts[3])
    monkeypatch.undo()
    assert aliases(MlflowClient()) == {"champion": "1", "challenger": "1"}


def alias_map(client):
    return {alias: str(version) for alias, version in client.get_registered_model(NAME).aliases.items()}


def test_a_rollback_deletes_only_aliases_it_created_and_leaves_others_moves(mlflow_store):
    client = MlflowClient()
    one, two, three = bare_versions(client, 3)
    client.set_registered_model_alias(NAME, "champion", one)
    changes = alias_changes.AliasChanges(client, NAME, two)
    assert changes.read("champion") == one and changes.read("challenger") is None
    changes.move("challenger")
    changes.move("champion")
    assert changes.undo()
    assert alias_map(client) == {"champion": one}  # challenger was ours: gone

    changes = alias_changes.AliasChanges(client, NAME, two)
    changes.read("champion")
    changes.move("champion")
    client.set_registered_model_alias(NAME, "champion", three)  # another registration, since
    assert changes.undo()
    assert alias_map(client) == {"champion": three}


def test_an_alias_moves_only_after_its_state_was_read(mlflow_store):
    client = MlflowClient()
    _, two = bare_versions(client, 2)
    with pytest.raises(RegistrationError, match="would move before its current version was read"):
        alias_changes.AliasChanges(client, NAME, two).move("champion")
    assert alias_map(client) == {}


@pytest.mark.parametrize("margin", [-0.01, float("nan"), float("inf"), "-1", "abc", None])
def test_a_negative_or_non_finite_margin_is_refused_before_anything_is_written(mlflow_store, ames_parts, margin):
    with pytest.raises(
        ConfigError, match=rf"promotion_margin must be a finite number at least 0 .*, not {re.escape(repr(margin))}"
    ):
        register(ames_parts, ames_parts[3], margin=margin)
    assert MlflowClient().get_experiment_by_name(NAME) is None


def test_the_champion_is_scored_before_the_lock_and_a_moved_champion_is_decided_again(
    mlflow_store, ames_parts, monkeypatch
):
    register(ames_parts, ames_parts[4])
    register(ames_parts, ames_parts[3], margin=10.0)  # v2: good, challenger only
    client = MlflowClient()
    original, scored = policy._champion_model, []

    def scoring(model_name, version):
        # Scoring happens with no lock held; meanwhile another registration makes v2 champion.
        assert lock_models(client) == []
        if not scored:
            client.set_registered_model_alias(NAME, "champion", "2")
        scored.append(version)
        return original(model_name, version)

    monkeypatch.setattr(policy, "_champion_model", scoring)
    registration = register(ames_parts, ames_parts[3])
    assert scored == ["1", "2"]
    assert registration.aliases == ["challenger"] and "does not beat champion v2" in registration.promotion["reason"]
    assert aliases(client) == {"champion": "2", "challenger": "3"}


def test_a_registration_that_lost_the_lock_moves_nothing_more_and_rolls_back(mlflow_store, ames_parts, monkeypatch):
    register(ames_parts, ames_parts[4])
    client = MlflowClient()
    original = MlflowClient.set_model_version_tag

    def lock_broken_meanwhile(self, *args, **kwargs):
        # Between challenger and champion, the lock is broken and taken by another holder.
        client.delete_registered_model(LOCK)
        client.create_registered_model(LOCK, tags={"owner": "another"}, description="another holder")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "set_model_version_tag", lock_broken_meanwhile)
    written = champion_writes(monkeypatch)
    with pytest.raises(
        RegistrationError, match="v2 failed and was rolled back: lost the promotion lock 'ames-test.promotion-lock'"
    ):
        register(ames_parts, ames_parts[3])
    monkeypatch.undo()
    assert written == []
    assert versions(client) == ["1"] and aliases(client) == {"champion": "1", "challenger": "1"}
    assert client.get_registered_model(LOCK).tags["owner"] == "another"  # the other holder's lock stands


def test_release_deletes_only_a_lock_that_carries_the_holders_token(mlflow_store):
    client = MlflowClient()
    lock = promotion_lock.PromotionLock(client, NAME)
    lock.acquire()
    assert client.get_registered_model(LOCK).tags["owner"] == lock.token
    client.delete_registered_model(LOCK)
    client.create_registered_model(LOCK, tags={"owner": "another"})
    with pytest.raises(promotion_lock.PromotionLockLost):
        lock.release()
    assert client.get_registered_model(LOCK).tags["owner"] == "another"


def test_a_live_holder_is_never_stale_however_long_it_works(mlflow_store, monkeypatch):
    client = MlflowClient()
    monkeypatch.setattr(promotion_lock, "LOCK_STALE_SECONDS", 1.0)
    monkeypatch.setattr(promotion_lock, "LOCK_HEARTBEAT_SECONDS", 0.2)
    with promotion_lock.promotion_lock(client, NAME) as held:
        started = time.monotonic()
        while time.monotonic() - started < 3.0:  # three stale limits
            assert promotion_lock.break_stale_lock(client, LOCK) is False
            with pytest.raises(promotion_lock.PromotionLockError, match="held the promotion lock"):
                with promotion_lock.promotion_lock(client, NAME, wait=0.3):
                    pass
        held.check()
    assert lock_models(client) == []


def test_a_holder_whose_heartbeat_stopped_is_broken_and_knows_it(mlflow_store, monkeypatch):
    client = MlflowClient()
    monkeypatch.setattr(promotion_lock, "LOCK_STALE_SECONDS", 0.5)
    monkeypatch.setattr(promotion_lock, "LOCK_HEARTBEAT_SECONDS", 60.0)  # as good as dead
    frozen = promotion_lock.PromotionLock(client, NAME)
    frozen.acquire()
    time.sleep(1.0)
    with promotion_lock.promotion_lock(client, NAME, wait=5) as other:
        with pytest.raises(promotion_lock.PromotionLockLost):
            frozen.check()
        frozen.release_quietly()
        other.check()  # the frozen holder's release left the new lock alone
    assert lock_models(client) == []
