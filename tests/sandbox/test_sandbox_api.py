"""The sandbox API server refuses and filters the way kube-apiserver does.

Each test here would pass wrong client code (or fail) on plain kmock: kmock ignores label and
field selectors, merges a strategic-merge patch as a plain merge, never bumps generation nor
checks resourceVersion, has no PUT, answers 404 for an empty list of a known type, and its
watches ignore timeoutSeconds. All requests go through the official client over HTTP.
The injected failures (sandbox/kube/failures.py) are tested here too: the reliability suite
builds on them failing exactly the requests they name, exactly as often as they say.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from sandbox.cluster import ApiServer
from sandbox.kube.failures import ApiFailure
from sandbox.kube.rbac import Identity, PolicyRule

NS = "team"
ADMIN = "admin-token"
READER = "reader-token"


def sts_body(name: str = "redis", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "redis",
                            "image": "redis:7.0",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
                        },
                        {"name": "exporter", "image": "exporter:1", "env": [{"name": "X"}]},
                    ]
                },
            },
        },
    }


def pod_body(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


@pytest.fixture
def server() -> Iterator[ApiServer]:
    identities = {
        ADMIN: Identity(user="admin"),
        READER: Identity(
            user="reader",
            namespace=NS,
            rules=(PolicyRule(apiGroups=("apps",), resources=("statefulsets",), verbs=("get",)),),
        ),
    }
    with ApiServer(identities) as srv:
        srv.call(srv.api.create("namespaces", {"metadata": {"name": NS}}))
        yield srv


def api_client(server: ApiServer, token: str = ADMIN) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = server.url
    configuration.ssl_ca_cert = str(server.ca_file)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


# The official client's models make every field Optional; the tests read them through Any
# (an absent field fails the assertion anyway) and pass plain dicts as bodies.
@pytest.fixture
def core(server: ApiServer) -> Any:
    return client.CoreV1Api(api_client(server))


@pytest.fixture
def apps(server: ApiServer) -> Any:
    return client.AppsV1Api(api_client(server))


def status_of(err: pytest.ExceptionInfo[ApiException]) -> tuple[int, str]:
    body = json.loads(err.value.body or "{}")
    return int(err.value.status), str(body["reason"])


def test_label_selector_filters_pods(core: Any) -> None:
    core.create_namespaced_pod(NS, pod_body("redis-0", {"app": "redis", "tier": "cache"}))
    core.create_namespaced_pod(NS, pod_body("api-1", {"app": "api"}))
    core.create_namespaced_pod(NS, pod_body("redis-canary", {"app": "redis", "canary": "y"}))

    def names(selector: str) -> list[str]:
        pods = core.list_namespaced_pod(NS, label_selector=selector).items
        return [p.metadata.name for p in pods]

    assert names("app=redis") == ["redis-0", "redis-canary"]
    assert names("app=redis,!canary") == ["redis-0"]
    assert names("app in (api, other)") == ["api-1"]
    assert names("tier") == ["redis-0"]
    assert names("app!=redis") == ["api-1"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(NS, label_selector="app===x")
    assert status_of(err) == (400, "BadRequest")


def test_field_selector_filters_events_and_refuses_unknown_fields(core: Any) -> None:
    for pod, reason in (("redis-0", "Killing"), ("redis-0", "Started"), ("api-1", "Pulled")):
        core.create_namespaced_event(
            NS,
            {
                "metadata": {"generateName": f"{pod}."},
                "involvedObject": {"kind": "Pod", "name": pod, "namespace": NS},
                "reason": reason,
                "message": reason,
                "type": "Normal",
            },
        )
    events = core.list_namespaced_event(NS, field_selector="involvedObject.name=redis-0").items
    assert sorted(e.reason for e in events) == ["Killing", "Started"]
    events = core.list_namespaced_event(
        NS, field_selector="involvedObject.name=redis-0,reason!=Killing"
    ).items
    assert [e.reason for e in events] == ["Started"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_event(NS, field_selector="involvedObject.color=red")
    assert status_of(err) == (400, "BadRequest")
    assert "field label not supported" in json.loads(err.value.body or "{}")["message"]


def test_strategic_merge_patch_merges_containers_and_env_by_name(apps: Any) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body())
    patched = apps.patch_namespaced_stateful_set(
        "redis",
        NS,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "redis",
                                "resources": {"limits": {"memory": "128Mi"}},
                                "env": [{"name": "B", "value": "20"}],
                            }
                        ]
                    }
                }
            }
        },
    )
    redis, exporter = patched.spec.template.spec.containers
    assert (redis.name, redis.image, exporter.name, exporter.image) == (
        "redis",
        "redis:7.0",
        "exporter",
        "exporter:1",
    )
    assert redis.resources.limits == {"memory": "128Mi", "cpu": "500m"}
    assert [(e.name, e.value) for e in redis.env] == [("A", "1"), ("B", "20")]


def test_strategic_merge_delete_directive_and_plain_merge_patch(apps: Any) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body())
    patched = apps.patch_namespaced_stateful_set(
        "redis",
        NS,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "exporter", "$patch": "delete"}]}}
            }
        },
    )
    assert [c.name for c in patched.spec.template.spec.containers] == ["redis"]
    # A JSON merge patch replaces lists whole, as RFC 7386 says (and kube does).
    merged = apps.patch_namespaced_stateful_set(
        "redis",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "solo", "image": "x"}]}}}},
        _content_type="application/merge-patch+json",
    )
    assert [c.name for c in merged.spec.template.spec.containers] == ["solo"]


def test_json_patch_applies_and_a_failed_test_op_is_422(apps: Any) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body())
    path = "/spec/template/spec/containers/0/resources/limits/memory"
    ok = apps.patch_namespaced_stateful_set(
        "redis",
        NS,
        [
            {"op": "test", "path": path, "value": "64Mi"},
            {"op": "replace", "path": path, "value": "1Gi"},
        ],
    )
    assert ok.spec.template.spec.containers[0].resources.limits["memory"] == "1Gi"
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_stateful_set(
            "redis",
            NS,
            [
                {"op": "test", "path": path, "value": "64Mi"},
                {"op": "replace", "path": "/spec/replicas", "value": 9},
            ],
        )
    assert status_of(err) == (422, "Invalid")
    assert apps.read_namespaced_stateful_set("redis", NS).spec.replicas == 1  # nothing applied
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_stateful_set(
            "redis", NS, [{"op": "replace", "path": "/spec/nothing/here", "value": 1}]
        )
    assert status_of(err)[0] == 422


def test_generation_bumps_on_spec_changes_only(apps: Any) -> None:
    created = apps.create_namespaced_stateful_set(NS, sts_body())
    assert created.metadata.generation == 1
    labelled = apps.patch_namespaced_stateful_set(
        "redis", NS, {"metadata": {"annotations": {"note": "x"}}}
    )
    assert labelled.metadata.generation == 1
    scaled = apps.patch_namespaced_stateful_set("redis", NS, {"spec": {"replicas": 2}})
    assert scaled.metadata.generation == 2
    # The main resource cannot write status; the status subresource cannot write spec.
    apps.patch_namespaced_stateful_set("redis", NS, {"status": {"readyReplicas": 7}})
    assert apps.read_namespaced_stateful_set("redis", NS).status.ready_replicas is None
    apps.patch_namespaced_stateful_set_status(
        "redis", NS, {"spec": {"replicas": 5}, "status": {"replicas": 2, "readyReplicas": 2}}
    )
    after = apps.read_namespaced_stateful_set("redis", NS)
    assert (after.spec.replicas, after.status.ready_replicas, after.metadata.generation) == (
        2,
        2,
        2,
    )


def test_stale_resource_version_is_409(apps: Any) -> None:
    first = apps.create_namespaced_stateful_set(NS, sts_body())
    stale = first.metadata.resource_version
    newer = apps.patch_namespaced_stateful_set("redis", NS, {"spec": {"replicas": 2}})
    assert int(newer.metadata.resource_version) > int(stale)
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_stateful_set(
            "redis", NS, {"metadata": {"resourceVersion": stale}, "spec": {"replicas": 3}}
        )
    assert status_of(err) == (409, "Conflict")
    first.spec.replicas = 4
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_stateful_set("redis", NS, first)
    assert status_of(err) == (409, "Conflict")
    assert apps.read_namespaced_stateful_set("redis", NS).spec.replicas == 2


def test_put_replaces_and_keeps_server_fields(apps: Any) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body())
    current = apps.read_namespaced_stateful_set("redis", NS)
    current.spec.replicas = 3
    current.spec.template.spec.containers = current.spec.template.spec.containers[:1]
    replaced = apps.replace_namespaced_stateful_set("redis", NS, current)
    assert replaced.spec.replicas == 3
    assert [c.name for c in replaced.spec.template.spec.containers] == ["redis"]
    assert replaced.metadata.uid == current.metadata.uid
    assert replaced.metadata.generation == 2


def test_empty_list_of_a_known_type_and_404s(core: Any, apps: Any) -> None:
    assert core.list_namespaced_config_map(NS).items == []
    assert apps.list_namespaced_deployment(NS).items == []
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("nope", NS)
    assert status_of(err) == (404, "NotFound")
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("nope", NS, {"spec": {"replicas": 1}})
    assert status_of(err) == (404, "NotFound")
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_stateful_set("no-such-namespace", sts_body())
    assert status_of(err) == (404, "NotFound")
    apps.create_namespaced_stateful_set(NS, sts_body())
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_stateful_set(NS, sts_body())
    assert status_of(err) == (409, "AlreadyExists")


def test_invalid_objects_and_patch_types_are_refused(apps: Any) -> None:
    bad = sts_body()
    bad["spec"]["template"]["spec"]["containers"][0].pop("image")
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_stateful_set(NS, bad)
    assert status_of(err) == (422, "Invalid")
    apps.create_namespaced_stateful_set(NS, sts_body())
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_stateful_set("redis", NS, {"spec": {"replicas": -1}})
    assert status_of(err) == (422, "Invalid")
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_stateful_set(
            "redis", NS, {"spec": {}}, _content_type="application/apply-patch+yaml"
        )
    assert status_of(err)[0] == 415


def test_watch_honours_timeout_seconds_and_selectors(server: ApiServer, core: Any) -> None:
    core.create_namespaced_pod(NS, pod_body("redis-0", {"app": "redis"}))
    core.create_namespaced_pod(NS, pod_body("api-1", {"app": "api"}))
    began = time.monotonic()
    seen = [
        event["object"].metadata.name
        for event in watch.Watch().stream(  # type: ignore[no-untyped-call]
            core.list_namespaced_pod,
            NS,
            label_selector="app=redis",
            timeout_seconds=1,
            _request_timeout=10,  # on plain kmock the stream would never end: fail, not hang
        )
    ]
    assert seen == ["redis-0"]
    assert 0.9 <= time.monotonic() - began < 5


def test_a_watch_from_a_resource_version_gets_the_changes_after_it(
    server: ApiServer, core: Any
) -> None:
    """What kubectl rollout status and the client's list-then-watch rely on: the changes
    between the list and the watch are replayed, not lost; forgotten ones are 410 Gone."""
    server.api.watch_history = 5  # kube-apiserver keeps more; the rule is the same
    core.create_namespaced_pod(NS, pod_body("redis-0", {"app": "redis"}))
    listed = core.list_namespaced_pod(NS).metadata.resource_version
    core.patch_namespaced_pod("redis-0", NS, {"metadata": {"labels": {"seen": "after"}}})
    core.create_namespaced_pod(NS, pod_body("redis-1", {"app": "redis"}))
    events = [
        (event["type"], event["object"].metadata.name)
        for event in watch.Watch().stream(  # type: ignore[no-untyped-call]
            core.list_namespaced_pod, NS, resource_version=listed, timeout_seconds=1,
            _request_timeout=10,
        )
    ]  # fmt: skip
    assert events == [("MODIFIED", "redis-0"), ("ADDED", "redis-1")]
    for i in range(5):
        core.patch_namespaced_pod("redis-0", NS, {"metadata": {"labels": {"n": str(i)}}})
    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(  # type: ignore[no-untyped-call]
            core.list_namespaced_pod, NS, resource_version=listed, timeout_seconds=1
        ):
            pass
    assert err.value.status == 410


def test_pod_deletion_is_graceful_unless_grace_is_zero(core: Any) -> None:
    core.create_namespaced_pod(NS, pod_body("redis-0", {"app": "redis"}))
    core.delete_namespaced_pod("redis-0", NS)
    terminating = core.read_namespaced_pod("redis-0", NS)
    assert terminating.metadata.deletion_timestamp is not None
    core.delete_namespaced_pod("redis-0", NS, grace_period_seconds=0)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("redis-0", NS)
    assert err.value.status == 404


def test_rbac_401_for_unknown_tokens_and_403_outside_the_role(server: ApiServer, apps: Any) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body())
    reader: Any = client.AppsV1Api(api_client(server, READER))
    assert reader.read_namespaced_stateful_set("redis", NS).metadata.name == "redis"
    with pytest.raises(ApiException) as err:
        reader.patch_namespaced_stateful_set("redis", NS, {"spec": {"replicas": 2}})
    assert status_of(err) == (403, "Forbidden")
    with pytest.raises(ApiException) as err:
        reader.list_namespaced_stateful_set(NS)
    assert err.value.status == 403
    stranger: Any = client.AppsV1Api(api_client(server, "who-knows"))
    with pytest.raises(ApiException) as err:
        stranger.read_namespaced_stateful_set("redis", NS)
    assert err.value.status == 401
    audit = [(r.user, r.verb, r.resource, r.code) for r in server.api.audit]
    assert ("reader", "patch", "statefulsets", 403) in audit
    assert ("reader", "get", "statefulsets", 200) in audit


# ---------------------------------------------------------------- injected failures

REPLICAS_2 = [{"op": "replace", "path": "/spec/replicas", "value": 2}]
# (connect, read): shorter than the injected holds, so the client gives up first.
IMPATIENT = (2.0, 0.5)


def _audit(server: ApiServer, verb: str) -> list[tuple[str, int, str | None]]:
    return [(r.user, r.code, r.injected) for r in server.api.audit if r.verb == verb]


def _replicas_become(apps: Any, wanted: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while apps.read_namespaced_stateful_set("redis", NS).spec.replicas != wanted:
        assert time.monotonic() < deadline, f"replicas never became {wanted}"
        time.sleep(0.05)


def test_injected_503s_fail_exactly_the_next_requests(server: ApiServer, apps: Any) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body())
    rule = server.api.failures.add(verb="get", resource="statefulsets", status=503, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            apps.read_namespaced_stateful_set("redis", NS)
        assert status_of(err) == (503, "ServiceUnavailable")
    assert apps.read_namespaced_stateful_set("redis", NS).metadata.name == "redis"
    assert (rule.used, rule.spent, server.api.failures.pending) == (2, True, [])
    assert _audit(server, "get") == [
        ("admin", 503, "refused 503"),
        ("admin", 503, "refused 503"),
        ("admin", 200, None),
    ]


def test_an_injected_conflict_changes_nothing(server: ApiServer, apps: Any) -> None:
    created = apps.create_namespaced_stateful_set(NS, sts_body())
    server.api.failures.add(verb="patch", resource="statefulsets", name="redis", status=409)
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_stateful_set("redis", NS, REPLICAS_2)
    assert status_of(err) == (409, "Conflict")
    unchanged = apps.read_namespaced_stateful_set("redis", NS)
    assert unchanged.metadata.resource_version == created.metadata.resource_version
    assert apps.patch_namespaced_stateful_set("redis", NS, REPLICAS_2).spec.replicas == 2
    patches = [r for r in server.api.audit if r.verb == "patch"]
    assert [(r.code, r.request_object) for r in patches] == [(409, REPLICAS_2), (200, REPLICAS_2)]


def test_a_held_request_lands_after_the_client_gave_up(server: ApiServer, apps: Any) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body())
    server.api.failures.add(verb="patch", resource="statefulsets", delay=1.5)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        apps.patch_namespaced_stateful_set("redis", NS, REPLICAS_2, _request_timeout=IMPATIENT)
    assert apps.read_namespaced_stateful_set("redis", NS).spec.replicas == 1  # not yet
    _replicas_become(apps, 2)  # the late write
    assert _audit(server, "patch") == [("admin", 200, "held 1.5s")]


def test_a_lost_reply_hides_a_change_already_made(server: ApiServer, apps: Any) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body())
    server.api.failures.add(verb="patch", resource="statefulsets", reply_delay=3)
    began = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        apps.patch_namespaced_stateful_set("redis", NS, REPLICAS_2, _request_timeout=IMPATIENT)
    assert apps.read_namespaced_stateful_set("redis", NS).spec.replicas == 2
    assert time.monotonic() - began < 2.5  # the change was there before the reply was due
    assert _audit(server, "patch") == [("admin", 200, "reply held 3s")]


def test_failures_hit_only_the_user_and_object_named(server: ApiServer, apps: Any) -> None:
    apps.create_namespaced_stateful_set(NS, sts_body())
    apps.create_namespaced_stateful_set(NS, sts_body("other"))
    server.api.failures.add(
        verb="get", resource="statefulsets", name="redis", user="reader", status=503, times=5
    )
    reader: Any = client.AppsV1Api(api_client(server, READER))
    assert apps.read_namespaced_stateful_set("redis", NS).metadata.name == "redis"
    assert reader.read_namespaced_stateful_set("other", NS).metadata.name == "other"
    with pytest.raises(ApiException) as err:
        reader.read_namespaced_stateful_set("redis", NS)
    assert err.value.status == 503
    [rule] = server.api.failures.pending
    assert rule.used == 1
    server.api.failures.clear()
    assert reader.read_namespaced_stateful_set("redis", NS).metadata.name == "redis"


def test_a_failure_must_say_what_it_does() -> None:
    with pytest.raises(ValidationError, match="needs a status, a delay or a reply_delay"):
        ApiFailure(verb="get", resource="pods")
    with pytest.raises(ValidationError, match="status or reply_delay"):
        ApiFailure(verb="patch", resource="pods", status=503, reply_delay=1)
    with pytest.raises(ValidationError, match="is not an error"):
        ApiFailure(verb="get", resource="pods", status=200)
