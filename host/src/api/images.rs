//! Images in the volume API: `imageRef` on a volume create (resolved and checked against
//! Glance while the request waits, as Cinder's API does) and the `os-volume_upload_image`
//! action.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{ApiError, Ctx, reply};
use crate::db::VolumeRow;
use crate::image::{Image, gib_ceil};

/// What Cinder's schema accepts as `disk_format` for an upload.
const UPLOAD_DISK_FORMATS: &[&str] = &["raw", "vmdk", "vdi", "qcow2", "vhd", "vhdx", "ploop"];
/// … and of those, what Ashlar writes.
const SERVED_DISK_FORMATS: &[&str] = &["raw", "qcow2"];
/// Cinder's `container_format` enum for an upload.
const CONTAINER_FORMATS: &[&str] = &["bare"];
/// Glance's visibilities.
const VISIBILITIES: &[&str] = &["public", "private", "shared", "community"];
/// Volume image metadata Cinder does not copy to an uploaded image
/// (`glance_core_properties`).
const GLANCE_CORE_PROPERTIES: &[&str] = &[
    "checksum",
    "container_format",
    "disk_format",
    "image_name",
    "image_id",
    "min_disk",
    "min_ram",
    "name",
    "size",
];

fn not_configured(field: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {field}: images are not supported by this service: it has no Image service ([glance]) configured."
    ))
}

fn glance_unavailable(e: crate::image::GlanceError) -> ApiError {
    tracing::warn!("the Image service failed a request: {e}");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{} Try again later.", e.public()),
    )
}

/// Resolves `imageRef` (an id, a URL ending in one, or a name) to an image the caller can
/// use: it must exist and be `active` (Cinder's `_image_uuid_from_ref` and
/// `_check_image_metadata`).
pub async fn resolve(state: &super::AppState, image_ref: &Value) -> Result<Image, ApiError> {
    let images = state
        .manager
        .images()
        .ok_or_else(|| not_configured("imageRef"))?;
    let invalid =
        || ApiError::bad_request("Invalid image identifier or unable to access requested image.");
    let Value::String(image_ref) = image_ref else {
        return Err(ApiError::bad_request("Invalid imageRef provided."));
    };
    let uuid = image_ref.rsplit('/').next().unwrap_or_default();
    let mut found = None;
    if super::types::is_uuid_like(uuid) {
        found = images.glance.show(uuid).await.map_err(glance_unavailable)?;
    }
    if found.is_none() && !image_ref.is_empty() {
        let mut named = images
            .glance
            .find_by_name(image_ref)
            .await
            .map_err(glance_unavailable)?;
        if named.len() > 1 {
            return Err(ApiError::conflict(format!(
                "Multiple matches found for '{image_ref}', use an ID to be more specific."
            )));
        }
        found = named.pop();
    }
    let image = found.ok_or_else(invalid)?;
    if image.status != "active" {
        return Err(ApiError::bad_request(format!(
            "Invalid input received: Image {} is not active.",
            image.id
        )));
    }
    Ok(image)
}

/// The size a volume from `image` takes when the request gives none: the image's data,
/// its disk and its `min_disk`, in whole GiB, at least 1.
pub fn default_size(image: &Image) -> i64 {
    let data = image.size.map_or(0, gib_ceil);
    let disk = image.virtual_size.map_or(0, gib_ceil);
    data.max(disk).max(image.min_disk).max(1) as i64
}

/// Cinder's checks of a volume's size against its image.
pub fn check_size(image: &Image, size: i64) -> Result<(), ApiError> {
    let size_u = size as u64;
    if let Some(bytes) = image.size
        && gib_ceil(bytes) > size_u
    {
        return Err(ApiError::bad_request(format!(
            "Invalid input received: Size of specified image {}GB is larger than volume size {size}GB.",
            gib_ceil(bytes)
        )));
    }
    if let Some(bytes) = image.virtual_size
        && gib_ceil(bytes) > size_u
    {
        return Err(ApiError::bad_request(format!(
            "Image {} is unacceptable: Image virtual size is {}GB and doesn't fit in a volume of size {size}GB.",
            image.id,
            gib_ceil(bytes)
        )));
    }
    if size_u < image.min_disk {
        return Err(ApiError::bad_request(format!(
            "Invalid input received: Volume size {size}GB cannot be smaller than the image minDisk size {}GB.",
            image.min_disk
        )));
    }
    Ok(())
}

fn one_of(
    field: &str,
    args: &Map<String, Value>,
    default: &str,
    allowed: &[&str],
) -> Result<String, ApiError> {
    match args.get(field) {
        None | Some(Value::Null) => Ok(default.to_string()),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(s.clone()),
        Some(other) => Err(ApiError::invalid_field(
            field,
            other,
            format!(
                "{} is not one of [{}]",
                match other {
                    Value::String(s) => format!("'{s}'"),
                    v => v.to_string(),
                },
                allowed
                    .iter()
                    .map(|a| format!("'{a}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// `os-volume_upload_image`: creates the image in Glance with the volume's image
/// properties, records the upload (`uploading`) and its job, and answers Cinder's body.
pub async fn upload(
    state: &super::AppState,
    ctx: &Ctx,
    v: &VolumeRow,
    args: &Value,
) -> Result<Response, ApiError> {
    let example =
        "{\"os-volume_upload_image\": {\"image_name\": \"my-image\", \"disk_format\": \"raw\"}}";
    let Value::Object(args) = args else {
        return Err(ApiError::bad_request(format!(
            "os-volume_upload_image needs an object: {example}."
        )));
    };
    let image_name = match args.get("image_name") {
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 255 => s.clone(),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(ApiError::invalid_field(
                "image_name",
                &json!(s),
                "'' is too short",
            ));
        }
        Some(Value::String(s)) => {
            return Err(ApiError::invalid_field(
                "image_name",
                &json!(s),
                "It is longer than 255 characters.",
            ));
        }
        Some(other) => {
            return Err(ApiError::invalid_field(
                "image_name",
                other,
                format!("{other} is not of type 'string'"),
            ));
        }
        None => {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute os-volume_upload_image. Value: {}. 'image_name' is a required property: {example}.",
                Value::Object(args.clone())
            )));
        }
    };
    let force = match args.get("force") {
        None | Some(Value::Null) => false,
        Some(f) => super::parse_bool("force", f)?,
    };
    let disk_format = one_of("disk_format", args, "raw", UPLOAD_DISK_FORMATS)?;
    if !SERVED_DISK_FORMATS.contains(&disk_format.as_str()) {
        return Err(ApiError::invalid_field(
            "disk_format",
            &json!(disk_format),
            format!(
                "Uploading a volume as {disk_format} is not supported by Ashlar; use raw or qcow2."
            ),
        ));
    }
    let container_format = one_of("container_format", args, "bare", CONTAINER_FORMATS)?;
    // visibility and protected from 3.1, as Cinder's schema takes them.
    let with_params = ctx.version.at_least(1);
    let visibility = if with_params {
        one_of("visibility", args, "private", VISIBILITIES)?
    } else {
        "private".to_string()
    };
    let protected = match (with_params, args.get("protected")) {
        (true, Some(p)) if !p.is_null() => super::parse_bool("protected", p)?,
        _ => false,
    };
    if visibility == "public" && !ctx.is_admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Policy doesn't allow volume_extension:volume_actions:upload_public to be performed.",
        ));
    }
    let images = state
        .manager
        .images()
        .ok_or_else(|| not_configured("os-volume_upload_image"))?;
    // Honoured only when the operator enables forced uploads, as Cinder does.
    let force = force && images.enable_force_upload;
    let allowed = crate::volume::VolumeManager::uploadable(force);
    if !allowed.contains(&v.status) {
        return Err(ApiError::bad_request(format!(
            "Invalid volume: Volume {} status must be {}, but current status is: {}.",
            v.id,
            allowed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
            v.status
        )));
    }

    let mut attributes = Map::new();
    attributes.insert("name".into(), json!(image_name));
    attributes.insert("disk_format".into(), json!(disk_format));
    attributes.insert("container_format".into(), json!(container_format));
    // Before 3.1 Cinder sends neither, and Glance's defaults apply.
    if with_params {
        attributes.insert("visibility".into(), json!(visibility));
        attributes.insert("protected".into(), json!(protected));
    }
    // The volume's image properties go with it, all but Glance's core ones.
    for (k, value) in &v.image_metadata {
        if !GLANCE_CORE_PROPERTIES.contains(&k.as_str()) && !attributes.contains_key(k) {
            attributes.insert(k.clone(), json!(value));
        }
    }
    let image = images.glance.create(&attributes).await.map_err(|e| {
        if let crate::image::GlanceError::Status { status, .. } = &e
            && (400..500).contains(status)
        {
            tracing::warn!(volume_id = %v.id, "the Image service refused the image: {e}");
            return ApiError::bad_request(format!(
                "The Image service refused the image: {}",
                e.public()
            ));
        }
        glance_unavailable(e)
    })?;
    if let Err(refused) = state
        .manager
        .request_upload(v, &image.id, &disk_format, force, &ctx.request_id)
        .await
    {
        if let Err(e) = images.glance.delete(&image.id).await {
            tracing::warn!(image_id = %image.id, "deleting the image of a refused upload: {e}");
        }
        return Err(refused.into());
    }
    let volume_type = match &v.volume_type_id {
        Some(id) => state.db.get_volume_type(id).await?.map(|t| {
            json!({
                "id": t.id,
                "name": t.name,
                "description": t.description,
                "is_public": t.is_public,
                "extra_specs": t.extra_specs.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<String, Value>>(),
                "qos_specs_id": t.qos_specs_id,
            })
        }),
        None => None,
    };
    let now = state
        .db
        .get_volume(&v.id)
        .await?
        .and_then(|v| v.updated_at)
        .or_else(|| v.updated_at.clone());
    let mut body = json!({
        "id": v.id,
        "updated_at": now,
        "status": "uploading",
        "display_description": v.description,
        "size": v.size,
        "volume_type": volume_type,
        "image_id": image.id,
        "container_format": image.container_format,
        "disk_format": image.disk_format,
        "image_name": image.name,
    });
    if with_params {
        body["protected"] = json!(image.protected);
        body["visibility"] = json!(image.visibility);
    }
    Ok(reply(
        ctx,
        StatusCode::ACCEPTED,
        json!({ "os-volume_upload_image": body }),
    ))
}
