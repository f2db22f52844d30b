"""Building the contract's records, whichever contract version the bindings are of.

Contract 0.3.0 changed a model update's ``provider-location`` and ``provider-auth`` from
``option<string>`` to a ``field-update`` (keep / set / clear), made ``retype`` answer an
optional model update instead of a bool, and moved ``health-report`` into ``types``. The
helpers here take the same arguments under both, so a driver reads the same either way.
"""

from typing import Dict, List, Optional

from wit_world.imports import types

#: Whether the bindings are of contract 0.3 or later.
CONTRACT_0_3 = hasattr(types, "FieldUpdate_Set")


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


class _Clear:
    def __repr__(self) -> str:
        return "CLEAR"


#: Leave a recorded field as it is.
KEEP = _Keep()
#: Forget a recorded field (contract 0.3 and later).
CLEAR = _Clear()


def _field(name: str, update):
    if CONTRACT_0_3:
        if update is KEEP or update is None:
            return types.FieldUpdate_Keep()
        if update is CLEAR:
            return types.FieldUpdate_Clear()
        return types.FieldUpdate_Set(str(update))
    if update is KEEP or update is None:
        return None
    if update is CLEAR:
        raise ValueError(f"{name} cannot be cleared before contract 0.3.0")
    return str(update)


def model_update(
    location=KEEP,
    auth=KEEP,
    metadata: Optional[Dict[str, str]] = None,
    metadata_removed: Optional[List[str]] = None,
    pool: Optional[str] = None,
):
    """What the driver wants recorded about a volume or snapshot: ``location`` and
    ``auth`` are a string to set, :data:`KEEP` (the default) or :data:`CLEAR`;
    ``metadata`` is admin metadata to merge. ``metadata_removed`` and ``pool`` exist from
    contract 0.3.0 on and must stay empty before it."""
    meta = sorted((metadata or {}).items())
    if CONTRACT_0_3:
        return types.ModelUpdate(
            _field("location", location),
            _field("auth", auth),
            meta,
            list(metadata_removed or []),
            pool,
        )
    if metadata_removed or pool:
        raise ValueError("metadata_removed and pool need contract 0.3.0")
    return types.ModelUpdate(_field("location", location), _field("auth", auth), meta)


def retype_in_place(update=None):
    """``retype``'s answer for a volume changed in place (with an optional model update,
    which contract 0.2 cannot carry)."""
    if CONTRACT_0_3:
        return update if update is not None else model_update()
    return True


def retype_migrate():
    """``retype``'s answer asking the host to migrate the volume."""
    return None if CONTRACT_0_3 else False


def health_report(healthy: bool, detail: str = ""):
    if hasattr(types, "HealthReport"):
        return types.HealthReport(healthy, detail)
    from wit_world.exports import volume_driver_health

    return volume_driver_health.HealthReport(healthy, detail)


def value(v):
    """A Python value as the contract's loosely typed ``value``: str, bool, int, float, a
    list of str (or of int: an ``integers`` list from 0.3.0 on, decimal texts before)."""
    if isinstance(v, bool):
        return types.Value_Flag(v)
    if isinstance(v, int):
        return types.Value_Integer(v)
    if isinstance(v, float):
        return types.Value_Number(v)
    if isinstance(v, str):
        return types.Value_Text(v)
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            if CONTRACT_0_3:
                return types.Value_Integers(list(v))
            return types.Value_Texts([str(x) for x in v])
        return types.Value_Texts([str(x) for x in v])
    raise TypeError(f"no contract value for {type(v).__name__}")


def properties(d: Dict[str, object]):
    return [(k, value(v)) for k, v in d.items()]


def connection_info(driver_volume_type: str, data: Dict[str, object]):
    """Cinder's connection info: ``{"driver_volume_type": …, "data": {…}}``."""
    return types.ConnectionInfo(driver_volume_type, properties(data))


def pool_stats(
    name: str,
    total_capacity_gb: float,
    free_capacity_gb: float,
    provisioned_capacity_gb: Optional[float] = None,
    allocated_capacity_gb: Optional[float] = None,
    reserved_percentage: int = 0,
    max_over_subscription_ratio: float = 20.0,
    thin: bool = True,
    multiattach: bool = False,
    capabilities: Optional[Dict[str, object]] = None,
):
    """One pool's report, in Cinder's stats keys."""
    return types.PoolStats(
        name,
        float(total_capacity_gb),
        float(free_capacity_gb),
        None if provisioned_capacity_gb is None else float(provisioned_capacity_gb),
        None if allocated_capacity_gb is None else float(allocated_capacity_gb),
        int(reserved_percentage),
        float(max_over_subscription_ratio),
        thin,
        not thin,
        multiattach,
        properties(capabilities or {}),
    )


def volume_stats(backend_name: str, vendor: str, version: str, protocol: str, pools):
    """``get_volume_stats``'s answer."""
    return types.VolumeStats(backend_name, vendor, version, protocol, list(pools))


def wants_local(connector) -> bool:
    """The host asks for the volume's local file or device (``extra`` has ``local =
    true``) when a target driver is to export it: answer
    ``connection_info("local", {"device_path": PATH})``."""
    return any(
        k == "local" and isinstance(v, types.Value_Flag) and v.value for k, v in connector.extra
    )
