"""How the worker reaches Kubernetes, and which of its errors a retry can fix.

The ApiClient is built from in-cluster config, a kubeconfig file, or KUBECONFIG, into its own
Configuration (never the client library's global default), and handed to the activities'
constructor. Errors: 400, 401, 403, 404, 415 and 422 fail the same way on every retry and
become non-retryable ApplicationErrors with a type name; 409, 429, 5xx, timeouts and refused
connections may heal and stay retryable.

Every call is bounded by `KubernetesAccess.timeouts`, and a call that timed out is never
re-sent by the HTTP library: urllib3's default would send a GET up to four times, so a slow
API server held a call for four read timeouts, far past wait_ready's heartbeat timeout (the
attempt was then abandoned and run again). Retrying is the activity's business (the
workflow's retry policy, or wait_ready's next poll), where it is counted and in the history.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import InClusterConfigLoader
from pydantic import BaseModel, ConfigDict
from temporalio.exceptions import ApplicationError

JSONDict = dict[str, Any]
JSONPatch = list[JSONDict]

K8S_BAD_REQUEST = "KubernetesBadRequest"
K8S_UNAUTHORIZED = "KubernetesUnauthorized"
K8S_FORBIDDEN = "KubernetesForbidden"
K8S_NOT_FOUND = "KubernetesNotFound"
K8S_INVALID = "KubernetesInvalid"
K8S_NOT_CONFIGURED = "KubernetesNotConfigured"
K8S_CONFLICT = "KubernetesConflict"
K8S_UNAVAILABLE = "KubernetesUnavailable"
NON_RETRYABLE = [
    K8S_BAD_REQUEST,
    K8S_UNAUTHORIZED,
    K8S_FORBIDDEN,
    K8S_NOT_FOUND,
    K8S_INVALID,
    K8S_NOT_CONFIGURED,
]
_NON_RETRYABLE_STATUS = {
    400: K8S_BAD_REQUEST,
    401: K8S_UNAUTHORIZED,
    403: K8S_FORBIDDEN,
    404: K8S_NOT_FOUND,
    405: K8S_BAD_REQUEST,
    415: K8S_BAD_REQUEST,
    422: K8S_INVALID,
}
USER_AGENT = "redis-runbook/activities"


class KubernetesAccess(BaseModel):
    """Where the worker's Kubernetes credentials come from; never part of workflow input."""

    model_config = ConfigDict(frozen=True)

    kubeconfig: Path | None = None
    context: str | None = None
    # In-cluster (KUBERNETES_SERVICE_HOST set, no kubeconfig): where the service account's
    # token and the cluster's CA are mounted.
    token_file: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
    ca_file: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
    # One object or one small list: a healthy API server answers in milliseconds. Together
    # they stay under wait_ready's 10 s heartbeat timeout, so a slow read is "not ready yet,
    # look again" rather than an attempt lost to the heartbeat timeout.
    connect_timeout: timedelta = timedelta(seconds=3)
    request_timeout: timedelta = timedelta(seconds=5)

    @property
    def timeouts(self) -> tuple[float, float]:
        return (self.connect_timeout.total_seconds(), self.request_timeout.total_seconds())


class KubernetesNotConfigured(Exception):
    pass


def client_retries() -> urllib3.Retry:
    """Refused or failed connections are tried twice more at once (nothing was sent);
    a request that was sent and timed out or lost its reply is never re-sent."""
    return urllib3.Retry(total=2, read=0, status=0, redirect=0)


def load_api_client(access: KubernetesAccess) -> client.ApiClient:
    """An ApiClient from, in order: the kubeconfig named in `access`, in-cluster config
    (KUBERNETES_SERVICE_HOST), KUBECONFIG or ~/.kube/config."""
    configuration = client.Configuration()
    try:
        if access.kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            InClusterConfigLoader(  # type: ignore[no-untyped-call]
                token_filename=str(access.token_file), cert_filename=str(access.ca_file)
            ).load_and_set(client_configuration=configuration)
        else:
            path = access.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            first = str(path).split(os.pathsep)[0]
            if not Path(first).expanduser().exists():
                raise KubernetesNotConfigured(
                    f"no Kubernetes configuration: {first} does not exist and the worker is not "
                    "in a cluster; set KUBECONFIG or the worker's kubeconfig setting"
                )
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(Path(first).expanduser()),
                context=access.context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError, ValueError) as err:
        raise KubernetesNotConfigured(f"bad Kubernetes configuration: {err}") from err
    configuration.retries = client_retries()  # read when the ApiClient builds its pool
    api = client.ApiClient(configuration)
    api.user_agent = USER_AGENT
    return api


def status_message(err: ApiException) -> str:
    """The Status message kube-apiserver sent, or the HTTP reason."""
    try:
        body = json.loads(err.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or err.reason or f"HTTP {err.status}")


def as_application_error(err: Exception, what: str) -> ApplicationError:
    """Sort a client error into retryable or not, with a type name the report shows."""
    if isinstance(err, ApiException):
        status = int(err.status or 0)
        message = f"{what}: {status} {status_message(err)}"
        if status in _NON_RETRYABLE_STATUS:
            return ApplicationError(message, type=_NON_RETRYABLE_STATUS[status], non_retryable=True)
        kind = K8S_CONFLICT if status == 409 else K8S_UNAVAILABLE
        return ApplicationError(message, type=kind)
    return ApplicationError(f"{what}: Kubernetes API unreachable: {err}", type=K8S_UNAVAILABLE)


RETRYABLE_TRANSPORT = (urllib3.exceptions.HTTPError, OSError, TimeoutError)


@contextmanager
def kube_errors(what: str) -> Iterator[None]:
    """Re-raise client errors as ApplicationErrors (retryable or not) naming the call."""
    try:
        yield
    except ApplicationError:
        raise
    except (ApiException, *RETRYABLE_TRANSPORT) as err:
        raise as_application_error(err, what) from err


def read_json(
    call: Callable[..., Any], *args: Any, timeout: tuple[float, float], **kwargs: Any
) -> JSONDict:
    """Read an object as the exact JSON the server sent (camelCase, unknown fields kept), so
    JSON-patch `test` ops compare against what is really stored."""
    response = call(*args, _preload_content=False, _request_timeout=timeout, **kwargs)
    data = json.loads(response.data)
    assert isinstance(data, dict)
    return data


def pointer(*parts: str | int) -> str:
    """A JSON pointer from path parts (escaping ~ and /, as in annotation keys)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def guarded_patch(
    what: str,
    read: Callable[[], JSONDict],
    plan: Callable[[JSONDict], JSONPatch],
    patch: Callable[[JSONPatch], Any],
    attempts: int = 4,
) -> tuple[JSONDict, bool]:
    """Read, plan a JSON patch whose `test` ops guard what was read, apply it. An empty plan
    means the object is already as wanted (a retried attempt): nothing is written. When the
    object changed between read and write (409, or 422 from a failed test op) read again."""
    for attempt in range(attempts):
        with kube_errors(f"{what} (read)"):
            current = read()
        ops = plan(current)
        if not ops:
            return current, False
        try:
            patch(ops)
        except ApiException as err:
            if err.status in (409, 422) and attempt < attempts - 1:
                continue
            raise as_application_error(err, what) from err
        except RETRYABLE_TRANSPORT as err:
            raise as_application_error(err, what) from err
        return current, True
    raise AssertionError("unreachable")  # pragma: no cover
