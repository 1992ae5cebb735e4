//! Reading (and writing) the timeouts callers send.
//!
//! - gRPC's `grpc-timeout`: 1 to 8 ASCII digits, then a unit — `H` hours, `M` minutes, `S`
//!   seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds (`100m` is 100 ms).
//! - For plain HTTP, a header of whole milliseconds (`x-request-timeout-ms: 250` by
//!   default), as Envoy's `x-envoy-upstream-rq-timeout-ms` is.
//!
//! Both are network input: anything else is an [`InvalidTimeout`], never a panic.

use std::fmt;
use std::time::Duration;

use http::HeaderValue;

/// A timeout header that does not say a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTimeout {
    reason: &'static str,
}

impl InvalidTimeout {
    fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    /// A timeout header sent more than once.
    pub(crate) fn twice() -> Self {
        Self::new("the timeout header is sent more than once")
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for InvalidTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

impl std::error::Error for InvalidTimeout {}

/// The duration a `grpc-timeout` value says.
pub fn parse_grpc_timeout(value: &HeaderValue) -> Result<Duration, InvalidTimeout> {
    let bytes = value.as_bytes();
    let Some((&unit, digits)) = bytes.split_last() else {
        return Err(InvalidTimeout::new("grpc-timeout is empty"));
    };
    let amount = digits_of(
        digits,
        8,
        "grpc-timeout needs 1 to 8 digits before its unit",
    )?;
    Ok(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => {
            return Err(InvalidTimeout::new(
                "grpc-timeout's unit is one of H, M, S, m, u, n",
            ));
        }
    })
}

/// `timeout` as a `grpc-timeout` value: the finest unit that holds it in 8 digits, rounded
/// up so that the callee never gets more time than the caller has.
pub fn grpc_timeout_value(timeout: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let (amount, unit) = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ]
    .into_iter()
    .map(|(per, unit)| (nanos.div_ceil(per), unit))
    .find(|(amount, _)| *amount <= MAX)
    .unwrap_or((MAX, 'H'));
    HeaderValue::try_from(format!("{amount}{unit}")).expect("digits and a letter")
}

/// The duration a header of whole milliseconds says.
pub fn parse_millis(value: &HeaderValue) -> Result<Duration, InvalidTimeout> {
    let amount = digits_of(
        value.as_bytes(),
        10,
        "a timeout in milliseconds is 1 to 10 digits",
    )?;
    Ok(Duration::from_millis(amount))
}

/// `digits` as a number, if they are 1 to `most` ASCII digits.
fn digits_of(digits: &[u8], most: usize, reason: &'static str) -> Result<u64, InvalidTimeout> {
    if digits.is_empty() || digits.len() > most || !digits.iter().all(u8::is_ascii_digit) {
        return Err(InvalidTimeout::new(reason));
    }
    // At most 10 digits: no overflow in a u64.
    Ok(digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn value(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).unwrap()
    }

    #[test]
    fn every_grpc_unit_reads() {
        let read = |text| parse_grpc_timeout(&value(text)).unwrap();
        assert_eq!(read("2H"), Duration::from_secs(7200));
        assert_eq!(read("3M"), Duration::from_secs(180));
        assert_eq!(read("5S"), Duration::from_secs(5));
        assert_eq!(read("100m"), Duration::from_millis(100));
        assert_eq!(read("250u"), Duration::from_micros(250));
        assert_eq!(read("99999999n"), Duration::from_nanos(99_999_999));
        assert_eq!(read("0m"), Duration::ZERO);
    }

    #[test]
    fn malformed_grpc_timeouts_say_why() {
        for bad in [
            "",
            "m",
            "100",
            "100x",
            "123456789m",
            "-1S",
            "1.5S",
            " 1S",
            "1 S",
        ] {
            let bad = HeaderValue::from_bytes(bad.as_bytes()).unwrap();
            assert!(parse_grpc_timeout(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn milliseconds_read_and_refuse() {
        assert_eq!(parse_millis(&value("250")), Ok(Duration::from_millis(250)));
        for bad in ["", "25.0", "-5", "12345678901", "1e3"] {
            let bad = HeaderValue::from_bytes(bad.as_bytes()).unwrap();
            assert!(parse_millis(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_timeout_is_written_in_the_finest_unit_that_fits_rounded_up() {
        let written = |d| grpc_timeout_value(d).to_str().unwrap().to_owned();
        assert_eq!(written(Duration::from_millis(100)), "100000u");
        assert_eq!(written(Duration::from_nanos(1_500)), "1500n");
        assert_eq!(
            written(Duration::from_secs(3600 * 24 * 365 * 10_000)),
            "87600000H"
        );
        assert_eq!(written(Duration::from_secs(u64::MAX)), "99999999H");
    }

    proptest! {
        #[test]
        fn any_header_value_reads_or_is_refused_without_panicking(bytes in proptest::collection::vec(32u8..127, 0..16)) {
            let value = HeaderValue::from_bytes(&bytes).unwrap();
            let _ = parse_grpc_timeout(&value);
            let _ = parse_millis(&value);
        }

        #[test]
        fn a_written_timeout_reads_back_no_shorter(nanos in 0u64..u64::MAX / 4) {
            let timeout = Duration::from_nanos(nanos);
            let read = parse_grpc_timeout(&grpc_timeout_value(timeout)).unwrap();
            prop_assert!(read >= timeout);
        }
    }
}
