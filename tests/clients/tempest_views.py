#!/usr/bin/env python3
"""Drives tempest.lib's volume v3 service clients against a running Ashlar and reports,
for each call, whether the response validated against tempest's strict schema for the
microversion asked for.

tempest.lib needs Keystone only to find the endpoint and the token; `NoAuthProvider`
gives it both from the command line (Cinder's noauth token `user:project`).

Usage: tempest_views.py BASE_URL MICROVERSION  (e.g. http://127.0.0.1:8776 3.71)
Prints one JSON object: {"results": [{"call", "role", "ok", "error"}...]}.
"""

import copy
import json
import sys
import time
import traceback
import uuid

from tempest.lib.api_schema.response.volume import snapshots as snapshot_schemas
from tempest.lib.services.volume import base_client
from tempest.lib.services.volume.v3 import (
    attachments_client,
    availability_zone_client,
    backups_client,
    limits_client,
    messages_client,
    qos_client,
    quota_classes_client,
    quotas_client,
    scheduler_stats_client,
    services_client,
    capabilities_client,
    snapshots_client,
    transfers_client,
    types_client,
    versions_client,
    volumes_client,
)

BASE = sys.argv[1].rstrip("/")
VERSION = sys.argv[2]
# Projects and users are UUID-shaped, as Keystone's are.
PROJECT = "7a4d3c1e9b2f4e6a8c0d1e2f3a4b5c6d"
OTHER_PROJECT = "0f1e2d3c4b5a49788796a5b4c3d2e1f0"
MEMBER = "5b6c7d8e9f0a41b2c3d4e5f6a7b8c9d0"
ADMIN = "admin"


class Credentials:
    def __init__(self, user, project):
        self.user_id = user
        self.username = user
        self.tenant_id = project
        self.project_id = project
        self.tenant_name = project
        self.password = None


class NoAuthProvider:
    """What tempest's RestClient asks of an auth provider, for Cinder's noauth."""

    def __init__(self, user, project):
        self.credentials = Credentials(user, project)
        self.token = f"{user}:{project}"
        self.project = project

    def base_url(self, filters=None, auth_data=None):
        if filters and filters.get("skip_path"):
            return BASE
        return f"{BASE}/v3/{self.project}"

    def get_token(self):
        return self.token

    def auth_request(self, method, url, headers=None, body=None, filters=None):
        headers = dict(headers or {})
        headers["X-Auth-Token"] = self.token
        return f"{self.base_url(filters)}/{url}", headers, body


def at_least(minor):
    return tuple(map(int, VERSION.split("."))) >= (3, minor)


def versioned(cls):
    """Several of tempest's volume clients (snapshots, types, quotas, limits, qos, zones,
    pools, capabilities) are plain RestClients that never send a microversion, so they
    only ever see 3.0. At a higher microversion this sends it for them too, so that what
    Ashlar answers there is validated as well."""
    if issubclass(cls, base_client.BaseClient):
        return cls

    class Versioned(cls):
        def get_headers(self, accept_type=None, send_type=None):
            headers = super().get_headers(accept_type=accept_type, send_type=send_type)
            if base_client.VOLUME_MICROVERSION:
                headers["OpenStack-API-Version"] = f"volume {base_client.VOLUME_MICROVERSION}"
            return headers

    return Versioned


def fill_schema_gaps():
    """tempest 47's schemas lag Cinder in two places; these add what Cinder's own view
    builders send, and nothing else:
    - the snapshot schemas predate the microversions: Cinder's snapshot view adds
      `group_snapshot_id` at 3.14, `user_id` at 3.41 and `consumes_quota` at 3.65
      (cinder/api/v3/views/snapshots.py);
    - tempest's VolumesClient.update_volume validates against the 3.0 schema whatever the
      microversion (it reads the module `schema`, not get_schema()), while Cinder answers
      an update with the same view as a create (views.volumes.detail): an update is held
      to tempest's create schema of its microversion."""
    added = {}
    if at_least(14):
        added["group_snapshot_id"] = {"type": ["string", "null"], "format": "uuid"}
    if at_least(41):
        added["user_id"] = {"type": "string"}
    if at_least(65):
        added["consumes_quota"] = {"type": "boolean"}
    for schema in (snapshot_schemas.common_snapshot_schema,
                   snapshot_schemas.common_snapshot_detail_schema):
        schema["properties"].update(added)
    at_version = volumes_client.VolumesClient.get_schema(
        None, volumes_client.VolumesClient.schema_versions_info)
    update = copy.deepcopy(at_version.create_volume)
    update["status_code"] = [200]
    volumes_client.schema.update_volume = update


def clients(user, project):
    auth = NoAuthProvider(user, project)

    def make(cls):
        client = versioned(cls)(auth, "volumev3", "RegionOne", build_interval=0.05,
                                build_timeout=60)
        return client

    class C:
        volumes = make(volumes_client.VolumesClient)
        snapshots = make(snapshots_client.SnapshotsClient)
        types = make(types_client.TypesClient)
        attachments = make(attachments_client.AttachmentsClient)
        backups = make(backups_client.BackupsClient)
        zones = make(availability_zone_client.AvailabilityZoneClient)
        pools = make(scheduler_stats_client.SchedulerStatsClient)
        messages = make(messages_client.MessagesClient)
        versions = make(versions_client.VersionsClient)
        limits = make(limits_client.LimitsClient)
        quotas = make(quotas_client.QuotasClient)
        quota_classes = make(quota_classes_client.QuotaClassesClient)
        qos = make(qos_client.QosSpecsClient)
        transfers = make(transfers_client.TransfersClient)
        transfers_v355 = make(transfers_client.TransfersV355Client)
        services = make(services_client.ServicesClient)
        capabilities = make(capabilities_client.CapabilitiesClient)

    return C


results = []


def call(role, label, fn, /, *args, **kwargs):
    try:
        body = fn(*args, **kwargs)
        results.append({"call": label, "role": role, "ok": True, "error": None})
        return body
    except Exception as e:  # every failure is reported, none stops the run
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        results.append({"call": label, "role": role, "ok": False, "error": detail[:2000]})
        return None


def wait_status(client, show, key, rid, wanted):
    deadline = time.time() + 60
    while time.time() < deadline:
        body = show(rid)[key]
        if body["status"] == wanted:
            return body
        time.sleep(0.05)
    raise TimeoutError(f"{key} {rid} never became {wanted}")


def volume_family(role, c, admin):
    v = call(role, "create_volume", c.volumes.create_volume, size=1, name=f"tv-{role}")
    if v is None:
        return
    vid = v["volume"]["id"]
    wait_status(c, c.volumes.show_volume, "volume", vid, "available")
    call(role, "show_volume", c.volumes.show_volume, vid)
    call(role, "list_volumes", c.volumes.list_volumes)
    call(role, "list_volumes_detail", c.volumes.list_volumes, detail=True)
    call(role, "update_volume", c.volumes.update_volume, vid, name=f"tv-{role}-renamed")
    call(role, "create_volume_metadata", c.volumes.create_volume_metadata, vid, {"a": "1"})
    call(role, "show_volume_metadata", c.volumes.show_volume_metadata, vid)
    call(role, "update_volume_metadata", c.volumes.update_volume_metadata, vid, {"b": "2"})
    call(role, "show_volume_metadata_item", c.volumes.show_volume_metadata_item, vid, "b")
    call(role, "update_volume_metadata_item", c.volumes.update_volume_metadata_item,
         vid, "b", {"b": "3"})
    call(role, "delete_volume_metadata_item", c.volumes.delete_volume_metadata_item, vid, "b")
    call(role, "set_bootable_volume", c.volumes.set_bootable_volume, vid, bootable=True)
    call(role, "update_volume_readonly", c.volumes.update_volume_readonly, vid, readonly=True)
    call(role, "update_volume_readonly_off", c.volumes.update_volume_readonly, vid,
         readonly=False)
    call(role, "update_volume_image_metadata", c.volumes.update_volume_image_metadata,
         vid, image_name="cirros", os_distro="cirros")
    call(role, "show_volume_image_metadata", c.volumes.show_volume_image_metadata, vid)
    call(role, "show_volume_with_image_metadata", c.volumes.show_volume, vid)
    call(role, "delete_volume_image_metadata", c.volumes.delete_volume_image_metadata,
         vid, "os_distro")
    call(role, "extend_volume", c.volumes.extend_volume, vid, new_size=2)
    wait_status(c, c.volumes.show_volume, "volume", vid, "available")
    if at_least(12):
        call(role, "show_volume_summary", c.volumes.show_volume_summary)

    s = call(role, "create_snapshot", c.snapshots.create_snapshot, volume_id=vid,
             name=f"ts-{role}")
    if s is not None:
        sid = s["snapshot"]["id"]
        wait_status(c, c.snapshots.show_snapshot, "snapshot", sid, "available")
        call(role, "show_snapshot", c.snapshots.show_snapshot, sid)
        call(role, "list_snapshots", c.snapshots.list_snapshots)
        call(role, "list_snapshots_detail", c.snapshots.list_snapshots, detail=True)
        call(role, "update_snapshot", c.snapshots.update_snapshot, sid, name="renamed")
        call(role, "create_snapshot_metadata", c.snapshots.create_snapshot_metadata, sid,
             {"k": "v"})
        call(role, "show_snapshot_metadata", c.snapshots.show_snapshot_metadata, sid)
        call(role, "update_snapshot_metadata", c.snapshots.update_snapshot_metadata, sid,
             metadata={"k2": "v2"})
        call(role, "show_snapshot_metadata_item", c.snapshots.show_snapshot_metadata_item,
             sid, "k2")
        call(role, "update_snapshot_metadata_item",
             c.snapshots.update_snapshot_metadata_item, sid, "k2", meta={"k2": "v3"})
        call(role, "delete_snapshot_metadata_item",
             c.snapshots.delete_snapshot_metadata_item, sid, "k2")
        if admin:
            call(role, "reset_snapshot_status", c.snapshots.reset_snapshot_status, sid,
                 "available")
        call(role, "delete_snapshot", c.snapshots.delete_snapshot, sid)
        c.snapshots.wait_for_resource_deletion(sid)

    # A volume made from another: the clone's create view.
    clone = call(role, "create_volume_clone", c.volumes.create_volume, size=2,
                 source_volid=vid)
    if clone is not None:
        cid = clone["volume"]["id"]
        wait_status(c, c.volumes.show_volume, "volume", cid, "available")
        if admin:
            call(role, "reset_volume_status", c.volumes.reset_volume_status, cid,
                 status="error")
            call(role, "force_delete_volume", c.volumes.force_delete_volume, cid)
        else:
            call(role, "delete_volume_clone", c.volumes.delete_volume, cid)
        c.volumes.wait_for_resource_deletion(cid)

    call(role, "delete_volume", c.volumes.delete_volume, vid)
    c.volumes.wait_for_resource_deletion(vid)


def attach_family(role, c, admin):
    vid = c.volumes.create_volume(size=1, name=f"ta-{role}")["volume"]["id"]
    wait_status(c, c.volumes.show_volume, "volume", vid, "available")
    call(role, "reserve_volume", c.volumes.reserve_volume, vid)
    call(role, "unreserve_volume", c.volumes.unreserve_volume, vid)
    call(role, "attach_volume", c.volumes.attach_volume, vid,
         instance_uuid=str(uuid.uuid4()), mountpoint="/dev/vdb")
    shown = wait_status(c, c.volumes.show_volume, "volume", vid, "in-use")
    call(role, "show_volume_attached", c.volumes.show_volume, vid)
    call(role, "list_volumes_detail_attached", c.volumes.list_volumes, detail=True)
    attachment_id = shown["attachments"][0]["attachment_id"]
    call(role, "detach_volume", c.volumes.detach_volume, vid, attachment_id=attachment_id)
    wait_status(c, c.volumes.show_volume, "volume", vid, "available")
    if at_least(27):
        body = {"attachment": {"volume_uuid": vid, "instance_uuid": str(uuid.uuid4()),
                               "connector": {"host": "compute-1", "initiator": "iqn.x"}}}
        resp, raw = c.attachments.post("attachments", json.dumps(body))
        aid = json.loads(raw)["attachment"]["id"]
        call(role, "show_attachment", c.attachments.show_attachment, aid)
        call(role, "delete_attachment", c.attachments.delete_attachment, aid)
        wait_status(c, c.volumes.show_volume, "volume", vid, "available")
    call(role, "delete_volume_detached", c.volumes.delete_volume, vid)
    c.volumes.wait_for_resource_deletion(vid)


def transfer_family(role, c, admin):
    taker = clients(MEMBER, OTHER_PROJECT)
    paths = [("os-volume-transfer", c.transfers, taker.transfers)]
    if at_least(55):
        paths.append(("volume-transfers", c.transfers_v355, taker.transfers_v355))
    for path, giver, receiver in paths:
        vid = c.volumes.create_volume(size=1, name=f"tt-{role}")["volume"]["id"]
        wait_status(c, c.volumes.show_volume, "volume", vid, "available")
        t = call(role, f"create_volume_transfer {path}", giver.create_volume_transfer,
                 volume_id=vid, name="handover")
        if t is None:
            continue
        tid = t["transfer"]["id"]
        call(role, f"show_volume_transfer {path}", giver.show_volume_transfer, tid)
        call(role, f"list_volume_transfers {path}", giver.list_volume_transfers)
        call(role, f"list_volume_transfers_detail {path}", giver.list_volume_transfers,
             detail=True)
        call(role, f"accept_volume_transfer {path}", receiver.accept_volume_transfer, tid,
             auth_key=t["transfer"]["auth_key"])
        wait_status(taker, taker.volumes.show_volume, "volume", vid, "available")
        # And a second one, cancelled.
        vid2 = c.volumes.create_volume(size=1)["volume"]["id"]
        wait_status(c, c.volumes.show_volume, "volume", vid2, "available")
        t2 = giver.create_volume_transfer(volume_id=vid2)["transfer"]["id"]
        call(role, f"delete_volume_transfer {path}", giver.delete_volume_transfer, t2)
        wait_status(c, c.volumes.show_volume, "volume", vid2, "available")
        for client, volume in ((taker, vid), (c, vid2)):
            client.volumes.delete_volume(volume)
            client.volumes.wait_for_resource_deletion(volume)


def service_family(role, c, admin):
    if not admin:
        return
    services = call(role, "list_services", c.services.list_services)
    call(role, "list_services_volume", c.services.list_services, binary="cinder-volume")
    if services is None:
        return
    volume = next(s for s in services["services"] if s["binary"] == "cinder-volume")
    call(role, "disable_log_reason", c.services.disable_log_reason, host=volume["host"],
         binary="cinder-volume", disabled_reason="maintenance")
    call(role, "disable_service", c.services.disable_service, host=volume["host"],
         binary="cinder-volume")
    call(role, "enable_service", c.services.enable_service, host=volume["host"],
         binary="cinder-volume")
    call(role, "show_backend_capabilities", c.capabilities.show_backend_capabilities,
         volume["host"])


def type_family(role, c, admin):
    call(role, "list_volume_types", c.types.list_volume_types)
    call(role, "show_default_volume_type", c.types.show_default_volume_type)
    if not admin:
        return
    t = call(role, "create_volume_type", c.types.create_volume_type,
             name=f"tt-{uuid.uuid4().hex[:8]}", extra_specs={"volume_backend_name": "x"})
    if t is None:
        return
    tid = t["volume_type"]["id"]
    call(role, "show_volume_type", c.types.show_volume_type, tid)
    call(role, "update_volume_type", c.types.update_volume_type, tid, description="d")
    call(role, "list_volume_types_extra_specs", c.types.list_volume_types_extra_specs, tid)
    call(role, "create_volume_type_extra_specs", c.types.create_volume_type_extra_specs,
         tid, {"k": "v"})
    call(role, "show_volume_type_extra_specs", c.types.show_volume_type_extra_specs, tid, "k")
    call(role, "update_volume_type_extra_specs", c.types.update_volume_type_extra_specs,
         tid, "k", {"k": "w"})
    call(role, "delete_volume_type_extra_specs", c.types.delete_volume_type_extra_specs,
         tid, "k")
    call(role, "delete_volume_type", c.types.delete_volume_type, tid)
    # A private type, given to the member's project and taken back.
    t = call(role, "create_volume_type private", c.types.create_volume_type,
             name=f"tp-{uuid.uuid4().hex[:8]}", **{"os-volume-type-access:is_public": False})
    if t is None:
        return
    tid = t["volume_type"]["id"]
    call(role, "add_type_access", c.types.add_type_access, tid, project=PROJECT)
    call(role, "list_type_access", c.types.list_type_access, tid)
    call(role, "remove_type_access", c.types.remove_type_access, tid, project=PROJECT)
    call(role, "delete_volume_type private", c.types.delete_volume_type, tid)


def qos_family(role, c, admin):
    if not admin:
        return
    q = call(role, "create_qos", c.qos.create_qos, name=f"tq-{uuid.uuid4().hex[:8]}",
             consumer="both", total_iops_sec="100")
    t = call(role, "create_volume_type for qos", c.types.create_volume_type,
             name=f"tq-{uuid.uuid4().hex[:8]}")
    if q is None or t is None:
        return
    qid = q["qos_specs"]["id"]
    tid = t["volume_type"]["id"]
    call(role, "show_qos", c.qos.show_qos, qid)
    call(role, "list_qos", c.qos.list_qos)
    call(role, "set_qos_key", c.qos.set_qos_key, qid, read_iops_sec="10")
    call(role, "unset_qos_key", c.qos.unset_qos_key, qid, ["read_iops_sec"])
    call(role, "associate_qos", c.qos.associate_qos, qid, tid)
    call(role, "show_association_qos", c.qos.show_association_qos, qid)
    call(role, "show_volume_type with qos", c.types.show_volume_type, tid)
    call(role, "disassociate_qos", c.qos.disassociate_qos, qid, tid)
    call(role, "associate_qos again", c.qos.associate_qos, qid, tid)
    call(role, "disassociate_all_qos", c.qos.disassociate_all_qos, qid)
    call(role, "delete_qos", c.qos.delete_qos, qid)
    call(role, "delete_volume_type for qos", c.types.delete_volume_type, tid)


def backup_family(role, c, admin):
    vid = c.volumes.create_volume(size=1, name=f"tb-{role}")["volume"]["id"]
    wait_status(c, c.volumes.show_volume, "volume", vid, "available")
    kwargs = {"volume_id": vid, "name": f"tb-{role}"}
    if at_least(43):
        kwargs["metadata"] = {"k": "v"}
    b = call(role, "create_backup", c.backups.create_backup, **kwargs)
    if b is None:
        return
    bid = b["backup"]["id"]
    wait_status(c, c.backups.show_backup, "backup", bid, "available")
    call(role, "show_backup", c.backups.show_backup, bid)
    call(role, "list_backups", c.backups.list_backups)
    call(role, "list_backups_detail", c.backups.list_backups, detail=True)
    if at_least(9):
        call(role, "update_backup", c.backups.update_backup, bid, name="renamed",
             description="d")
    inc = call(role, "create_backup incremental", c.backups.create_backup, volume_id=vid,
               incremental=True)
    if inc is not None:
        iid = inc["backup"]["id"]
        wait_status(c, c.backups.show_backup, "backup", iid, "available")
        call(role, "show_backup incremental", c.backups.show_backup, iid)
        call(role, "delete_backup incremental", c.backups.delete_backup, iid)
        c.backups.wait_for_resource_deletion(iid)
    r = call(role, "restore_backup", c.backups.restore_backup, bid, name=f"tr-{role}")
    if r is not None:
        rid = r["restore"]["volume_id"]
        wait_status(c, c.backups.show_backup, "backup", bid, "available")
        wait_status(c, c.volumes.show_volume, "volume", rid, "available")
        c.volumes.delete_volume(rid)
        c.volumes.wait_for_resource_deletion(rid)
    if admin:
        record = call(role, "export_backup", c.backups.export_backup, bid)
        call(role, "reset_backup_status", c.backups.reset_backup_status, bid, "error")
        call(role, "delete_backup errored", c.backups.delete_backup, bid)
        c.backups.wait_for_resource_deletion(bid)
        if record is not None:
            # The objects went with the delete: the import is refused, and says why.
            try:
                c.backups.import_backup(**record["backup-record"])
                results.append({"call": "import_backup after delete", "role": role,
                                "ok": False, "error": "accepted a record with no objects"})
            except Exception as e:
                ok = "400" in str(e) or "Bad request" in str(e)
                results.append({"call": "import_backup after delete", "role": role,
                                "ok": ok, "error": None if ok else str(e)[:2000]})
    else:
        call(role, "delete_backup", c.backups.delete_backup, bid)
        c.backups.wait_for_resource_deletion(bid)
    c.volumes.delete_volume(vid)
    c.volumes.wait_for_resource_deletion(vid)


def quota_family(role, c, admin):
    call(role, "show_limits", c.limits.show_limits)
    call(role, "show_quota_set", c.quotas.show_quota_set, PROJECT)
    call(role, "show_default_quota_set", c.quotas.show_default_quota_set, PROJECT)
    call(role, "show_quota_usage", c.quotas.show_quota_set, PROJECT, params={"usage": True})
    if not admin:
        return
    # -1 keeps the suite's host unlimited.
    call(role, "update_quota_set", c.quotas.update_quota_set, PROJECT, volumes=-1)
    call(role, "delete_quota_set", c.quotas.delete_quota_set, PROJECT)
    call(role, "show_quota_class_set", c.quota_classes.show_quota_class_set, "default")
    call(role, "update_quota_class_set", c.quota_classes.update_quota_class_set, "default",
         volumes=-1)


def misc_family(role, c, admin):
    call(role, "list_versions", c.versions.list_versions)
    call(role, "show_version", c.versions.show_version, "v3")
    call(role, "list_availability_zones", c.zones.list_availability_zones)
    if admin:
        call(role, "list_pools", c.pools.list_pools)
        call(role, "list_pools_detail", c.pools.list_pools, detail=True)
    if at_least(3):
        call(role, "list_messages", c.messages.list_messages)


def main():
    base_client.VOLUME_MICROVERSION = None if VERSION == "3.0" else VERSION
    fill_schema_gaps()
    for role, user in (("member", MEMBER), ("admin", ADMIN)):
        c = clients(user, PROJECT)
        admin = role == "admin"
        for family in (volume_family, attach_family, transfer_family, service_family,
                       type_family, qos_family, quota_family, backup_family, misc_family):
            try:
                family(role, c, admin)
            except Exception as e:
                results.append({"call": family.__name__, "role": role, "ok": False,
                                "error": f"stopped: {e!r}"[:2000]})
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
