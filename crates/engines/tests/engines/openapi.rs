//! A small validator for the part of OpenAPI 3 / JSON Schema that Qdrant's schema uses:
//! `$ref`, `type`, `nullable`, `properties`, `required`, `additionalProperties`, `items`,
//! `anyOf`, `oneOf`, `allOf`, `enum`, `minimum`, and the integer formats. Strict on one
//! point: an object schema with `properties` and no `additionalProperties` accepts no other
//! key, so a misspelt field is caught (Qdrant would ignore or refuse it).

use serde_json::Value;

/// The OpenAPI document and the validation entry points.
pub struct OpenApi {
    pub doc: Value,
}

impl OpenApi {
    pub fn load(path: &std::path::Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap();
        Self {
            doc: serde_json::from_str(&text).unwrap(),
        }
    }

    /// The request body schema of `method` on `template`, after checking that the path,
    /// the method and every query parameter in `query` are in the document.
    pub fn request_schema(&self, method: &str, template: &str, query: &[&str]) -> Option<&Value> {
        let op = self
            .doc
            .pointer(&format!("/paths/{}", escape(template)))
            .unwrap_or_else(|| panic!("no path {template} in Qdrant's OpenAPI"))
            .get(method.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("no {method} {template} in Qdrant's OpenAPI"));
        for q in query {
            let known = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query" && p["name"] == *q));
            assert!(known, "{method} {template}: no query parameter {q:?}");
        }
        op.pointer("/requestBody/content/application~1json/schema")
    }

    /// Errors of `value` against `schema` (empty when it validates).
    pub fn validate(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, value, "$", &mut errors);
        errors
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.strip_prefix('#').expect("local $ref");
                self.resolve(
                    self.doc
                        .pointer(pointer)
                        .unwrap_or_else(|| panic!("bad $ref {r}")),
                )
            }
            None => schema,
        }
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array) {
                let passing = options
                    .iter()
                    .filter(|o| self.validate(o, value).is_empty())
                    .count();
                let ok = if key == "anyOf" {
                    passing >= 1
                } else {
                    passing == 1
                };
                if !ok {
                    errors.push(format!(
                        "{at}: {passing} of the {key} options match {value}"
                    ));
                }
            }
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(s, value, at, errors);
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            if !values.contains(value) {
                errors.push(format!("{at}: {value} is not one of {values:?}"));
            }
        }
        let Some(ty) = schema.get("type").and_then(Value::as_str) else {
            if schema.get("nullable") == Some(&Value::Bool(true))
                && schema.as_object().is_some_and(|o| o.len() == 1)
                && !value.is_null()
            {
                errors.push(format!("{at}: {value} is not null"));
            }
            return;
        };
        let type_ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "number" => value.is_number(),
            "integer" => value.is_u64() || value.is_i64(),
            other => panic!("unknown type {other}"),
        };
        if !type_ok {
            errors.push(format!("{at}: {value} is not of type {ty}"));
            return;
        }
        if let (Some(min), Some(v)) = (
            schema.get("minimum").and_then(Value::as_f64),
            value.as_f64(),
        ) {
            if v < min {
                errors.push(format!("{at}: {v} is below the minimum {min}"));
            }
        }
        if ty == "integer" {
            let fits = match schema.get("format").and_then(Value::as_str) {
                Some("uint32") => value.as_u64().is_some_and(|v| v <= u32::MAX as u64),
                Some("uint64" | "uint") => value.is_u64(),
                _ => true,
            };
            if !fits {
                errors.push(format!("{at}: {value} does not fit {}", schema["format"]));
            }
        }
        if ty == "string" && schema.get("format").and_then(Value::as_str) == Some("uuid") {
            let s = value.as_str().unwrap();
            let hex: String = s.chars().filter(|c| *c != '-').collect();
            let groups: Vec<usize> = s.split('-').map(str::len).collect();
            if groups != [8, 4, 4, 4, 12] || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                errors.push(format!("{at}: {s:?} is not a UUID"));
            }
        }
        if ty == "array" {
            if let Some(items) = schema.get("items") {
                for (i, v) in value.as_array().unwrap().iter().enumerate() {
                    self.check(items, v, &format!("{at}[{i}]"), errors);
                }
            }
        }
        if ty == "object" {
            let object = value.as_object().unwrap();
            let properties = schema.get("properties").and_then(Value::as_object);
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = r.as_str().unwrap();
                if !object.contains_key(r) {
                    errors.push(format!("{at}: the required field {r:?} is missing"));
                }
            }
            for (k, v) in object {
                match properties.and_then(|p| p.get(k)) {
                    Some(s) => self.check(s, v, &format!("{at}.{k}"), errors),
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            errors.push(format!("{at}: unknown field {k:?}"))
                        }
                        Some(Value::Bool(true)) => {}
                        Some(s) => self.check(s, v, &format!("{at}.{k}"), errors),
                        None if properties.is_some() => {
                            errors.push(format!("{at}: unknown field {k:?}"))
                        }
                        None => {}
                    },
                }
            }
        }
    }
}

/// A JSON pointer token for a path (`/` -> `~1`, `~` -> `~0`).
fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}
