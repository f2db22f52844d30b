#!/usr/bin/env python3
"""A reverse proxy that holds every response it passes to tempest.lib's volume v3 schema
for its route, the microversion it was answered at and the caller's role, so that a
client scenario (the openstack CLI, cinderclient, openstacksdk) is checked response by
response.

Usage: tempest_proxy.py UPSTREAM REPORT_FILE
Prints the port it listens on (127.0.0.1) as its first line. Each response becomes one
JSON line in REPORT_FILE: {"method", "path", "status", "version", "role", "schema",
"ok", "error"}; "schema" is null for a route tempest has no schema for.
"""

import copy
import http.client
import http.server
import json
import re
import sys
import threading
import urllib.parse

import jsonschema
from tempest.lib.api_schema.response.volume import (
    capabilities,
    limits,
    messages,
    qos,
    quota_classes,
    quotas,
    scheduler_stats,
    snapshots,
    versions,
    volume_types,
)
from tempest.lib.common import api_version_request
from tempest.lib.common.jsonschema_validator import FORMAT_CHECKER, JSONSCHEMA_VALIDATOR
from tempest.lib.services.volume.v3 import (
    backups_client,
    services_client,
    transfers_client,
    volumes_client,
)

UPSTREAM = urllib.parse.urlsplit(sys.argv[1])
REPORT = open(sys.argv[2], "a", buffering=1)
LOCK = threading.Lock()

# First path segments that name a resource; any other first segment is a project id.
RESOURCES = {
    "volumes", "snapshots", "types", "qos-specs", "os-quota-sets", "os-quota-class-sets",
    "limits", "os-volume-transfer", "volume-transfers", "os-services", "capabilities",
    "scheduler-stats", "os-availability-zone", "messages", "attachments", "default-types",
    "backups",
}


def versioned(info, version):
    """The schema module tempest's client picks for `version` (as its get_schema)."""
    asked = api_version_request.APIVersionRequest(version)
    for item in info:
        low = api_version_request.APIVersionRequest(item["min"])
        high = api_version_request.APIVersionRequest(item["max"])
        if asked.matches(low, high):
            return item["schema"]
    raise LookupError(f"no schema for {version}")


def at_least(version, minor):
    return tuple(map(int, version.split("."))) >= (3, minor)


def snapshot_schema(name, version):
    """tempest's snapshot schema, with the fields Cinder's view adds at 3.14, 3.41 and
    3.65 (tempest's snapshot client never asks for a microversion, so its schema stops
    at 3.0; see tempest_views.py)."""
    schema = copy.deepcopy(getattr(snapshots, name))
    added = {}
    if at_least(version, 14):
        added["group_snapshot_id"] = {"type": ["string", "null"]}
    if at_least(version, 41):
        added["user_id"] = {"type": "string"}
    if at_least(version, 65):
        added["consumes_quota"] = {"type": "boolean"}

    def extend(node):
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict) and "volume_id" in props and "size" in props:
                props.update(added)
            for v in node.values():
                extend(v)
        elif isinstance(node, list):
            for v in node:
                extend(v)

    extend(schema)
    return schema


def volume_schema(name, version):
    module = versioned(volumes_client.VolumesClient.schema_versions_info, version)
    if name == "update_volume":
        # Cinder answers an update with the create view of its microversion (tempest's
        # client checks updates against 3.0 whatever it asked; see tempest_views.py).
        schema = copy.deepcopy(module.create_volume)
        schema["status_code"] = [200]
        return schema
    return getattr(module, name)


VOLUME_ACTIONS = {
    "os-extend": "extend_volume",
    "os-set_bootable": "set_bootable_volume",
    "os-update_readonly_flag": "update_volume_readonly",
    "os-set_image_metadata": "update_volume_image_metadata",
    "os-unset_image_metadata": "delete_volume_image_metadata",
    "os-show_image_metadata": "show_volume_image_metadata",
    "os-reset_status": "reset_volume_status",
    "os-force_delete": "force_delete_volume",
    "os-attach": "attach_volume",
    "os-detach": "detach_volume",
    "os-reserve": "reserve_volume",
    "os-unreserve": "unreserve_volume",
    "os-terminate_connection": "terminate_connection",
    "os-force_detach": "force_detach_volume",
}
SNAPSHOT_ACTIONS = {
    "os-reset_status": "reset_snapshot_status",
    "os-update_snapshot_status": "update_snapshot_status",
    "os-force_delete": "force_delete_snapshot",
}

ID = r"[^/]+"


def schema_for(method, parts, query, version, action):
    """(name, schema) for a request, or (None, None) where tempest has none."""
    def vol(name):
        return name, volume_schema(name, version)

    def snap(name):
        return name, snapshot_schema(name, version)

    def fixed(module, name):
        return name, getattr(module, name)

    def backup(name):
        module = versioned(backups_client.BackupsClient.schema_versions_info, version)
        return name, getattr(module, name)

    def transfer(name):
        module = versioned(transfers_client.TransfersClient.schema_versions_info, version)
        return name, getattr(module, name)

    path = "/".join(parts)
    routes = [
        ("POST", "volumes", lambda: vol("create_volume")),
        ("GET", "volumes", lambda: vol("list_volumes_no_detail")),
        ("GET", "volumes/detail", lambda: vol("list_volumes_with_detail")),
        ("GET", "volumes/summary", lambda: vol("show_volume_summary")),
        ("GET", f"volumes/{ID}", lambda: vol("show_volume")),
        ("PUT", f"volumes/{ID}", lambda: vol("update_volume")),
        ("DELETE", f"volumes/{ID}", lambda: vol("delete_volume")),
        ("GET", f"volumes/{ID}/metadata", lambda: vol("show_volume_metadata")),
        ("POST", f"volumes/{ID}/metadata", lambda: vol("create_volume_metadata")),
        ("PUT", f"volumes/{ID}/metadata", lambda: vol("update_volume_metadata")),
        ("GET", f"volumes/{ID}/metadata/{ID}", lambda: vol("show_volume_metadata_item")),
        ("PUT", f"volumes/{ID}/metadata/{ID}", lambda: vol("update_volume_metadata_item")),
        ("DELETE", f"volumes/{ID}/metadata/{ID}",
         lambda: vol("delete_volume_metadata_item")),
        ("POST", f"volumes/{ID}/action",
         lambda: vol(VOLUME_ACTIONS[action]) if action in VOLUME_ACTIONS else (None, None)),
        ("POST", "snapshots", lambda: snap("create_snapshot")),
        ("GET", "snapshots", lambda: snap("list_snapshots_no_detail")),
        ("GET", "snapshots/detail", lambda: snap("list_snapshots_with_detail")),
        ("GET", f"snapshots/{ID}", lambda: snap("show_snapshot")),
        ("PUT", f"snapshots/{ID}", lambda: snap("update_snapshot")),
        ("DELETE", f"snapshots/{ID}", lambda: snap("delete_snapshot")),
        ("GET", f"snapshots/{ID}/metadata", lambda: snap("show_snapshot_metadata")),
        ("POST", f"snapshots/{ID}/metadata", lambda: snap("create_snapshot_metadata")),
        ("PUT", f"snapshots/{ID}/metadata", lambda: snap("update_snapshot_metadata")),
        ("DELETE", f"snapshots/{ID}/metadata/{ID}",
         lambda: snap("delete_snapshot_metadata_item")),
        ("POST", f"snapshots/{ID}/action",
         lambda: snap(SNAPSHOT_ACTIONS[action]) if action in SNAPSHOT_ACTIONS else (None, None)),
        ("POST", "backups", lambda: backup("create_backup")),
        ("GET", "backups", lambda: backup("list_backups_no_detail")),
        ("GET", "backups/detail", lambda: backup("list_backups_with_detail")),
        ("GET", f"backups/{ID}", lambda: backup("show_backup")),
        ("PUT", f"backups/{ID}", lambda: backup("update_backup")),
        ("DELETE", f"backups/{ID}", lambda: backup("delete_backup")),
        ("POST", f"backups/{ID}/restore", lambda: backup("restore_backup")),
        ("GET", f"backups/{ID}/export_record", lambda: backup("export_backup")),
        ("POST", "backups/import_record", lambda: backup("import_backup")),
        ("POST", f"backups/{ID}/action",
         lambda: backup("reset_backup_status") if action == "os-reset_status"
         else (None, None)),
        ("GET", "types", lambda: fixed(volume_types, "list_volume_types")),
        ("POST", "types", lambda: fixed(volume_types, "create_volume_type")),
        ("GET", "types/default", lambda: fixed(volume_types, "show_volume_type")),
        ("GET", f"types/{ID}", lambda: fixed(volume_types, "show_volume_type")),
        ("PUT", f"types/{ID}", lambda: fixed(volume_types, "update_volume_types")),
        ("DELETE", f"types/{ID}", lambda: fixed(volume_types, "delete_volume_type")),
        ("GET", f"types/{ID}/extra_specs",
         lambda: fixed(volume_types, "list_volume_types_extra_specs")),
        ("POST", f"types/{ID}/extra_specs",
         lambda: fixed(volume_types, "create_volume_types_extra_specs")),
        ("DELETE", f"types/{ID}/extra_specs/{ID}",
         lambda: fixed(volume_types, "delete_volume_types_extra_specs")),
        ("GET", f"types/{ID}/os-volume-type-access",
         lambda: fixed(volume_types, "list_type_access")),
        ("POST", f"types/{ID}/action",
         lambda: fixed(volume_types, {"addProjectAccess": "add_type_access",
                                      "removeProjectAccess": "remove_type_access"}[action])),
        ("POST", "qos-specs", lambda: fixed(qos, "show_qos")),
        ("GET", "qos-specs", lambda: fixed(qos, "list_qos")),
        ("GET", f"qos-specs/{ID}", lambda: fixed(qos, "show_qos")),
        ("PUT", f"qos-specs/{ID}", lambda: fixed(qos, "set_qos_key")),
        ("PUT", f"qos-specs/{ID}/delete_keys", lambda: fixed(qos, "unset_qos_key")),
        ("DELETE", f"qos-specs/{ID}", lambda: fixed(qos, "delete_qos")),
        ("GET", f"qos-specs/{ID}/associate", lambda: fixed(qos, "associate_qos")),
        ("GET", f"qos-specs/{ID}/associations", lambda: fixed(qos, "show_association_qos")),
        ("GET", f"qos-specs/{ID}/disassociate", lambda: fixed(qos, "disassociate_qos")),
        ("GET", f"qos-specs/{ID}/disassociate_all",
         lambda: fixed(qos, "disassociate_all_qos")),
        ("GET", f"os-quota-sets/{ID}",
         lambda: fixed(quotas, "show_quota_set_usage" if query.get("usage", [""])[0]
                       .lower() in ("true", "1") else "show_quota_set")),
        ("GET", f"os-quota-sets/{ID}/defaults", lambda: fixed(quotas, "show_quota_set")),
        ("PUT", f"os-quota-sets/{ID}", lambda: fixed(quotas, "update_quota_set")),
        ("DELETE", f"os-quota-sets/{ID}", lambda: fixed(quotas, "delete_quota_set")),
        ("GET", f"os-quota-class-sets/{ID}", lambda: fixed(quota_classes, "show_quota_classes")),
        ("PUT", f"os-quota-class-sets/{ID}",
         lambda: fixed(quota_classes, "update_quota_classes")),
        ("GET", "limits", lambda: fixed(limits, "show_limits")),
        ("GET", "scheduler-stats/get_pools",
         lambda: fixed(scheduler_stats, "get_pools_with_detail"
                       if query.get("detail", [""])[0].lower() in ("true", "1")
                       else "get_pools_no_detail")),
        ("GET", f"capabilities/{ID}", lambda: fixed(capabilities, "show_backend_capabilities")),
        ("GET", "messages", lambda: fixed(messages, "list_messages")),
        ("GET", f"messages/{ID}", lambda: fixed(messages, "show_message")),
        ("GET", "os-services", lambda: ("list_services", versioned(
            services_client.ServicesClient.schema_versions_info, version).list_services)),
        ("PUT", "os-services/enable", lambda: ("enable_service", versioned(
            services_client.ServicesClient.schema_versions_info, version).enable_service)),
        ("PUT", "os-services/disable", lambda: ("disable_service", versioned(
            services_client.ServicesClient.schema_versions_info, version).disable_service)),
        ("PUT", "os-services/disable-log-reason", lambda: ("disable_log_reason", versioned(
            services_client.ServicesClient.schema_versions_info, version)
            .disable_log_reason)),
    ]
    for prefix in ("os-volume-transfer", "volume-transfers"):
        routes += [
            ("POST", prefix, lambda: transfer("create_volume_transfer")),
            ("GET", prefix, lambda: transfer("list_volume_transfers_no_detail")),
            ("GET", f"{prefix}/detail", lambda: transfer("list_volume_transfers_with_detail")),
            ("GET", f"{prefix}/{ID}", lambda: transfer("show_volume_transfer")),
            ("DELETE", f"{prefix}/{ID}", lambda: transfer("delete_volume_transfer")),
            ("POST", f"{prefix}/{ID}/accept", lambda: transfer("accept_volume_transfer")),
        ]
    for verb, pattern, pick in routes:
        if verb == method and re.fullmatch(pattern, path):
            try:
                return pick()
            except KeyError:
                return None, None
    return None, None


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def relay(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "connection", "content-length")}
        upstream = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=120)
        upstream.request(self.command, self.path, body=body, headers=headers)
        resp = upstream.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "content-length", "transfer-encoding"):
                self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()
        self.check(body, resp, data)

    def check(self, request_body, resp, data):
        url = urllib.parse.urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        if parts[:1] != ["v3"]:
            name, schema = ("list_versions", versions.list_versions) if not parts else (None, None)
        else:
            parts = parts[1:]
            if parts and parts[0] not in RESOURCES:
                parts = parts[1:]
            version = "3.0"
            header = resp.getheader("openstack-api-version") or ""
            if header.startswith("volume "):
                version = header.split()[1]
            action = None
            if request_body and parts and parts[-1] == "action":
                try:
                    action = next(iter(json.loads(request_body)))
                except (ValueError, StopIteration, TypeError):
                    action = None
            if not parts:
                name, schema = "volume_api_version_details", versions.volume_api_version_details
            else:
                name, schema = schema_for(self.command, parts,
                                          urllib.parse.parse_qs(url.query), version, action)
        token = self.headers.get("x-auth-token", "")
        role = "admin" if token.split(":")[0] == "admin" else "member"
        ok, error = True, None
        if schema is not None and 200 <= resp.status < 300:
            try:
                if resp.status not in schema["status_code"]:
                    raise ValueError(f"status {resp.status} not in {schema['status_code']}")
                body_schema = schema.get("response_body")
                if body_schema:
                    jsonschema.validate(json.loads(data), body_schema,
                                        cls=JSONSCHEMA_VALIDATOR,
                                        format_checker=FORMAT_CHECKER)
            except Exception as e:
                ok, error = False, str(e)[:1500]
        line = {"method": self.command, "path": url.path, "status": resp.status,
                "version": resp.getheader("openstack-api-version"), "role": role,
                "schema": name if schema is not None else None, "ok": ok, "error": error}
        with LOCK:
            REPORT.write(json.dumps(line) + "\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = relay


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
