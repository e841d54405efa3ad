//! JavaScript value rules that PopBox's clients observe: truthiness, `String(v)` and `.length`.
//!
//! PopBox validated bodies with JavaScript's loose rules and stored every field with `String()`,
//! so a compatible server has to apply the same rules to decide what is "missing" and what
//! string a client reads back.

use serde_json::Value;

/// JavaScript truthiness: `null`, `false`, `0`, `""` are falsy; objects and arrays are truthy.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `String(v)`: strings as they are, arrays joined by commas, objects `[object Object]`.
pub fn to_js_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Null => String::new(),
                other => to_js_string(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_owned(),
    }
}

/// `v.length`: UTF-16 code units for strings, elements for arrays, nothing for the rest.
pub fn js_length(v: &Value) -> Option<usize> {
    match v {
        // ASCII, the usual payload, is one unit per byte, and checking for it is fast.
        Value::String(s) if s.is_ascii() => Some(s.len()),
        // Otherwise one unit per char, two for a char beyond the BMP (four bytes in UTF-8, led
        // by a byte of 0xF0 or more): two counting passes, much quicker than encoding.
        Value::String(s) => Some(s.chars().count() + s.bytes().filter(|b| *b >= 0xF0).count()),
        Value::Array(items) => Some(items.len()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn truthiness_follows_javascript() {
        for falsy in [json!(null), json!(false), json!(0), json!(0.0), json!("")] {
            assert!(!truthy(&falsy), "{falsy} should be falsy");
        }
        for t in [json!(true), json!(1), json!("0"), json!([]), json!({})] {
            assert!(truthy(&t), "{t} should be truthy");
        }
    }

    #[test]
    fn stringification_follows_javascript() {
        assert_eq!(to_js_string(&json!({"a": 1})), "[object Object]");
        assert_eq!(to_js_string(&json!([1, 2])), "1,2");
        assert_eq!(to_js_string(&json!([1, null, "x"])), "1,,x");
        assert_eq!(to_js_string(&json!(12)), "12");
        assert_eq!(to_js_string(&json!(1.5)), "1.5");
        assert_eq!(to_js_string(&json!(true)), "true");
        assert_eq!(to_js_string(&json!("s")), "s");
    }

    #[test]
    fn length_counts_utf16_units() {
        assert_eq!(js_length(&json!("😀")), Some(2));
        let mixed = "aé€😀z".repeat(100);
        assert_eq!(js_length(&json!(mixed)), Some(mixed.encode_utf16().count()));
        assert_eq!(js_length(&json!([1, 2, 3])), Some(3));
        assert_eq!(js_length(&json!({"length": 3})), None);
    }
}
