//! `GET /openapi.json`: the whole HTTP API — inbox, relay, cluster, operators' — as an OpenAPI
//! 3.1 document, built once with `utoipa`'s model. Every route kind the node serves has at
//! least one operation here, named by its kind (`provision`, `provision_org`, …); a test holds
//! the two together.
//!
//! Here: how an operation is put together ([`Op`]) and the document. Apart: the operations of
//! each surface (`inbox`, `relay`, `operators`) and the schemas they share (`schemas`).

mod inbox;
mod operators;
mod relay;
mod schemas;

use std::sync::LazyLock;

use actix_web::HttpResponse;
use actix_web::http::header::ContentType;
use serde_json::Value;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, Paths, RefOr,
    Required, ResponseBuilder, Schema,
};

pub use self::schemas::schema;

/// The document, as served.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    document()
        .to_json()
        .expect("the document is made of serialisable parts")
});

pub fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(DOCUMENT.as_str())
}

/// The whole API.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    let ops = (inbox::operations().into_iter())
        .chain(relay::operations())
        .chain(operators::operations());
    for op in ops {
        let (path, method, operation) = op.build();
        match paths.paths.get_mut(&path) {
            Some(item) => set(item, method, operation),
            None => {
                paths.paths.insert(path, PathItem::new(method, operation));
            }
        }
    }
    let info = InfoBuilder::new()
        .title("relaybox")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "One relaybox node: PopBox's inbox API, the My Notes device relay, the calls \
             between regions, and the operators' routes.",
        ))
        .build();
    OpenApiBuilder::new()
        .info(info)
        .paths(paths)
        .components(Some(schemas::components(ComponentsBuilder::new()).build()))
        .build()
}

fn set(item: &mut PathItem, method: HttpMethod, operation: Operation) {
    let slot = match method {
        HttpMethod::Get => &mut item.get,
        HttpMethod::Post => &mut item.post,
        HttpMethod::Put => &mut item.put,
        HttpMethod::Delete => &mut item.delete,
        HttpMethod::Options => &mut item.options,
        HttpMethod::Head => &mut item.head,
        HttpMethod::Patch => &mut item.patch,
        HttpMethod::Trace => &mut item.trace,
    };
    *slot = Some(operation);
}

/// How a request's body is described.
#[derive(Clone)]
enum Body {
    None,
    /// JSON, of this schema.
    Json(Value),
    /// A form (`application/x-www-form-urlencoded`), of this schema.
    Form(Value),
    /// Anything: relayed as it comes.
    Any,
}

/// What an answer carries.
#[derive(Clone)]
enum Carries {
    Json(Value),
    /// Text of this media type.
    Text(&'static str),
    Nothing,
}

/// One operation, described; `build` turns it into `utoipa`'s model.
#[derive(Clone)]
pub struct Op {
    id: String,
    method: HttpMethod,
    path: String,
    summary: &'static str,
    query: Vec<(&'static str, Value, &'static str)>,
    headers: Vec<(&'static str, bool, &'static str)>,
    body: Body,
    answers: Vec<(&'static str, &'static str, Carries)>,
}

impl Op {
    /// An operation named `id` (a route kind's name, `_org` for an org variant).
    fn new(id: &str, method: HttpMethod, path: &str, summary: &'static str) -> Self {
        Op {
            id: id.to_owned(),
            method,
            path: path.to_owned(),
            summary,
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::None,
            answers: Vec::new(),
        }
    }

    fn get(id: &str, path: &str, summary: &'static str) -> Self {
        Op::new(id, HttpMethod::Get, path, summary)
    }

    fn post(id: &str, path: &str, summary: &'static str) -> Self {
        Op::new(id, HttpMethod::Post, path, summary)
    }

    fn put(id: &str, path: &str, summary: &'static str) -> Self {
        Op::new(id, HttpMethod::Put, path, summary)
    }

    fn delete(id: &str, path: &str, summary: &'static str) -> Self {
        Op::new(id, HttpMethod::Delete, path, summary)
    }

    /// The same operation under `/org/{org}`, named `<id>_org`.
    fn org(&self) -> Self {
        let mut op = self.clone();
        op.id = format!("{}_org", self.id);
        op.path = format!("/org/{{org}}{}", self.path);
        op
    }

    fn query(mut self, name: &'static str, schema: Value, about: &'static str) -> Self {
        self.query.push((name, schema, about));
        self
    }

    fn header(mut self, name: &'static str, required: bool, about: &'static str) -> Self {
        self.headers.push((name, required, about));
        self
    }

    fn json_body(mut self, schema: Value) -> Self {
        self.body = Body::Json(schema);
        self
    }

    fn form_body(mut self, schema: Value) -> Self {
        self.body = Body::Form(schema);
        self
    }

    fn any_body(mut self) -> Self {
        self.body = Body::Any;
        self
    }

    /// An answer with a JSON body.
    fn json(mut self, status: &'static str, about: &'static str, schema: Value) -> Self {
        self.answers.push((status, about, Carries::Json(schema)));
        self
    }

    /// An answer with a plain-text body.
    fn text(self, status: &'static str, about: &'static str) -> Self {
        self.media(status, about, "text/plain")
    }

    /// An answer with a textual body of `media` type (HTML, SVG, the metrics' format…).
    fn media(mut self, status: &'static str, about: &'static str, media: &'static str) -> Self {
        self.answers.push((status, about, Carries::Text(media)));
        self
    }

    /// An answer whose body says nothing (the relay's own answers, redirects).
    fn bare(mut self, status: &'static str, about: &'static str) -> Self {
        self.answers.push((status, about, Carries::Nothing));
        self
    }

    /// The errors every inbox and admin operation may answer: a request refused (`400`,
    /// `{"errors": […]}`), a body too large (`413`), and the node or its store unavailable
    /// (`503`: starting, a standby, crowded, the store unreachable).
    fn errors(self) -> Self {
        self.json(
            "400",
            "The request is refused; `errors` says why.",
            schema("Errors"),
        )
        .json(
            "413",
            "The body is larger than the node takes.",
            schema("Errors"),
        )
        .json(
            "503",
            "The node or its store cannot serve now; try again (`Retry-After`).",
            schema("Errors"),
        )
    }

    fn build(self) -> (String, HttpMethod, Operation) {
        let mut operation = OperationBuilder::new()
            .operation_id(Some(self.id))
            .summary(Some(self.summary));
        for name in path_parameters(&self.path) {
            let parameter = ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(typed(
                    serde_json::json!({"type": "string", "minLength": 1}),
                )));
            operation = operation.parameter(parameter);
        }
        for (name, schema, about) in self.query {
            let parameter = ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .description(Some(about))
                .schema(Some(typed(schema)));
            operation = operation.parameter(parameter);
        }
        for (name, required, about) in self.headers {
            let required = if required {
                Required::True
            } else {
                Required::False
            };
            let parameter = ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(required)
                .description(Some(about))
                .schema(Some(typed(serde_json::json!({"type": "string"}))));
            operation = operation.parameter(parameter);
        }
        let body = match self.body {
            Body::None => None,
            Body::Json(schema) => Some(("application/json", Some(schema))),
            Body::Form(schema) => Some(("application/x-www-form-urlencoded", Some(schema))),
            Body::Any => Some(("*/*", None)),
        };
        if let Some((media, schema)) = body {
            let content = Content::new(schema.map(typed));
            let body = RequestBodyBuilder::new().content(media, content).build();
            operation = operation.request_body(Some(body));
        }
        for (status, about, carries) in self.answers {
            let answer = ResponseBuilder::new().description(about);
            let answer = match carries {
                Carries::Json(schema) => {
                    answer.content("application/json", Content::new(Some(typed(schema))))
                }
                Carries::Text(media) => answer.content(
                    media,
                    Content::new(Some(typed(serde_json::json!({"type": "string"})))),
                ),
                Carries::Nothing => answer,
            };
            operation = operation.response(status, answer.build());
        }
        (self.path, self.method, operation.build())
    }
}

/// `{name}` segments of an OpenAPI path.
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    (path.split('/')).filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// A JSON Schema, in `utoipa`'s model.
fn typed(schema: Value) -> RefOr<Schema> {
    serde_json::from_value(schema.clone())
        .unwrap_or_else(|e| panic!("not a schema utoipa reads ({e}): {schema}"))
}

#[cfg(test)]
mod tests {
    use actix_web::http::Method;

    use super::*;
    use crate::http::route_kind::RouteKind;
    use crate::http::routes::Route;

    /// Every operation described is served where the document says, by the route kind its
    /// name starts with; and every route kind the node serves is described under its own name.
    #[test]
    fn every_route_is_described_and_every_description_is_a_route() {
        let document = serde_json::to_value(document()).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        let mut described = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let id = operation["operationId"].as_str().unwrap().to_owned();
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                // Every `{parameter}` as a plain value.
                let concrete: String = (path.split('/'))
                    .map(|s| if s.starts_with('{') { "x1" } else { s })
                    .collect::<Vec<_>>()
                    .join("/");
                let concrete = if concrete.is_empty() {
                    "/".to_owned()
                } else {
                    concrete
                };
                let route = Route::parse(&method, &concrete)
                    .unwrap()
                    .unwrap_or_else(|| panic!("{id}: {method} {path} is no route"));
                let kind = route.kind().name();
                assert!(
                    id == kind || id.starts_with(&format!("{kind}_")),
                    "{id}: {method} {path} is served as {kind}"
                );
                described.push(id);
            }
        }
        for kind in RouteKind::ALL
            .iter()
            .filter(|k| **k != RouteKind::Unmatched)
        {
            assert!(
                described.iter().any(|id| id == kind.name()),
                "{} is not described",
                kind.name()
            );
        }
        let mut unique = described.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), described.len(), "operation ids are unique");
    }
}
