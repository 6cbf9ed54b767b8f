"""Deploying a registered version: the smoke request against a real predictor process, and the
create/patch/wait logic against a loopback stand-in for the Kubernetes API server.

The registry is real (MLflow on SQLite) with its artifacts in a real S3 API (moto on loopback), so
registered versions have the s3:// download URIs KServe needs. The predictor is `python -m serving`
on a free port, loading that version from S3; in front of it, a loopback stand-in for the
predictor's Service during a rolling update says which version each answer comes from.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request

import pandas as pd
import pytest

from lifecycle.contract.protocol import v2_request
from lifecycle.deploy.errors import DeploymentError, SmokeTestError
from lifecycle.deploy.release import deploy_model
from lifecycle.deploy.rollout import deployer_kubeconfig, kserve_client
from lifecycle.deploy.smoke import smoke_request
from lifecycle.deploy.version import input_example_of
from lifecycle.registry.registered_model import MODEL_SHA256_TAG, load_registered
from tests.loopback import LoopbackServer, QuietHandler
from tests.serving.conftest import fit_ames, register, start_server, stop_server
from tools.stack import S3Server, free_port

MODEL = "ames-house-prices"
BUCKET = "mlpipeline"
PODS_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods$")
ISVC_PATH = re.compile(
    r"^/apis/serving\.kserve\.io/v1beta1/namespaces/(?P<ns>[^/]+)/inferenceservices(?:/(?P<name>[^/]+))?$"
)


# ---- a registry with S3 artifacts, and the predictor serving its champion -------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """SQLite registry, artifacts in moto S3; one registered Ames version (champion)."""
    import mlflow
    from mlflow import MlflowClient
    from threadpoolctl import threadpool_limits

    root = tmp_path_factory.mktemp("deploy")
    s3 = S3Server()
    s3.start()
    s3.make_buckets(BUCKET)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_S3_ENDPOINT_URL": s3.endpoint,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.chdir(root)
        mlflow.set_tracking_uri(uri)
        MlflowClient().create_experiment(MODEL, artifact_location=f"s3://{BUCKET}/mlflow/{MODEL}")
        with threadpool_limits(1):
            model, train, _ = fit_ames(600)
        version = register(model, train, MODEL)
        try:
            yield {"version": version, "root": root, "tracking_uri": uri}
        finally:
            mlflow.set_tracking_uri(None)
            s3.stop()


@pytest.fixture(scope="module")
def predictor(registry):
    server = start_server(f"models:/{MODEL}@champion", MODEL, registry["root"] / "predictor.log")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def example(registry) -> pd.DataFrame:
    return input_example_of(load_registered(f"models:/{MODEL}/{registry['version']}"))


# ---- the smoke request against the real predictor ---------------------------------------------------


def test_input_example_comes_back_from_the_registry(example):
    assert len(example) == 5
    assert {"Neighborhood", "Lot_Area", "Mas_Vnr_Type"} <= set(example.columns)


def test_v2_request_has_one_named_tensor_per_column(example):
    body = v2_request(example)
    assert [t["name"] for t in body["inputs"]] == list(example.columns)
    by_name = {t["name"]: t for t in body["inputs"]}
    assert by_name["Neighborhood"]["datatype"] == "BYTES"
    assert by_name["Lot_Area"]["datatype"] in {"INT64", "FP64"}
    assert all(t["shape"] == [5] and len(t["data"]) == 5 for t in body["inputs"])
    json.dumps(body, allow_nan=False)  # NaN would not be JSON: missing values go as null


def test_smoke_request_gets_one_prediction_per_row(predictor, example):
    result = smoke_request(predictor.url, MODEL, example)
    assert result["rows"] == 5 and result["output"] == "prediction"
    assert len(result["predictions"]) == 5
    assert all(20_000 < p < 800_000 for p in result["predictions"]), result["predictions"]


def test_smoke_request_names_a_wrong_model_name(predictor, example):
    with pytest.raises(
        SmokeTestError, match=rf"{re.escape(predictor.url)}/v2/models/no-such-model/infer answered HTTP 404"
    ):
        smoke_request(predictor.url, "no-such-model", example)


def test_smoke_request_passes_on_the_predictors_refusal(predictor, example):
    with pytest.raises(SmokeTestError, match=r"answered HTTP 400: .*Neighborhood"):
        smoke_request(predictor.url, MODEL, example.drop(columns=["Neighborhood"]))


def test_smoke_request_to_nothing_says_so(example):
    with pytest.raises(SmokeTestError, match=r"failed: .*(refused|Connection)"):
        smoke_request(f"http://127.0.0.1:{free_port()}", MODEL, example)


# ---- a stand-in for the Kubernetes API server --------------------------------------------------------


class FakeKubeAPI(LoopbackServer):
    """Just the custom-objects endpoints for InferenceServices, on a loopback port.

    No cluster runs here, so this stands in for the API server: GET/POST/PATCH on
    /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices[/{name}] with the API
    server's 404/409 semantics and JSON merge patch (what KServeClient.patch sends), a generation
    that moves when the spec changes, and a `controller(obj, reads)` the test supplies to write the
    status a KServe controller would. Pods are listed by label selector from `pods`. Anything else
    (listing InferenceServices, WATCH) is recorded and refused.
    """

    def __init__(self, controller=None, denied: frozenset[str] = frozenset(), pods: list[dict] | None = None):
        self.denied = denied  # verbs the ServiceAccount's Role does not grant ("list" for pods)
        self.pods = pods or []
        self.objects: dict[tuple[str, str], dict] = {}
        self.requests: list[tuple[str, str, str]] = []
        self.reads = 0
        self.controller = controller or (lambda obj, reads: None)
        api = self

        class Handler(QuietHandler):
            def do_GET(self):
                api.handle(self, "GET")

            def do_POST(self):
                api.handle(self, "POST")

            def do_PATCH(self):
                api.handle(self, "PATCH")

            def do_PUT(self):
                api.handle(self, "PUT")

            def do_DELETE(self):
                api.handle(self, "DELETE")

        super().__init__(Handler)

    def put(self, obj: dict) -> None:
        self.objects[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj

    @staticmethod
    def reply(handler, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def status(code: int, reason: str, message: str) -> dict:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }

    def handle(self, handler, method: str) -> None:
        url = urllib.parse.urlsplit(handler.path)
        self.requests.append((method, url.path, url.query))
        body = None
        if method in ("POST", "PATCH", "PUT"):
            body = json.loads(handler.body() or b"null")
        pods = PODS_PATH.match(url.path)
        if pods and method == "GET" and "watch" not in url.query:
            return self.list_pods(handler, pods["ns"], urllib.parse.parse_qs(url.query).get("labelSelector", [""])[0])
        match = ISVC_PATH.match(url.path)
        if (
            not match
            or "watch" in url.query
            or (method == "GET" and not match["name"])
            or method not in ("GET", "POST", "PATCH")
        ):
            return self.reply(
                handler,
                403,
                self.status(403, "Forbidden", f"{method} {handler.path} is not allowed to this ServiceAccount"),
            )
        ns, name = match["ns"], match["name"]
        if method in self.denied:
            verb = {"GET": "get", "POST": "create", "PATCH": "patch"}[method]
            return self.reply(
                handler,
                403,
                self.status(
                    403,
                    "Forbidden",
                    (
                        "inferenceservices.serving.kserve.io is forbidden: User "
                        '"system:serviceaccount:kubeflow:pipeline-runner" '
                        f'cannot {verb} resource "inferenceservices" in API group "serving.kserve.io" in the '
                        f'namespace "{ns}"'
                    ),
                ),
            )
        key = (ns, name or (body or {}).get("metadata", {}).get("name"))
        current = self.objects.get(key)
        not_found = self.status(404, "NotFound", f'inferenceservices.serving.kserve.io "{key[1]}" not found')
        if method == "GET":
            if current is None:
                return self.reply(handler, 404, not_found)
            self.reads += 1
            status = self.controller(current, self.reads)
            if status is not None:
                current["status"] = status
            return self.reply(handler, 200, current)
        if method == "POST":
            if current is not None:
                return self.reply(
                    handler,
                    409,
                    self.status(409, "AlreadyExists", f'inferenceservices.serving.kserve.io "{key[1]}" already exists'),
                )
            body["metadata"].update(generation=1, resourceVersion="1", uid=f"uid-{key[1]}")
            self.put(body)
            return self.reply(handler, 201, body)
        if current is None:
            return self.reply(handler, 404, not_found)
        if handler.headers.get("Content-Type") != "application/merge-patch+json":
            return self.reply(
                handler, 415, self.status(415, "UnsupportedMediaType", handler.headers.get("Content-Type"))
            )
        patched = merge_patch(current, body)
        meta = patched["metadata"]
        if patched.get("spec") != current.get("spec"):
            meta["generation"] = current["metadata"]["generation"] + 1
        meta["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        self.put(patched)
        return self.reply(handler, 200, patched)

    def list_pods(self, handler, namespace: str, selector: str) -> None:
        if "list" in self.denied:
            return self.reply(
                handler,
                403,
                self.status(
                    403,
                    "Forbidden",
                    (
                        'pods is forbidden: User "system:serviceaccount:kubeflow:pipeline-runner" cannot list '
                        'resource "pods" '
                        f'in API group "" in the namespace "{namespace}"'
                    ),
                ),
            )
        wanted = dict(term.split("=", 1) for term in selector.split(",") if term)
        items = [
            p
            for p in self.pods
            if p["metadata"]["namespace"] == namespace
            and all(p["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]
        return self.reply(handler, 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

    def verbs(self) -> list[str]:
        """The requests on InferenceServices, in order."""
        return [method for method, path, _ in self.requests if ISVC_PATH.match(path)]

    def pod_lists(self) -> int:
        return sum(1 for _, path, _ in self.requests if PODS_PATH.match(path))


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def kserve_client_for(url: str):
    """A real KServeClient whose kubeconfig points at `url`."""
    from kserve import KServeClient
    from kubernetes.client import Configuration

    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "loopback", "cluster": {"server": url}}],
        "users": [{"name": "pipeline-runner", "user": {"token": "loopback-token"}}],
        "contexts": [{"name": "loopback", "context": {"cluster": "loopback", "user": "pipeline-runner"}}],
        "current-context": "loopback",
    }
    client = KServeClient(config_dict=kubeconfig)
    Configuration.set_default(None)  # the client keeps its own copy; later clients start clean
    return client


def ready_after(reads_needed: int):
    """A controller that reports Ready once it has been read that often."""

    def controller(obj, reads):
        generation = obj["metadata"]["generation"]
        if reads < reads_needed:
            return {
                "observedGeneration": generation,
                "conditions": [{"type": "PredictorReady", "status": "Unknown"}, {"type": "Ready", "status": "Unknown"}],
            }
        return {
            "observedGeneration": generation,
            "conditions": [{"type": "PredictorReady", "status": "True"}, {"type": "Ready", "status": "True"}],
            "modelStatus": {"transitionStatus": "UpToDate"},
        }

    return controller


class Rollout(LoopbackServer):
    """The predictor's Service during a rolling update, on a loopback port.

    Each V2 request goes to the real predictor, and its answer, a prediction or a refusal, is stamped
    with the `model_version` of the pod the Service would have routed it to (as the predictor does
    when started with one): `versions[i]` for the i-th request, the last one repeating (None for a
    predictor that reports no version). `edit` changes a prediction's body too. A version in
    `lacks_a_column` is one whose model has no first column of the example: the predictor gets the
    request without that column's tensor and refuses it.
    """

    def __init__(self, predictor, versions: list[str | None], edit=None, lacks_a_column=frozenset()):
        self.versions = list(versions)
        self.answered: list[str | None] = []
        rollout = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = self.body()
                version = rollout.versions[min(len(rollout.answered), len(rollout.versions) - 1)]
                rollout.answered.append(version)
                if version in lacks_a_column:
                    sent = json.loads(body)
                    body = json.dumps({**sent, "inputs": sent["inputs"][1:]}).encode()
                request = urllib.request.Request(
                    predictor.url + self.path, data=body, method="POST", headers={"Content-Type": "application/json"}
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        code, text = response.status, response.read()
                except urllib.error.HTTPError as exc:
                    code, text = exc.code, exc.read()
                answer = json.loads(text)
                if version is not None:
                    answer["model_version"] = version
                text = json.dumps(edit(answer) if edit and code == 200 else answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

        super().__init__(Handler)


def deploy(api: FakeKubeAPI, smoke: Rollout, **kwargs):
    kwargs = {"timeout_seconds": 10, "poll_seconds": 0.05, **kwargs}
    return deploy_model(MODEL, client=kserve_client_for(api.url), smoke_url=smoke.url, **kwargs)


def assert_only_allowed_verbs(api: FakeKubeAPI) -> None:
    """The Role allows get, create and patch on named InferenceServices, and listing the service's
    pods: no other list, no watch."""
    for method, path, query in api.requests:
        assert method in ("GET", "POST", "PATCH"), (method, path)
        assert "watch" not in query, (method, path, query)
        if PODS_PATH.match(path):
            assert method == "GET" and urllib.parse.parse_qs(query)["labelSelector"] == [
                f"serving.kserve.io/inferenceservice={MODEL}"
            ]
        elif method in ("GET", "PATCH"):
            assert ISVC_PATH.match(path)["name"], f"{method} {path} lists the collection"


def served_before(version: str) -> dict:
    """An InferenceService that has served an older version for a while, and is Ready."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": MODEL,
            "namespace": "models",
            "generation": 4,
            "resourceVersion": "17",
            "annotations": {"kfp-tabular-lifecycle/model-version": version},
        },
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "mlflow-sklearn"},
                    "storageUri": "s3://mlpipeline/mlflow/old/artifacts",
                    "env": [{"name": "MODEL_VERSION", "value": version}],
                }
            }
        },
        "status": {
            "observedGeneration": 4,
            "conditions": [{"type": "PredictorReady", "status": "True"}, {"type": "Ready", "status": "True"}],
        },
    }


def ready_throughout(obj, reads):
    """Standard mode during a rolling update: the old pod keeps Ready True, and observedGeneration is
    the Deployment's counter, which here stays behind the InferenceService's generation for good."""
    return {
        "observedGeneration": 2,
        "conditions": [{"type": "PredictorReady", "status": "True"}, {"type": "Ready", "status": "True"}],
    }


# ---- deploy_model against the stand-in and the real predictor -------------------------------------


def test_creates_waits_for_ready_and_for_the_version_to_answer(registry, predictor):
    from mlflow import MlflowClient

    with FakeKubeAPI(ready_after(3)) as api, Rollout(predictor, [registry["version"]]) as smoke:
        deployment = deploy(api, smoke)
    assert deployment.action == "created"
    assert (
        deployment.version == registry["version"] and deployment.model_uri == f"models:/{MODEL}/{registry['version']}"
    )
    assert deployment.storage_uri == MlflowClient().get_model_version_download_uri(MODEL, registry["version"])
    assert deployment.storage_uri.startswith(f"s3://{BUCKET}/mlflow/{MODEL}/")
    assert deployment.smoke["rows"] == 5 and len(deployment.smoke["predictions"]) == 5
    assert all(20_000 < p < 800_000 for p in deployment.smoke["predictions"]), deployment.smoke["predictions"]
    assert deployment.smoke["model_version"] == registry["version"]
    assert api.verbs() == ["POST", "GET", "GET", "GET"]
    assert smoke.answered == [registry["version"]], "no smoke request before Ready"
    assert_only_allowed_verbs(api)
    created = api.objects[("models", MODEL)]
    model = created["spec"]["predictor"]["model"]
    assert model["storageUri"] == deployment.storage_uri and model["runtime"] == "kfp-tabular-sklearn"
    digest = MlflowClient().get_model_version(MODEL, registry["version"]).tags[MODEL_SHA256_TAG]
    assert model["env"] == [
        {"name": "MODEL_VERSION", "value": registry["version"]},
        {"name": "MODEL_SHA256", "value": digest},
    ]
    assert created["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert created["metadata"]["annotations"]["kfp-tabular-lifecycle/model-version"] == registry["version"]


def test_patch_waits_while_the_old_version_answers(registry, predictor):
    """Ready stays True through the rolling update, so only the answer's model_version says when the
    new pod serves; the counters never agree (the drift that used to block every deploy)."""
    with FakeKubeAPI(ready_throughout) as api, Rollout(predictor, ["0", "0", registry["version"]]) as smoke:
        api.put(served_before("0"))
        deployment = deploy(api, smoke)
    assert deployment.action == "patched" and deployment.smoke["model_version"] == registry["version"]
    assert smoke.answered == ["0", "0", registry["version"]]
    assert api.verbs() == ["POST", "PATCH", "GET", "GET", "GET"]
    assert_only_allowed_verbs(api)
    served = api.objects[("models", MODEL)]
    assert served["metadata"]["generation"] == 5 and served["status"]["observedGeneration"] == 2
    assert served["spec"]["predictor"]["model"]["storageUri"] == deployment.storage_uri
    assert served["spec"]["predictor"]["model"]["env"][0] == {"name": "MODEL_VERSION", "value": registry["version"]}


def test_a_predictor_without_a_version_is_waited_out_like_an_old_one(registry, predictor):
    with FakeKubeAPI(ready_throughout) as api, Rollout(predictor, [None, registry["version"]]) as smoke:
        api.put(served_before("0"))
        deployment = deploy(api, smoke)
    assert smoke.answered == [None, registry["version"]]
    assert deployment.smoke["model_version"] == registry["version"]


def test_the_old_version_refusing_the_new_example_is_still_a_rollout(registry, predictor):
    """A new version may take a column the old one does not know: the old pod's 400 names its own
    version, so the step waits for the new one instead of failing."""
    with (
        FakeKubeAPI(ready_throughout) as api,
        Rollout(predictor, ["0", registry["version"]], lacks_a_column={"0"}) as smoke,
    ):
        api.put(served_before("0"))
        deployment = deploy(api, smoke)
    assert smoke.answered == ["0", registry["version"]]
    assert deployment.smoke["model_version"] == registry["version"]


def test_the_new_version_refusing_its_own_example_fails_at_once(registry, predictor):
    with (
        FakeKubeAPI(ready_throughout) as api,
        Rollout(predictor, [registry["version"]], lacks_a_column={registry["version"]}) as smoke,
    ):
        api.put(served_before("0"))
        with pytest.raises(SmokeTestError, match=r"answered HTTP 400: .*missing column"):
            deploy(api, smoke, timeout_seconds=30)
    assert len(smoke.answered) == 1


def test_deploying_the_same_champion_again_changes_nothing(registry, predictor):
    with FakeKubeAPI(ready_after(1)) as api, Rollout(predictor, [registry["version"]]) as smoke:
        first = deploy(api, smoke)
        second = deploy(api, smoke)
    assert (first.action, second.action) == ("created", "patched")
    assert api.objects[("models", MODEL)]["metadata"]["generation"] == 1, "the patch left the spec as it was"
    assert api.verbs() == ["POST", "GET", "POST", "PATCH", "GET"]
    assert_only_allowed_verbs(api)


@pytest.mark.parametrize(
    ("answers", "who"),
    [(["0"], "version 0 answered"), ([None], "the predictor answered without a model_version")],
)
def test_timeout_names_who_answered_instead(registry, predictor, answers, who):
    """The new pod never gets ready: the old one keeps answering, Ready stays True."""
    with FakeKubeAPI(ready_throughout) as api, Rollout(predictor, answers) as smoke:
        api.put(served_before("0"))
        with pytest.raises(DeploymentError) as caught:
            deploy(api, smoke, timeout_seconds=0.5)
    assert str(caught.value) == (
        f"InferenceService models/{MODEL} not serving version {registry['version']} after 0.5 s: {who}; no condition "
        "reported a problem"
    )
    assert len(smoke.answered) >= 3
    assert_only_allowed_verbs(api)


def test_timeout_carries_the_controllers_message(registry, predictor):
    def stuck(obj, reads):
        return {
            "observedGeneration": obj["metadata"]["generation"],
            "conditions": [
                {
                    "type": "PredictorReady",
                    "status": "False",
                    "reason": "MinimumReplicasUnavailable",
                    "message": "Deployment does not have minimum availability.",
                },
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "MinimumReplicasUnavailable",
                    "message": "Deployment does not have minimum availability.",
                },
            ],
            "modelStatus": {
                "transitionStatus": "InProgress",
                "states": {"activeModelState": "Pending", "targetModelState": "Pending"},
            },
        }

    with FakeKubeAPI(stuck) as api, Rollout(predictor, [registry["version"]]) as smoke:
        with pytest.raises(DeploymentError) as caught:
            deploy(api, smoke, timeout_seconds=0.5)
    message = str(caught.value)
    assert (
        f"InferenceService models/{MODEL} not serving version {registry['version']} after 0.5 s: nothing answered "
        "the smoke request;" in message
    )
    assert (
        "PredictorReady=False (MinimumReplicasUnavailable: Deployment does not have minimum availability.)" in message
    )
    assert "model transition InProgress" in message
    assert api.verbs().count("GET") >= 3 and smoke.answered == []
    assert_only_allowed_verbs(api)


def test_a_model_that_fails_to_load_fails_before_the_timeout(registry, predictor):
    def failed(obj, reads):
        return {
            "observedGeneration": obj["metadata"]["generation"],
            "conditions": [{"type": "Ready", "status": "False", "reason": "PredictorNotReady"}],
            "modelStatus": {
                "transitionStatus": "BlockedByFailedLoad",
                "lastFailureInfo": {"reason": "ModelLoadFailed", "message": "skops refused type numpy.dtype"},
            },
        }

    with (
        FakeKubeAPI(failed) as api,
        Rollout(predictor, [registry["version"]]) as smoke,
        pytest.raises(
            DeploymentError,
            match=r"failed: Ready=False \(PredictorNotReady\); model: ModelLoadFailed: skops refused type numpy.dtype",
        ),
    ):
        deploy(api, smoke, timeout_seconds=30)
    assert api.verbs() == ["POST", "GET"]


def test_a_rollout_past_its_progress_deadline_fails_though_the_old_pod_still_answers(registry, predictor):
    """KServe copies the Deployment's Progressing=False into PredictorReady and Ready; the old pod
    answering must not hide it."""
    message = 'ReplicaSet "ames-house-prices-predictor-7d9f" has timed out progressing.'

    def deadline_exceeded(obj, reads):
        return {
            "observedGeneration": 5,
            "conditions": [
                {"type": "IngressReady", "status": "True"},
                {"type": "PredictorReady", "status": "False", "reason": "ProgressDeadlineExceeded", "message": message},
                {"type": "Ready", "status": "False", "reason": "ProgressDeadlineExceeded", "message": message},
            ],
            "modelStatus": {"transitionStatus": "UpToDate"},
        }

    with FakeKubeAPI(deadline_exceeded) as api, Rollout(predictor, ["0"]) as smoke:
        api.put(served_before("0"))
        with pytest.raises(DeploymentError) as caught:
            deploy(api, smoke, timeout_seconds=30)
    assert str(caught.value) == (
        f"InferenceService models/{MODEL} failed: PredictorReady=False (ProgressDeadlineExceeded: {message}); "
        f"Ready=False (ProgressDeadlineExceeded: {message})"
    )
    assert api.verbs() == ["POST", "PATCH", "GET"] and smoke.answered == []


def test_a_wrong_answer_from_the_new_version_fails_at_once(registry, predictor):
    def one_short(answer):
        answer["outputs"][0]["data"] = answer["outputs"][0]["data"][:-1]
        answer["outputs"][0]["shape"] = [len(answer["outputs"][0]["data"])]
        return answer

    with FakeKubeAPI(ready_after(1)) as api, Rollout(predictor, [registry["version"]], edit=one_short) as smoke:
        with pytest.raises(SmokeTestError, match=r"sent 5 rows and got 4 predictions"):
            deploy(api, smoke, timeout_seconds=30)
    assert api.verbs() == ["POST", "GET"] and len(smoke.answered) == 1


def test_api_refusal_is_reported_with_status_and_message(registry, predictor):
    """Without the Role (a 403 on create) the error is the API server's own words."""
    with FakeKubeAPI(denied=frozenset({"POST"})) as api:
        with pytest.raises(
            DeploymentError,
            match=(
                r"creating InferenceService models/ames-house-prices failed: HTTP 403 Forbidden: .*cannot create "
                r"resource \"inferenceservices\""
            ),
        ):
            deploy_model(MODEL, client=kserve_client_for(api.url), smoke_url=predictor.url)
    assert api.verbs() == ["POST"]


def test_unknown_alias_and_bad_names_are_refused_before_any_request(registry, predictor):
    with FakeKubeAPI() as api:
        client = kserve_client_for(api.url)
        with pytest.raises(DeploymentError, match=r"registered model 'ames-house-prices' has no alias 'gold'"):
            deploy_model(MODEL, alias="gold", client=client)
        with pytest.raises(
            DeploymentError,
            match=r"registered model name \(used as the InferenceService name\) 'Ames_Prices' is not a DNS-1035 label",
        ):
            deploy_model("Ames_Prices", client=client)
    assert api.requests == []


def test_local_artifacts_cannot_be_served(tmp_path, monkeypatch, registry):
    """A version whose files are on this disk (file://) has nothing KServe could download."""
    import mlflow
    from mlflow import MlflowClient
    from threadpoolctl import threadpool_limits

    uri = f"sqlite:///{tmp_path / 'local.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    try:
        with threadpool_limits(1):
            model, train, _ = fit_ames(300)
        register(model, train, MODEL)
        with (
            FakeKubeAPI() as api,
            pytest.raises(
                DeploymentError,
                match=r"models:/ames-house-prices/1 cannot be served by KServe: storage_uri .* is not an s3:// URI",
            ),
        ):
            deploy_model(MODEL, client=kserve_client_for(api.url), mlflow_client=MlflowClient(uri))
        assert api.requests == []
    finally:
        mlflow.set_tracking_uri(registry["tracking_uri"])


# ---- a new pod that cannot start -------------------------------------------------------------------


def pod(
    name: str,
    version: str,
    container: str = "kserve-container",
    waiting: dict | None = None,
    restarts: int = 0,
    last_exit: dict | None = None,
) -> dict:
    """A predictor pod of the service as the API server lists it: `container` (the model server, or
    KServe's storage-initializer init container) waiting for a reason, or running."""
    status = {
        "name": container,
        "ready": False,
        "restartCount": restarts,
        "image": "ghcr.io/kfp-tabular-lifecycle/serving:test",
        "imageID": "",
        "state": {"waiting": waiting} if waiting else {"running": {"startedAt": "2026-11-30T00:00:00Z"}},
        "lastState": {"terminated": last_exit} if last_exit else {},
    }
    return {
        "metadata": {"name": name, "namespace": "models", "labels": {"serving.kserve.io/inferenceservice": MODEL}},
        "spec": {
            "containers": [
                {
                    "name": "kserve-container",
                    "image": "ghcr.io/kfp-tabular-lifecycle/serving:test",
                    "env": [{"name": "MODEL_VERSION", "value": version}],
                }
            ]
        },
        "status": {"initContainerStatuses" if container == "storage-initializer" else "containerStatuses": [status]},
    }


SKLEARN_MISMATCH = (
    "error: cannot serve /mnt/models: the model was saved with scikit-learn 1.5.2, this server runs 1.9.1"
)


@pytest.mark.parametrize(
    ("new_pod", "says"),
    [
        (
            dict(
                waiting={"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"},
                restarts=3,
                last_exit={"exitCode": 1, "reason": "Error", "message": SKLEARN_MISMATCH + "\n"},
            ),
            "container kserve-container is in CrashLoopBackOff after 3 restarts; last exit code 1 (Error): "
            f"{SKLEARN_MISMATCH}",
        ),
        (
            dict(
                container="storage-initializer",
                waiting={"reason": "CrashLoopBackOff"},
                restarts=4,
                last_exit={
                    "exitCode": 1,
                    "reason": "Error",
                    "message": "botocore.exceptions.ClientError: InvalidAccessKeyId",
                },
            ),
            "container storage-initializer is in CrashLoopBackOff after 4 restarts; last exit code 1 (Error): "
            "botocore.exceptions.ClientError: InvalidAccessKeyId",
        ),
        (
            dict(
                waiting={
                    "reason": "ImagePullBackOff",
                    "message": 'Back-off pulling image "ghcr.io/kfp-tabular-lifecycle/serving:test"',
                }
            ),
            "container kserve-container is in ImagePullBackOff: Back-off pulling image "
            '"ghcr.io/kfp-tabular-lifecycle/serving:test"',
        ),
    ],
    ids=["model-server-crash-loop", "storage-initializer-crash-loop", "image-pull"],
)
def test_a_new_pod_that_cannot_start_fails_while_the_old_one_still_answers(registry, predictor, new_pod, says):
    """KServe keeps the service Ready on the old pod and reports nothing about the new one; its pod
    says why, long before the rollout's progress deadline."""
    version = registry["version"]
    pods = [pod("ames-house-prices-predictor-old", "0"), pod("ames-house-prices-predictor-new", version, **new_pod)]
    with FakeKubeAPI(ready_throughout, pods=pods) as api, Rollout(predictor, ["0"]) as smoke:
        api.put(served_before("0"))
        with pytest.raises(DeploymentError) as caught:
            deploy(api, smoke, timeout_seconds=60)
    assert str(caught.value) == (
        f"InferenceService models/{MODEL}: version {version} cannot start: pod ames-house-prices-predictor-new: "
        f"{says}; "
        "version 0 answered; no condition reported a problem"
    )
    assert api.pod_lists() == 1 and smoke.answered == ["0"]
    assert_only_allowed_verbs(api)


@pytest.mark.parametrize(
    "pods_of",  # the pods, given the version being deployed
    [
        lambda new: [
            pod(
                "ames-house-prices-predictor-new",
                new,
                waiting={"reason": "CrashLoopBackOff"},
                restarts=1,
                last_exit={"exitCode": 1, "message": "minio not ready"},
            )
        ],  # may still come up
        lambda new: [
            pod(
                "ames-house-prices-predictor-old",
                "0",
                waiting={"reason": "CrashLoopBackOff"},
                restarts=9,
                last_exit={"exitCode": 1},
            )
        ],
    ],
    ids=["first-restarts", "old-version"],
)
def test_pods_that_may_still_start_or_serve_another_version_are_waited_out(registry, predictor, pods_of):
    with FakeKubeAPI(ready_throughout, pods=pods_of(registry["version"])) as api, Rollout(predictor, ["0"]) as smoke:
        api.put(served_before("0"))
        with pytest.raises(
            DeploymentError, match=rf"not serving version {registry['version']} after 0.5 s: version 0 answered"
        ):
            deploy(api, smoke, timeout_seconds=0.5)
    assert api.pod_lists() >= 2


def test_without_leave_to_list_pods_the_wait_goes_on_to_the_timeout(registry, predictor, caplog):
    pods = [pod("ames-house-prices-predictor-new", registry["version"], waiting={"reason": "ImagePullBackOff"})]
    with (
        FakeKubeAPI(ready_throughout, denied=frozenset({"list"}), pods=pods) as api,
        Rollout(predictor, ["0"]) as smoke,
    ):
        api.put(served_before("0"))
        with pytest.raises(
            DeploymentError, match=rf"not serving version {registry['version']} after 0.5 s: version 0 answered"
        ):
            deploy(api, smoke, timeout_seconds=0.5)
    assert api.pod_lists() == 1, "a refusal is not asked again"
    assert (
        'cannot list resource "pods"' in caplog.text
        and "a pod that cannot start is reported at the timeout" in caplog.text
    )


# ---- only the registered files, and only as model-deployer -------------------------------------------


def test_a_version_whose_files_changed_in_the_bucket_is_not_deployed(registry, tmp_path):
    """The bucket's writers can replace model.skops; the digest in the registry cannot be, so the
    step refuses the version before the InferenceService is touched."""
    from mlflow import MlflowClient

    from lifecycle.dataset.storage import parse_s3_uri, s3_client

    client = MlflowClient()
    location = parse_s3_uri(client.get_model_version_download_uri(MODEL, registry["version"]) + "/model.skops")
    s3 = s3_client()
    original = s3.get_object(location.bucket, location.key).read()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0x01
    try:
        put(s3, location, bytes(tampered))
        with (
            FakeKubeAPI() as api,
            pytest.raises(
                DeploymentError,
                match=r"will not be deployed: .*model.skops: sha256 [0-9a-f]{64} does not match the registered sha256",
            ),
        ):
            deploy_model(MODEL, client=kserve_client_for(api.url))
        assert api.requests == []
    finally:
        put(s3, location, original)


def put(s3, location, data: bytes) -> None:
    import io

    s3.put_object(location.bucket, location.key, io.BytesIO(data), len(data))


def test_in_a_cluster_the_step_acts_only_as_model_deployer(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(DeploymentError, match=r"no model-deployer token at .*model-deployer-token"):
        kserve_client(tmp_path)
    (tmp_path / "token").write_text("deployer-token\n")
    (tmp_path / "ca.crt").write_text("")
    config = deployer_kubeconfig(tmp_path, "10.96.0.1", "443")
    assert config["clusters"][0]["cluster"] == {
        "server": "https://10.96.0.1:443",
        "certificate-authority": str(tmp_path / "ca.crt"),
    }
    assert config["users"][0]["user"] == {"token": "deployer-token"}
