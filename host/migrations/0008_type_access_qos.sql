-- Private volume types, project default types and QoS specs, as Cinder keeps them.

-- The projects given access to a private type (Cinder's volume_type_projects).
CREATE TABLE volume_type_projects (
    volume_type_id TEXT NOT NULL REFERENCES volume_types(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (volume_type_id, project_id)
);
CREATE INDEX volume_type_projects_by_project ON volume_type_projects (project_id);

-- A project's own default type (Cinder 3.62's default_volume_types); a volume created
-- without a type takes it before the configured default. A type that is some project's
-- default cannot be deleted.
CREATE TABLE project_default_volume_types (
    project_id TEXT PRIMARY KEY,
    volume_type_id TEXT NOT NULL REFERENCES volume_types(id),
    created_at TEXT NOT NULL,
    updated_at TEXT
);

-- QoS specs: a name, who consumes them (front-end, back-end or both) and their keys.
CREATE TABLE qos_specs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    consumer TEXT NOT NULL DEFAULT 'back-end',
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE qos_specs_items (
    qos_specs_id TEXT NOT NULL REFERENCES qos_specs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (qos_specs_id, key)
);

-- A type has at most one QoS spec, kept on the type as Cinder keeps it.
ALTER TABLE volume_types ADD COLUMN qos_specs_id TEXT REFERENCES qos_specs(id);
