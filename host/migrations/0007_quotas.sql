-- Cinder's quotas. A resource is `volumes`, `snapshots`, `gigabytes`, `backups`,
-- `backup_gigabytes`, `groups` or `per_volume_gigabytes`; `volumes`, `snapshots` and
-- `gigabytes` also per volume type, keyed here by the type's id (its name, which the API
-- shows in `volumes_{name}`, may change). `volume_type_id` is '' for the global ones.

-- A project's own limits (what `PUT os-quota-sets/{project}` set).
CREATE TABLE quotas (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    volume_type_id TEXT NOT NULL DEFAULT '',
    hard_limit BIGINT NOT NULL,
    PRIMARY KEY (project_id, resource, volume_type_id)
);

-- A quota class's limits; the class `default` supplies every project's defaults.
CREATE TABLE quota_classes (
    class_name TEXT NOT NULL,
    resource TEXT NOT NULL,
    volume_type_id TEXT NOT NULL DEFAULT '',
    hard_limit BIGINT NOT NULL,
    PRIMARY KEY (class_name, resource, volume_type_id)
);

-- What a project holds: `in_use` changes in the transaction that writes the row it counts
-- (a volume or snapshot recorded, its delete finished); `reserved` holds the gigabytes of
-- extends under way, each in `quota_reservations`.
CREATE TABLE quota_usages (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    volume_type_id TEXT NOT NULL DEFAULT '',
    in_use BIGINT NOT NULL DEFAULT 0,
    reserved BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, resource, volume_type_id)
);

-- The gigabytes an extend under way holds, one per volume `extending`: committed into
-- `in_use` when the extend finishes, given back when the volume leaves `extending`
-- otherwise.
CREATE TABLE quota_reservations (
    volume_id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    volume_type_id TEXT NOT NULL DEFAULT '',
    gigabytes BIGINT NOT NULL,
    created_at TEXT NOT NULL
);

-- What earlier hosts stored counts from the start: live volumes and snapshots, their
-- gigabytes (a snapshot's are its volume's size when taken), globally and per type.
INSERT INTO quota_usages (project_id, resource, volume_type_id, in_use, reserved)
SELECT project_id, 'volumes', '', COUNT(*), 0 FROM volumes WHERE deleted = 0 GROUP BY project_id;

INSERT INTO quota_usages (project_id, resource, volume_type_id, in_use, reserved)
SELECT project_id, 'snapshots', '', COUNT(*), 0 FROM snapshots WHERE deleted = 0 GROUP BY project_id;

INSERT INTO quota_usages (project_id, resource, volume_type_id, in_use, reserved)
SELECT u.project_id, 'gigabytes', '', SUM(u.gigabytes), 0 FROM (
    SELECT project_id, size AS gigabytes FROM volumes WHERE deleted = 0
    UNION ALL
    SELECT project_id, volume_size AS gigabytes FROM snapshots WHERE deleted = 0
) u GROUP BY u.project_id;

INSERT INTO quota_usages (project_id, resource, volume_type_id, in_use, reserved)
SELECT project_id, 'volumes', volume_type_id, COUNT(*), 0 FROM volumes
WHERE deleted = 0 AND volume_type_id IS NOT NULL GROUP BY project_id, volume_type_id;

INSERT INTO quota_usages (project_id, resource, volume_type_id, in_use, reserved)
SELECT s.project_id, 'snapshots', v.volume_type_id, COUNT(*), 0
FROM snapshots s JOIN volumes v ON v.id = s.volume_id
WHERE s.deleted = 0 AND v.volume_type_id IS NOT NULL GROUP BY s.project_id, v.volume_type_id;

INSERT INTO quota_usages (project_id, resource, volume_type_id, in_use, reserved)
SELECT u.project_id, 'gigabytes', u.volume_type_id, SUM(u.gigabytes), 0 FROM (
    SELECT project_id, volume_type_id, size AS gigabytes FROM volumes
    WHERE deleted = 0 AND volume_type_id IS NOT NULL
    UNION ALL
    SELECT s.project_id, v.volume_type_id, s.volume_size AS gigabytes
    FROM snapshots s JOIN volumes v ON v.id = s.volume_id
    WHERE s.deleted = 0 AND v.volume_type_id IS NOT NULL
) u GROUP BY u.project_id, u.volume_type_id;
