"""Identity merge rules (https://docs.mixpanel.com/docs/tracking-methods/id-management), pure and engine-independent.

An event may carry one *identity link*: a fact saying two distinct ids belong to one person. The engine
stores every link and turns the set of links into an id -> canonical id map with the functions here.
Both systems are defined over the *set* of links, replayed in event-time order with a deterministic
tie-break (`IdentityLink.order`), so the map does not depend on the order in which links arrived:
a backdated `/import` or a late mapping event gives the same answer as in-order arrival.

Simplified ID Merge (https://docs.mixpanel.com/docs/tracking-methods/id-management/identifying-users-simplified): a link comes from any event carrying both `$device_id` and `$user_id`. Each
device belongs to the user of its earliest link (first write wins, by event time, then the smaller user
id); users never merge with each other, so a cluster is one user plus its devices.

Original ID Merge (https://docs.mixpanel.com/docs/tracking-methods/id-management/identifying-users-original): links come from `$identify`, `$create_alias` and `$merge`, and are replayed in
order with Mixpanel's conditions; a link that breaks one is skipped silently (it may succeed in no other
order, since the replay order is fixed). The canonical id of a cluster is chosen by Mixpanel at random;
we choose deterministically: the canonical id of the cluster of the link's *primary* side survives
(`$identified_id`, the alias's target `distinct_id`, the first of `$merge`'s `$distinct_ids`), so in the
usual flows it is the user's own id, which is what an integration looks users up by when it finds a profile by its own customer id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mixhouse.domain.project import IdMerge

CLUSTER_CAP = 500  # ids per Original cluster (https://docs.mixpanel.com/docs/tracking-methods/id-management/identifying-users-original)
DEVICE_PREFIX = "$device:"
_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.IGNORECASE)


class LinkKind(StrEnum):
    DEVICE = "device"  # Simplified: an event with both $device_id and $user_id
    IDENTIFY = "$identify"
    ALIAS = "$create_alias"
    MERGE = "$merge"


# Same-millisecond links replay in this order, then by ids: deterministic, independent of arrival.
_KIND_RANK = {LinkKind.DEVICE: 0, LinkKind.IDENTIFY: 1, LinkKind.ALIAS: 2, LinkKind.MERGE: 3}


@dataclass(frozen=True)
class IdentityLink:
    """`primary` is the side whose cluster keeps its canonical id: the user id, `$identified_id`, the
    alias's `distinct_id`, or the first `$merge` id. `other` is the device's distinct id (`$device:D`),
    `$anon_id`, the alias, or the second `$merge` id."""

    kind: LinkKind
    time_ms: int
    primary: str
    other: str

    @property
    def order(self) -> tuple[int, int, str, str]:
        return (self.time_ms, _KIND_RANK[self.kind], self.primary, self.other)


class Failure(StrEnum):
    """Why an Original link did not merge (Mixpanel's `$failure_reason` is not documented verbatim)."""

    ANON_NOT_UUID4 = "$anon_id is not a UUID v4"
    ANON_ALREADY_MERGED = "$anon_id is already merged to another identified id"
    ALIAS_ALREADY_MAPPED = "alias already maps to another distinct id"
    CLUSTER_CAP = "the merged cluster would exceed 500 ids"


_ID_TYPES = (str, int)  # a tuple made once (a `str | int` union is built on every call)


def _id_value(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, _ID_TYPES):
        return None
    text = str(value)
    return text or None


def is_uuid4(value: str) -> bool:
    return bool(_UUID4.fullmatch(value))


def device_distinct_id(device_id: str) -> str:
    return DEVICE_PREFIX + device_id.removeprefix(DEVICE_PREFIX)


def identify_ids(props: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(identified id, anon id) of an `$identify`: the documented `$identified_id`/`$anon_id`, or what the
    browser SDK sends instead (`distinct_id`/`$anon_distinct_id`)."""
    identified = _id_value(props.get("$identified_id")) or _id_value(props.get("distinct_id"))
    anon = _id_value(props.get("$anon_id")) or _id_value(props.get("$anon_distinct_id"))
    return identified, anon


def merge_ids(props: Mapping[str, Any]) -> tuple[str, str] | None:
    ids = props.get("$distinct_ids")
    if not isinstance(ids, list) or len(ids) != 2:
        return None  # the schema says exactly two
    first, second = _id_value(ids[0]), _id_value(ids[1])
    if first is None or second is None:
        return None
    return first, second


def inferred_distinct_id(event: str, props: Mapping[str, Any]) -> str | None:
    """The distinct id of an Original identity event sent without one: `$identify` takes `$identified_id`
    (documented); `$merge` the first of `$distinct_ids` [I]."""
    if event == LinkKind.IDENTIFY:
        return _id_value(props.get("$identified_id"))
    if event == LinkKind.MERGE:
        ids = props.get("$distinct_ids")
        return _id_value(ids[0]) if isinstance(ids, list) and ids else None
    return None


def link_of(
    event: str, props: Mapping[str, Any], time_ms: int, id_merge: IdMerge, *, merge_allowed: bool
) -> IdentityLink | None:
    """The identity link an event carries in a project of the given system, if any.

    `merge_allowed`: the event came through `/import` with the project secret or a service account; `$merge`
    is honoured only then (https://developer.mixpanel.com/reference/identity-merge)."""
    if id_merge is IdMerge.SIMPLIFIED:
        # Any event name, the identity events included: only the two reserved properties count (https://docs.mixpanel.com/docs/tracking-methods/id-management/identifying-users-simplified).
        user, device = _id_value(props.get("$user_id")), _id_value(props.get("$device_id"))
        if user is None or device is None or device.removeprefix(DEVICE_PREFIX) == "":
            return None
        return IdentityLink(LinkKind.DEVICE, time_ms, user, device_distinct_id(device))
    if event == LinkKind.IDENTIFY:
        identified, anon = identify_ids(props)
        if identified is None or anon is None:
            return None
        return IdentityLink(LinkKind.IDENTIFY, time_ms, identified, anon)
    if event == LinkKind.ALIAS:
        target, alias = _id_value(props.get("distinct_id")), _id_value(props.get("alias"))
        if target is None or alias is None:
            return None
        return IdentityLink(LinkKind.ALIAS, time_ms, target, alias)
    if event == LinkKind.MERGE and merge_allowed:
        pair = merge_ids(props)
        return IdentityLink(LinkKind.MERGE, time_ms, pair[0], pair[1]) if pair else None
    return None


# -- Simplified ----------------------------------------------------------------------------------


def simplified_map(links: Iterable[IdentityLink]) -> dict[str, str]:
    """Device distinct id -> user id: each device goes to the user of its first link."""
    first: dict[str, IdentityLink] = {}
    for link in links:
        current = first.get(link.other)
        if current is None or link.order < current.order:
            first[link.other] = link
    return {device: link.primary for device, link in first.items() if device != link.primary}


def first_link(a: IdentityLink, b: IdentityLink) -> IdentityLink:
    """Of two links of the same device, the one that wins (first write, by event time then user id)."""
    return a if a.order <= b.order else b


# -- Original ------------------------------------------------------------------------------------


@dataclass
class _Cluster:
    canonical: str
    members: list[str]


@dataclass
class OriginalResolution:
    canonical: dict[str, str] = field(default_factory=dict)  # every id of a cluster of two or more
    failures: list[tuple[IdentityLink, Failure]] = field(default_factory=list)

    def mapping(self) -> dict[str, str]:
        """Only the ids that are not their own canonical id (what the store keeps)."""
        return {i: c for i, c in self.canonical.items() if i != c}


def resolve_original(links: Iterable[IdentityLink], *, cap: int = CLUSTER_CAP) -> OriginalResolution:
    clusters: dict[str, _Cluster] = {}  # id -> its cluster (only ids of clusters of two or more)

    def cluster(id_: str) -> _Cluster:
        return clusters.get(id_) or _Cluster(id_, [id_])

    out = OriginalResolution()
    for link in sorted(set(links), key=lambda lk: lk.order):
        if link.primary == link.other:
            continue
        keep, join = cluster(link.primary), cluster(link.other)
        if keep is join or link.other in keep.members:
            continue  # already one cluster: nothing to do, nothing failed
        failure: Failure | None = None
        if link.kind is LinkKind.IDENTIFY:
            if not is_uuid4(link.other.removeprefix(DEVICE_PREFIX)):
                failure = Failure.ANON_NOT_UUID4
            elif len(join.members) > 1:
                failure = Failure.ANON_ALREADY_MERGED
        elif link.kind is LinkKind.ALIAS and len(join.members) > 1:
            failure = Failure.ALIAS_ALREADY_MAPPED
        if failure is None and len(keep.members) + len(join.members) > cap:
            failure = Failure.CLUSTER_CAP
        if failure is not None:
            out.failures.append((link, failure))
            continue
        merged = _Cluster(keep.canonical, keep.members + join.members)
        for member in merged.members:
            clusters[member] = merged
    out.canonical = {member: c.canonical for member, c in clusters.items()}
    return out


def resolve(links: Iterable[IdentityLink]) -> dict[str, str]:
    """id -> canonical id for the ids that are not their own, whichever system the links come from."""
    listed = list(links)
    if listed and all(link.kind is LinkKind.DEVICE for link in listed):
        return simplified_map(listed)
    return resolve_original(link for link in listed if link.kind is not LinkKind.DEVICE).mapping()
