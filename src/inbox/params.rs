//! The numeric request parameters (`max`, `timeout`) and PopBox's rules for them.

use std::time::Duration;

use serde_json::Value;

use super::InboxError;
use crate::config::InboxSettings;

/// A parameter as found in the JSON body or the query string.
#[derive(Debug, Clone, Copy)]
pub enum ParamValue<'a> {
    Json(&'a Value),
    Text(&'a str),
}

/// Reads a non-negative whole number. Fractions are cut off (PopBox used `parseInt`); anything
/// negative or not a number is refused with a message naming the parameter.
pub fn non_negative_int(
    name: &str,
    value: Option<ParamValue<'_>>,
) -> Result<Option<u64>, InboxError> {
    let Some(value) = value else { return Ok(None) };
    match number(value) {
        Some(n) if n.is_finite() && n >= 0.0 => Ok(Some(n.trunc().min(u64::MAX as f64) as u64)),
        _ => Err(InboxError::invalid(format!(
            "invalid {name}: expected a non-negative whole number, got {}",
            describe(value)
        ))),
    }
}

/// A JSON number, or a string (JSON or query) that reads as one.
fn number(value: ParamValue<'_>) -> Option<f64> {
    match value {
        ParamValue::Json(Value::Number(n)) => n.as_f64(),
        ParamValue::Json(Value::String(s)) => s.trim().parse::<f64>().ok(),
        ParamValue::Text(s) => s.trim().parse::<f64>().ok(),
        ParamValue::Json(_) => None,
    }
}

fn describe(value: ParamValue<'_>) -> String {
    match value {
        ParamValue::Json(v) => v.to_string(),
        ParamValue::Text(s) => format!("{s:?}"),
    }
}

/// The most messages one pop or peek takes, whatever `max` asks: more than any queue holds, and
/// exact for every store (Redis scripts count in doubles, which are exact below 2^53).
const MAX_PER_CALL: u64 = u32::MAX as u64;

/// How many messages one pop or peek takes: default `max_messages`, at least one; there is no
/// upper bound beyond `MAX_PER_CALL`, as PopBox had none.
pub fn max_messages(
    value: Option<ParamValue<'_>>,
    settings: &InboxSettings,
) -> Result<usize, InboxError> {
    let max = non_negative_int("max", value)?.unwrap_or(settings.max_messages as u64);
    Ok(max.clamp(1, MAX_PER_CALL) as usize)
}

/// How long a pop waits: default `pop_timeout`, `0` means one second (as in PopBox), capped at
/// `max_pop_timeout`.
pub fn pop_timeout(
    value: Option<ParamValue<'_>>,
    settings: &InboxSettings,
) -> Result<Duration, InboxError> {
    let secs = non_negative_int("timeout", value)?.unwrap_or(settings.pop_timeout);
    Ok(Duration::from_secs(secs.clamp(1, settings.max_pop_timeout)))
}

/// The longest `timeoutACK` accepted: a day.
const MAX_ACK_TIMEOUT: f64 = 86_400.0;

/// How long a reliable consumer has to acknowledge: default `ack_timeout`; any non-negative
/// number of seconds, fractions kept (PopBox did not round it); `0` means one second, as in
/// PopBox.
pub fn ack_timeout(
    value: Option<ParamValue<'_>>,
    settings: &InboxSettings,
) -> Result<Duration, InboxError> {
    let Some(value) = value else {
        return Ok(Duration::from_secs(settings.ack_timeout));
    };
    match number(value) {
        Some(0.0) => Ok(Duration::from_secs(1)),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Duration::from_secs_f64(s.min(MAX_ACK_TIMEOUT))),
        _ => Err(InboxError::invalid(format!(
            "invalid timeoutACK: expected a non-negative number of seconds, got {}",
            describe(value)
        ))),
    }
}

/// The longest `delay` accepted: a year.
const MAX_DELAY: f64 = 365.0 * 86_400.0;

/// `delay` of `POST /trans`: how long to hold the message back, in seconds (fractions kept);
/// absent or `0`: push at once.
pub fn delay(value: Option<ParamValue<'_>>) -> Result<Option<Duration>, InboxError> {
    let Some(value) = value else { return Ok(None) };
    match number(value) {
        Some(0.0) => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 && s <= MAX_DELAY => {
            Ok(Some(Duration::from_secs_f64(s)))
        }
        _ => Err(InboxError::invalid(format!(
            "invalid delay: expected a number of seconds from 0 to {MAX_DELAY}, got {}",
            describe(value)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> InboxSettings {
        InboxSettings::default()
    }

    #[test]
    fn timeout_rules() {
        let s = settings();
        assert_eq!(pop_timeout(None, &s).unwrap(), Duration::from_secs(5));
        assert_eq!(
            pop_timeout(Some(ParamValue::Text("0")), &s).unwrap(),
            Duration::from_secs(1)
        );
        assert_eq!(
            pop_timeout(Some(ParamValue::Text("1000")), &s).unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            pop_timeout(Some(ParamValue::Json(&json!(2.9))), &s).unwrap(),
            Duration::from_secs(2)
        );
        let err = pop_timeout(Some(ParamValue::Text("-1")), &s).unwrap_err();
        assert!(err.to_string().contains("invalid timeout"), "{err}");
        assert!(pop_timeout(Some(ParamValue::Text("soon")), &s).is_err());
        assert!(pop_timeout(Some(ParamValue::Json(&json!([1]))), &s).is_err());
    }

    #[test]
    fn ack_timeout_rules() {
        let s = settings();
        assert_eq!(ack_timeout(None, &s).unwrap(), Duration::from_secs(20));
        assert_eq!(
            ack_timeout(Some(ParamValue::Text("0")), &s).unwrap(),
            Duration::from_secs(1)
        );
        assert_eq!(
            ack_timeout(Some(ParamValue::Json(&json!(1.5))), &s).unwrap(),
            Duration::from_millis(1500)
        );
        for bad in ["-1", "later", "NaN", "inf"] {
            let err = ack_timeout(Some(ParamValue::Text(bad)), &s).unwrap_err();
            assert!(err.to_string().contains("invalid timeoutACK"), "{err}");
        }
    }

    #[test]
    fn delay_rules() {
        assert_eq!(delay(None).unwrap(), None);
        assert_eq!(delay(Some(ParamValue::Text("0"))).unwrap(), None);
        assert_eq!(
            delay(Some(ParamValue::Json(&json!(2.5)))).unwrap(),
            Some(Duration::from_millis(2500))
        );
        for bad in [json!(-1), json!("soon"), json!(1e12), json!([1])] {
            let err = delay(Some(ParamValue::Json(&bad))).unwrap_err();
            assert!(err.to_string().contains("invalid delay"), "{err}");
        }
    }

    #[test]
    fn max_rules() {
        let s = settings();
        assert_eq!(max_messages(None, &s).unwrap(), 1000);
        assert_eq!(max_messages(Some(ParamValue::Text("0")), &s).unwrap(), 1);
        assert_eq!(
            max_messages(Some(ParamValue::Json(&json!("7"))), &s).unwrap(),
            7
        );
        assert!(max_messages(Some(ParamValue::Json(&json!(-3))), &s).is_err());
        assert!(max_messages(Some(ParamValue::Json(&json!(true))), &s).is_err());
    }
}
