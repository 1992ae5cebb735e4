//! A service config's JSON read into [`ServiceConfig`], checked as gRFC A6 says.

use std::collections::HashSet;
use std::time::Duration;

use palisade_core::ConfigError;
use serde_json::Value;

use super::json::At;
use super::{MethodConfig, MethodName, Policy, ServiceConfig, Throttling};

/// gRFC A6: `maxAttempts` above 5 is treated as 5.
const MAX_ATTEMPTS: u32 = 5;

pub(super) fn service_config(text: &str) -> Result<ServiceConfig, ConfigError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|error| ConfigError::new("$", format!("is not JSON: {error}")))?;
    let root = At::root(&value);
    root.object()?;
    let mut methods = Vec::new();
    let mut seen = HashSet::new();
    if let Some(list) = root.field("methodConfig") {
        for entry in list.elements()? {
            let method = method_config(&entry)?;
            for (j, name) in method.names.iter().enumerate() {
                if !seen.insert(name.clone()) {
                    return Err(ConfigError::new(
                        format!("{}.name[{j}]", entry.path),
                        "names a method an earlier entry names already",
                    ));
                }
            }
            methods.push(method);
        }
    }
    let throttling = root
        .field("retryThrottling")
        .map(|at| throttling(&at))
        .transpose()?;
    Ok(ServiceConfig {
        methods,
        throttling,
    })
}

fn method_config(at: &At<'_>) -> Result<MethodConfig, ConfigError> {
    let list = at.required("name")?;
    let names = list
        .elements()?
        .map(|name| method_name(&name))
        .collect::<Result<Vec<_>, _>>()?;
    if names.is_empty() {
        return Err(list.error("needs at least one name"));
    }
    let timeout = at.field("timeout").map(|t| positive(&t)).transpose()?;
    let policy = match (at.field("retryPolicy"), at.field("hedgingPolicy")) {
        (Some(_), Some(hedging)) => {
            return Err(hedging.error("a method has a retryPolicy or a hedgingPolicy, not both"));
        }
        (Some(retry), None) => Some(retry_policy(&retry)?),
        (None, Some(hedging)) => Some(hedging_policy(&hedging)?),
        (None, None) => None,
    };
    Ok(MethodConfig {
        names,
        timeout,
        policy,
    })
}

fn method_name(at: &At<'_>) -> Result<MethodName, ConfigError> {
    at.object()?;
    let text = |name: &str| -> Result<Option<String>, ConfigError> {
        let Some(field) = at.field(name) else {
            return Ok(None);
        };
        let text = field.string()?;
        Ok((!text.is_empty()).then(|| text.to_owned()))
    };
    let (service, method) = (text("service")?, text("method")?);
    if service.is_none() && method.is_some() {
        return Err(at.error("a `method` needs its `service`"));
    }
    Ok(MethodName { service, method })
}

/// A duration above zero.
fn positive(at: &At<'_>) -> Result<Duration, ConfigError> {
    let duration = at.duration()?;
    if duration.is_zero() {
        return Err(at.error("must be longer than zero"));
    }
    Ok(duration)
}

/// `maxAttempts`: required, above 1, read as at most 5.
fn max_attempts(at: &At<'_>) -> Result<u32, ConfigError> {
    let field = at.required("maxAttempts")?;
    let n = field.integer()?;
    if n < 2 {
        return Err(field.error("must be at least 2 (the first attempt included)"));
    }
    Ok(n.min(u64::from(MAX_ATTEMPTS)) as u32)
}

fn retry_policy(at: &At<'_>) -> Result<Policy, ConfigError> {
    let max_attempts = max_attempts(at)?;
    let initial_backoff = positive(&at.required("initialBackoff")?)?;
    let max_field = at.required("maxBackoff")?;
    let max_backoff = positive(&max_field)?;
    if max_backoff < initial_backoff {
        return Err(max_field.error("must be at least initialBackoff"));
    }
    let multiplier_field = at.required("backoffMultiplier")?;
    let multiplier = multiplier_field.number()?;
    if multiplier.is_nan() || multiplier <= 0.0 {
        return Err(multiplier_field.error("must be above zero"));
    }
    let codes_field = at.required("retryableStatusCodes")?;
    let codes = codes_field.codes()?;
    if codes.is_empty() {
        return Err(codes_field.error("needs at least one status code"));
    }
    Ok(Policy::Retry {
        max_attempts,
        initial_backoff,
        max_backoff,
        multiplier,
        codes,
    })
}

fn hedging_policy(at: &At<'_>) -> Result<Policy, ConfigError> {
    let max_attempts = max_attempts(at)?;
    let delay = match at.field("hedgingDelay") {
        Some(field) => field.duration()?,
        None => Duration::ZERO,
    };
    let codes = match at.field("nonFatalStatusCodes") {
        Some(field) => field.codes()?,
        None => Vec::new(),
    };
    Ok(Policy::Hedging {
        max_attempts,
        delay,
        codes,
    })
}

fn throttling(at: &At<'_>) -> Result<Throttling, ConfigError> {
    let tokens_field = at.required("maxTokens")?;
    let max_tokens = tokens_field.number()?;
    if !(max_tokens > 0.0 && max_tokens <= 1000.0) {
        return Err(tokens_field.error("must be above 0 and at most 1000"));
    }
    let ratio_field = at.required("tokenRatio")?;
    let token_ratio = ratio_field.number()?;
    if !(token_ratio > 0.0 && token_ratio <= 1.0) {
        return Err(ratio_field.error("must be above 0 and at most 1"));
    }
    Ok(Throttling {
        max_tokens,
        token_ratio,
    })
}
