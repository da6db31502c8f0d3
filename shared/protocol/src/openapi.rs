//! What the services' OpenAPI documents share, added to each after its paths are collected:
//! the bearer scheme, the problem answers every operation may give, and the bounds of the
//! values an admin sets (from [`crate::event::bounds`], so the document and the checks never
//! disagree).

use utoipa::Modify;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, Object, OpenApi, RefOr, ResponseBuilder, Schema, schema::SchemaType,
};

use crate::error::{ErrorCode, PROBLEM_CONTENT_TYPE};
use crate::event::bounds;

/// The name of the access-token security scheme (`Authorization: Bearer <access token>`).
pub const BEARER: &str = "bearer";

/// Completes a service's document: security scheme, common problem answers, bounds.
#[derive(Debug, Default, Clone, Copy)]
pub struct Common;

impl Modify for Common {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `POST /api/v1/auth/login` or `/refresh` (EdDSA; \
                         the api's keys at `/api/.well-known/jwks.json`).",
                    ))
                    .build(),
            ),
        );
        for (name, schema) in &mut components.schemas {
            set_bounds(name, schema);
        }
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                add_common_problems(operation);
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// A problem answer naming its codes.
#[must_use]
pub fn problem_response(codes: &[ErrorCode]) -> utoipa::openapi::Response {
    let names: Vec<String> = codes.iter().map(|c| format!("`{}`", c.as_str())).collect();
    ResponseBuilder::new()
        .description(names.join(", "))
        .content(
            PROBLEM_CONTENT_TYPE,
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "Problem",
                ))))
                .build(),
        )
        .build()
}

/// Answers any operation may give (on top of what its handler declares): every request may
/// fail, find a store away or time out; one with a body may send unparseable JSON, too much,
/// the wrong type or invalid values; one with parameters may send invalid ones; one that
/// needs a token may come without.
fn add_common_problems(operation: &mut Operation) {
    let mut common: Vec<(u16, ErrorCode)> = vec![
        (500, ErrorCode::Internal),
        (503, ErrorCode::Unavailable),
        (504, ErrorCode::Timeout),
    ];
    let body = operation.request_body.is_some();
    if body {
        common.push((400, ErrorCode::BadRequest));
        common.push((413, ErrorCode::PayloadTooLarge));
        common.push((415, ErrorCode::UnsupportedMediaType));
    }
    if body || operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        common.push((422, ErrorCode::Validation));
    }
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        common.push((401, ErrorCode::Unauthenticated));
    }
    let responses = &mut operation.responses.responses;
    for (status, code) in common {
        responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(problem_response(&[code])));
    }
}

/// The bounds of each bounded field, by schema and property.
fn set_bounds(schema_name: &str, schema: &mut RefOr<Schema>) {
    let RefOr::T(Schema::Object(object)) = schema else {
        return;
    };
    let queue = [
        ("admit_per_sec", bounds::ADMIT_PER_SEC),
        ("max_active", bounds::MAX_ACTIVE),
        ("admission_ttl_s", bounds::ADMISSION_TTL_S),
    ];
    match schema_name {
        "QueueSettings" | "QueueSettingsPatch" | "QueuePatch" => {
            for (field, range) in queue {
                integer_range(object, field, *range.start(), *range.end());
            }
        }
        "NewEvent" | "EventPatch" => {
            integer_range(
                object,
                "inventory",
                *bounds::INVENTORY.start(),
                *bounds::INVENTORY.end(),
            );
            integer_range(
                object,
                "max_per_user",
                *bounds::MAX_PER_USER.start(),
                *bounds::MAX_PER_USER.end(),
            );
            integer_range(
                object,
                "price_cents",
                *bounds::PRICE_CENTS.start(),
                *bounds::PRICE_CENTS.end(),
            );
            for field in ["name", "venue"] {
                if let Some(property) = property(object, field) {
                    property.min_length = Some(*bounds::TEXT_CHARS.start());
                    property.max_length = Some(*bounds::TEXT_CHARS.end());
                }
            }
        }
        "CreateOrder" => integer_range(
            object,
            "quantity",
            *bounds::MAX_PER_USER.start(),
            *bounds::MAX_PER_USER.end(),
        ),
        _ => {}
    }
}

fn property<'a>(object: &'a mut Object, field: &str) -> Option<&'a mut Object> {
    match object.properties.get_mut(field)? {
        RefOr::T(Schema::Object(property)) => Some(property),
        _ => None,
    }
}

fn integer_range(object: &mut Object, field: &str, min: impl Into<i64>, max: impl Into<i64>) {
    if let Some(property) = property(object, field)
        && matches!(
            property.schema_type,
            SchemaType::Type(_) | SchemaType::Array(_)
        )
    {
        property.minimum = Some(min.into().into());
        property.maximum = Some(max.into().into());
    }
}
