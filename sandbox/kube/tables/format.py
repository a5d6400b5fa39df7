"""What every printer shares: the Table's columns, kube-apiserver's age (HumanDuration),
label and selector formatting."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NamedTuple

JSONDict = dict[str, Any]
Obj = Mapping[str, Any]
TABLE_GROUP = "meta.k8s.io"
TABLE_API_VERSION = f"{TABLE_GROUP}/v1"
INCLUDE_OBJECT = MappingProxyType(
    {"": "Metadata", "Metadata": "Metadata", "Object": "Object", "None": "None"}
)
TERMINAL_PHASES = ("Succeeded", "Failed")
ACCESS_MODES = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
                ("ReadWriteOncePod", "RWOP"))  # fmt: skip
STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
MORE_AFTER = 3  # formatEndpoints lists three addresses, then "+ N more..."
HPA_METRICS_SHOWN = 2


class TableError(ValueError):
    """A Table request kube-apiserver refuses with 400 (an unknown includeObject)."""


class Column(NamedTuple):
    """One TableColumnDefinition; immutable, so the printers below can be shared."""

    name: str
    description: str
    type: str = "string"
    format: str = ""
    priority: int = 0

    def definition(self) -> JSONDict:
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description, "priority": self.priority}  # fmt: skip


# The descriptions kube-apiserver sends: the API's own field documentation (SwaggerDoc).
NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
CREATED_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
CONTAINERS_DOC = "Names of each container in the template."
IMAGES_DOC = "Images referenced by each container in the template."
READY_REPLICAS_DOC = "Number of the pod with ready state"

NAME = Column("Name", NAME_DOC, format="name")
AGE = Column("Age", CREATED_DOC)
CONTAINERS = Column("Containers", CONTAINERS_DOC, priority=1)
IMAGES = Column("Images", IMAGES_DOC, priority=1)


# ---------------------------------------------------------------------- time


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration: about two significant figures, so that a column
    of ages stays narrow ("5s", "2m3s", "14m", "3h5m", "2d", "2y45d"). Less than two seconds
    in the future is clock skew and reads 0s; further is <invalid>."""
    whole = int(seconds)  # truncates toward zero, as Go's int(d.Seconds()) does
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes, hours = whole // 60, whole // 3600
    if minutes < 10:
        return f"{minutes}m{whole % 60}s" if whole % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    return _human_days(hours)


def _human_days(hours: int) -> str:
    """HumanDuration from eight hours on."""
    days, years = hours // 24, hours // 24 // 365
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 Time or MicroTime as the API writes them; None when unset (Go's zero time)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def since(value: Any, now: datetime) -> str:
    """translateTimestampSince: how long ago, or <unknown> for an unset time."""
    moment = parse_time(value)
    if moment is None:
        return "<unknown>"
    return human_duration((now - moment).total_seconds())


def age(obj: Obj, now: datetime) -> str:
    return since(_meta(obj).get("creationTimestamp"), now)


# ---------------------------------------------------------------------- small formatters


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name") or "")


def format_labels(labels: Mapping[str, Any] | None) -> str:
    """labels.FormatLabels: `k=v` sorted by key, comma-joined; <none> when empty."""
    text = ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))
    return text or "<none>"


def _requirement(expression: Obj) -> str | None:
    """One matchExpressions entry as labels.Requirement.String() writes it; None if invalid."""
    key, operator = str(expression.get("key") or ""), expression.get("operator")
    values = ",".join(sorted(str(v) for v in expression.get("values") or []))
    if operator in ("In", "NotIn") and values:
        return f"{key} {operator.lower()} ({values})"
    if operator == "Exists" and not values:
        return key
    if operator == "DoesNotExist" and not values:
        return f"!{key}"
    return None


def selector_string(selector: Obj | None) -> str | None:
    """metav1.LabelSelectorAsSelector(...).String(): requirements sorted by key; "" for a
    missing or empty selector; None for one kube-apiserver cannot parse."""
    if not selector:
        return ""
    found = [(str(k), f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        text = _requirement(expression)
        if text is None:
            return None
        found.append((str(expression.get("key") or ""), text))
    return ",".join(text for _, text in sorted(found, key=lambda pair: pair[0]))


def format_selector(selector: Obj | None) -> str:
    """metav1.FormatLabelSelector: <none> when it selects everything, <error> if invalid."""
    text = selector_string(selector)
    if text is None:
        return "<error>"
    return text or "<none>"


def container_cells(template_spec: Obj) -> list[str]:
    """layoutContainerCells: the template's container names and images, comma-joined."""
    containers = template_spec.get("containers") or []
    names = ",".join(str(c.get("name") or "") for c in containers)
    images = ",".join(str(c.get("image") or "") for c in containers)
    return [names, images]


def _template_spec(obj: Obj) -> Obj:
    template: Obj = (obj.get("spec") or {}).get("template") or {}
    return template.get("spec") or {}


def _replicas(obj: Obj) -> int:
    """spec.replicas as stored; kube-apiserver defaults a missing one to 1."""
    replicas = (obj.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def no_conditions(obj: Obj) -> list[JSONDict]:
    return []


class Printer(NamedTuple):
    """A type's columns, the function that writes one object's cells (one per column), and
    the row conditions it sets (only a finished pod has any)."""

    columns: tuple[Column, ...]
    cells: Callable[[Obj, datetime], list[Any]]
    conditions: Callable[[Obj], list[JSONDict]] = no_conditions
