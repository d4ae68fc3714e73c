//! A small JSON Schema validator for the subset the shipped schemas use: `type` (one or a
//! list), `required`, `properties`, `additionalProperties` (bool or schema), `items`,
//! `enum`, `const`, `minimum`, `minItems`, `$ref` to `#/$defs/...`. Errors name the JSON
//! path of the offending field, e.g. `cases[3].timing.median_ns`.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub struct SchemaError {
    pub path: String,
    pub message: String,
}

/// Every violation of `schema` by `doc` (empty when valid).
pub fn validate(schema: &Value, doc: &Value) -> Vec<SchemaError> {
    let mut errors = Vec::new();
    check(schema, schema, doc, "", &mut errors);
    errors
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(want: &str, v: &Value) -> bool {
    let got = type_name(v);
    got == want || (want == "number" && got == "integer")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn check(root: &Value, schema: &Value, doc: &Value, path: &str, errors: &mut Vec<SchemaError>) {
    let here = if path.is_empty() { "(document)" } else { path };
    let mut fail = |message: String| errors.push(SchemaError { path: here.to_string(), message });
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target =
            r.strip_prefix("#/").and_then(|p| p.split('/').try_fold(root, |v, k| v.get(k)));
        match target {
            Some(t) => check(root, t, doc, path, errors),
            None => fail(format!("schema has an unresolvable $ref `{r}`")),
        }
        return;
    }
    if let Some(t) = schema.get("type") {
        let wanted: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !wanted.is_empty() && !wanted.iter().any(|w| type_matches(w, doc)) {
            fail(format!("expected {}, found {}", wanted.join(" or "), type_name(doc)));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(doc) {
            fail(format!("{doc} is not one of {}", Value::Array(options.clone())));
        }
    }
    if let Some(c) = schema.get("const") {
        if c != doc {
            fail(format!("expected {c}, found {doc}"));
        }
    }
    if let (Some(min), Some(x)) = (schema.get("minimum").and_then(Value::as_f64), doc.as_f64()) {
        if x < min {
            fail(format!("{x} is below the minimum {min}"));
        }
    }
    if let Value::Object(map) = doc {
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for key in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(key) {
                    errors.push(SchemaError {
                        path: join(path, key),
                        message: "required field is missing".into(),
                    });
                }
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, value) in map {
            let sub = join(path, key);
            match properties.and_then(|p| p.get(key)) {
                Some(s) => check(root, s, value, &sub, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errors.push(SchemaError { path: sub, message: "unknown field".into() })
                    }
                    Some(s @ Value::Object(_)) => check(root, s, value, &sub, errors),
                    _ => {}
                },
            }
        }
    }
    if let Value::Array(items) = doc {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
            if (items.len() as u64) < min {
                errors.push(SchemaError {
                    path: here.to_string(),
                    message: format!("{} items, at least {min} required", items.len()),
                });
            }
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(root, item_schema, item, &format!("{path}[{i}]"), errors);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_paths_of_violations() {
        let schema = json!({
            "type": "object",
            "required": ["a", "b"],
            "properties": {
                "a": {"type": "integer", "minimum": 1},
                "b": {"type": "array", "items": {"$ref": "#/$defs/item"}},
                "c": {"enum": ["x", "y"]}
            },
            "additionalProperties": false,
            "$defs": {"item": {"type": "object", "required": ["v"], "properties": {"v": {"type": ["number", "null"]}}}}
        });
        assert!(validate(&schema, &json!({"a": 1, "b": [{"v": 1.5}, {"v": null}]})).is_empty());
        let errors = validate(&schema, &json!({"a": 0, "b": [{"v": "s"}, {}], "c": "z", "d": 1}));
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["a", "b[0].v", "b[1].v", "c", "d"], "{errors:?}");
        let missing = validate(&schema, &json!({}));
        assert_eq!(missing.len(), 2);
        assert_eq!(validate(&schema, &json!(3))[0].message, "expected object, found integer");
    }
}
