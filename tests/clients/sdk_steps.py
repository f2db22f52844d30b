#!/usr/bin/env python3
"""openstacksdk's block-storage proxy against a running Ashlar, without Keystone:
keystoneauth's NoAuth plugin points the session at BASE/v3 (the SDK discovers the
microversions from the version document there) and sends Cinder's noauth token
`user:project` as its token (NoAuth alone would send `notused`). Each step prints one JSON line {"step", "ok", "value" | "error"} for the
Rust test to assert on.

Usage: sdk_steps.py BASE_URL USER PROJECT ADMIN_PROJECT VOLUME_HOST
"""

import json
import sys
import traceback

import openstack
from keystoneauth1 import noauth, session

BASE, USER, PROJECT, ADMIN_PROJECT, VOLUME_HOST = sys.argv[1:6]


class CinderNoAuth(noauth.NoAuth):
    def __init__(self, token, **kwargs):
        super().__init__(**kwargs)
        self.token = token

    def get_token(self, session, **kwargs):
        return self.token


def connect(user, project):
    sess = session.Session(auth=CinderNoAuth(f"{user}:{project}", endpoint=f"{BASE}/v3"))
    return openstack.connection.Connection(session=sess, block_storage_api_version="3")


def step(name, fn):
    try:
        value = fn()
        print(json.dumps({"step": name, "ok": True, "value": value}, default=str), flush=True)
        return value
    except Exception as e:
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        print(json.dumps({"step": name, "ok": False, "error": detail}), flush=True)
        return None


def main():
    me = connect(USER, PROJECT).block_storage
    admin = connect("admin", ADMIN_PROJECT).block_storage

    vol = step("create_volume", lambda: me.create_volume(size=1, name="sdk-vol").id)
    step("wait_for_available", lambda: me.wait_for_status(
        me.get_volume(vol), status="available", wait=60, interval=0.1).status)
    step("get_volume", lambda: {"name": me.get_volume(vol).name,
                                "size": me.get_volume(vol).size})
    step("volumes", lambda: sorted(v.name for v in me.volumes()))
    step("extend_volume", lambda: me.extend_volume(vol, 2))
    step("wait_for_extended", lambda: me.wait_for_status(
        me.get_volume(vol), status="available", wait=60, interval=0.1).size)
    step("set_volume_metadata", lambda: me.set_volume_metadata(vol, tier="gold").metadata)
    step("set_volume_bootable_status", lambda: me.set_volume_bootable_status(vol, True))
    step("set_volume_readonly", lambda: me.set_volume_readonly(vol, True))
    step("readonly_shown", lambda: me.get_volume(vol).metadata.get("readonly"))
    step("set_volume_readonly_off", lambda: me.set_volume_readonly(vol, False))
    snap = step("create_snapshot", lambda: me.create_snapshot(volume_id=vol, name="sdk-snap").id)
    step("wait_for_snapshot", lambda: me.wait_for_status(
        me.get_snapshot(snap), status="available", wait=60, interval=0.1).status)
    step("snapshots", lambda: [s.name for s in me.snapshots(details=True)])
    step("summary", lambda: {"total_count": me.summary(False).total_count,
                             "total_size": me.summary(False).total_size})
    step("types", lambda: sorted(t.name for t in me.types()))
    step("availability_zones", lambda: [z.name for z in me.availability_zones()])
    step("get_limits", lambda: me.get_limits().absolute.max_total_volumes)
    step("get_quota_set", lambda: me.get_quota_set(PROJECT, usage=True).usage.get("volumes"))
    step("update_quota_set", lambda: admin.update_quota_set(
        admin.get_quota_set(PROJECT), volumes=30).volumes)
    step("quota_after_update", lambda: me.get_quota_set(PROJECT).volumes)
    step("backend_pools", lambda: [p.name for p in admin.backend_pools()])
    step("services", lambda: sorted(s.binary for s in admin.services()))
    step("delete_snapshot", lambda: me.delete_snapshot(snap))
    step("wait_for_snapshot_delete", lambda: me.wait_for_delete(
        me.get_snapshot(snap), interval=0.1, wait=60) and True)
    step("delete_volume", lambda: me.delete_volume(vol))
    step("wait_for_volume_delete", lambda: me.wait_for_delete(
        me.get_volume(vol), interval=0.1, wait=60) and True)


if __name__ == "__main__":
    main()
