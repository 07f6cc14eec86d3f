"""CRDs while following: a watch on CustomResourceDefinitions (`CrdWatch`, its
own thread); after each change, discovery again with the journal's selection
(`Replan`), a follower for each resource that is new (from a resync) and none
for one whose CRD was deleted (its follower ends when the server stops serving
it; it comes back only once discovery stopped listing it in between).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from kstream.cluster.stream import Cancelled, Reader, StreamOptions, Unit
from kstream.dataclass import dataclass
from kstream.errors import ApiError, AuthError, KstreamError, StreamError, TLSError
from kstream.journal.follower import Fatal, Item, NewUnit, UnitFollow
from kstream.journal.format import now_time
from kstream.resources import Resource
from kstream.selector import Scope

if TYPE_CHECKING:
    from kstream.transform import TransformOptions

CRDS = Resource(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    False,
    frozenset(("list", "watch")),
)
RECHECK = 2.0  # seconds: discovery again after a CRD change (serving lags establishing)


@dataclass
class Replan:
    """Discovery again with the follow's own selection (after a CRD changed)."""

    reader: Reader
    scope: Scope
    skip_secrets: bool
    topts: TransformOptions

    def units(self) -> list[Unit]:
        from kstream.cluster.plan import make_plan

        s = self.scope
        return make_plan(
            self.reader.client, s.resources, s.exclude, s.namespaces, self.skip_secrets
        ).units

    def make_follow(self, unit: Unit) -> UnitFollow:
        from kstream.transform import make_transform

        return UnitFollow(unit, "", make_transform(unit.resource, self.topts))


class CrdWatch:
    """The CRD watch of a follow: new units go to the writer's thread as NewUnit."""

    def __init__(
        self,
        reader: Reader,
        replan: Callable[[], list[Unit]],
        make_follow: Callable[[Unit], UnitFollow],
        units: Callable[[], list[UnitFollow]],
        put: Callable[[Item], None],
        watch_timeout: int,
    ) -> None:
        self.reader = Reader(reader.client, StreamOptions(), reader.cancel)
        self.cancel = reader.cancel
        self.replan = replan
        self.make_follow = make_follow
        self.units = units  # a copy of the follow's units, taken under its lock
        self.put = put
        self.watch_timeout = watch_timeout
        self.discoveries = 0
        self._returned: set[str] = set()  # ended, then gone from discovery

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self._thread, name="follow-crds", daemon=True)
        t.start()
        return t

    def _thread(self) -> None:
        try:
            self._watch()
        except Cancelled:
            return
        except BaseException as e:  # credentials rejected, TLS, or a bug
            self.put(Fatal(e))

    def _watch(self) -> None:
        """Watch CRDs; after each change, discovery again (twice: a new CRD is
        served a moment after it is established) and a follower for each new unit."""
        r = self.reader
        unit = Unit(CRDS)
        rv = ""
        attempt = 0
        while not self.cancel.is_set():
            try:
                if not rv:
                    page = r.client.get_json(
                        CRDS.path(None), what="list CRDs", query=[("limit", "1")]
                    )
                    rv = str((page.get("metadata") or {}).get("resourceVersion") or "")
                    self._replan()  # what changed before the watch began
                for typ, _obj, new_rv, _st in r.watch_from(unit, rv, self.watch_timeout):
                    rv = new_rv or rv
                    attempt = 0
                    if typ != "BOOKMARK":
                        self._replan()
                        r.sleep(RECHECK)
                        self._replan()
                continue
            except (Cancelled, AuthError, TLSError):
                raise
            except StreamError as e:
                if e.status == 410:
                    rv = ""
                    continue
            except ApiError as e:
                if e.status in (403, 404):  # CRDs not readable: the plan stays as it is
                    return
                if e.status == 410:
                    rv = ""
                    continue
            except KstreamError:
                pass
            if self.cancel.is_set():
                return
            attempt += 1
            r.sleep(r.backoff(min(attempt, 8), None))

    def _replan(self) -> None:
        try:
            units = self.replan()
        except (AuthError, TLSError):
            raise
        except KstreamError:
            return  # discovery failed this time; the next change tries again
        self.discoveries += 1
        known = self.units()
        active = {uf.key for uf in known if uf.state != "ended"}
        ended = {uf.key for uf in known if uf.state == "ended"}
        fresh = [self.make_follow(u) for u in units]
        listed = {uf.key for uf in fresh}
        # an ended resource comes back only after discovery stopped listing it
        self._returned |= ended - listed
        followed = active | (ended - self._returned)
        for uf in fresh:
            if uf.key not in followed:
                self._returned.discard(uf.key)
                uf.needs_resync = True
                uf.notes.append(f"{now_time()}: new resource: resync")
                followed.add(uf.key)
                self.put(NewUnit(uf))
