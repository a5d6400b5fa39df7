"""The three patch types kube-apiserver accepts, applied with its semantics.

kmock merges every PATCH as a plain JSON merge: a strategic-merge patch of one container then
replaces the whole `containers` list (dropping images, env and sidecars) and still answers 200.
Here a strategic merge merges lists by their merge key (containers and env by name, ...), a
JSON patch runs its `test` ops, and a patch that cannot apply raises PatchError (422).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonpatch
import jsonpointer

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

# patchMergeKey of the list fields the Kubernetes API types declare (the ones this project's
# objects hold); any other list is replaced whole, as kube-apiserver does.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "resourceClaims": "name",
}
PRIMITIVE_MERGE_LISTS = frozenset({"finalizers"})


class PatchError(ValueError):
    """A patch that kube-apiserver would refuse with 422 (or 400 for a malformed body)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, null deletes, everything else (lists too) replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_key_for(field: str, items: list[Any]) -> str | None:
    if field == "ports":  # containers[].ports merge on containerPort, Service ports on port
        sample = next((item for item in items if isinstance(item, Mapping)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    existing = list(current) if isinstance(current, list) else []
    if field in PRIMITIVE_MERGE_LISTS:
        return existing + [item for item in patch if item not in existing]
    key = _merge_key_for(field, [*existing, *patch])
    if key is None or not all(isinstance(item, Mapping) for item in patch):
        return copy.deepcopy(patch)
    if any(isinstance(item, Mapping) and item.get("$patch") == "replace" for item in patch):
        return [dict(i) for i in patch if not (isinstance(i, Mapping) and "$patch" in i)]
    result = [copy.deepcopy(item) for item in existing]
    for item in patch:
        if key not in item:
            raise PatchError(f"map: {dict(item)} does not contain declared merge key: {key}")
        index = next(
            (
                i
                for i, old in enumerate(result)
                if isinstance(old, Mapping) and old.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge({}, item))
        else:
            result[index] = strategic_merge(result[index], item)
    return result


def strategic_merge(target: Any, patch: Mapping[str, Any]) -> dict[str, Any]:
    """Strategic merge patch: like a merge patch, but lists with a merge key merge by item."""
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if key.startswith("$"):  # $setElementOrder/..., $retainKeys: ordering hints only
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            elif key in result and not isinstance(result[key], Mapping | None):
                raise PatchError(f"cannot patch {key!r}: it is not an object")
            else:
                result[key] = strategic_merge(result.get(key), value)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def json_patch(target: Mapping[str, Any], ops: Any) -> dict[str, Any]:
    """RFC 6902 with its `test` op: a failed test or a missing path is a 422, like kube."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations", status=400)
    try:
        patched = jsonpatch.JsonPatch(ops).apply(copy.deepcopy(dict(target)))
    except jsonpatch.JsonPatchTestFailed as err:
        raise PatchError(
            f"the server rejected our request due to an error in our request: {err}"
        ) from None
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as err:
        raise PatchError(
            f"the server rejected our request due to an error in our request: {err}"
        ) from None
    if not isinstance(patched, dict):
        raise PatchError("a JSON patch must leave an object")
    return patched


def apply_patch(content_type: str, target: Mapping[str, Any], body: Any) -> dict[str, Any]:
    """Apply a PATCH body by its Content-Type; anything else is 415 like kube-apiserver."""
    media = content_type.split(";")[0].strip().lower()
    if media == JSON_PATCH:
        return json_patch(target, body)
    if not isinstance(body, Mapping):
        raise PatchError("the patch body must be a JSON object", status=400)
    if media == MERGE_PATCH:
        result = merge_patch(target, body)
        assert isinstance(result, dict)
        return result
    if media == STRATEGIC_MERGE_PATCH:
        return strategic_merge(target, body)
    raise PatchError(
        "the body of the request was in an unknown format - accepted media types: "
        + ", ".join(PATCH_TYPES),
        status=415,
    )
