use super::{Classification, Classify, Outcome};

/// The classifier for plain services: a response is a success, an error is a failure.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorsAsFailures;

impl<Res, E> Classify<Res, E> for ErrorsAsFailures {
    fn classify_response(&self, _: &Res) -> Classification {
        Classification::Complete(Outcome::Success)
    }

    fn classify_error(&self, _: &E) -> Outcome {
        Outcome::Failure
    }
}

/// A classifier made of a closure over the call's result; see [`classify_fn`].
#[derive(Debug, Clone, Copy)]
pub struct ClassifyFn<F>(F);

/// A classifier from a closure: `classify_fn(|result: Result<&Res, &E>| -> Outcome { .. })`.
///
/// ```
/// use palisade_core::{Classify, Classification, Outcome, classify_fn};
///
/// // Timeouts say nothing about the server's health here; other errors do.
/// let classifier = classify_fn(|result: Result<&u32, &std::io::Error>| match result {
///     Ok(_) => Outcome::Success,
///     Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Outcome::Ignored,
///     Err(_) => Outcome::Failure,
/// });
/// let timeout = std::io::Error::from(std::io::ErrorKind::TimedOut);
/// assert_eq!(classifier.classify_error(&timeout), Outcome::Ignored);
/// assert_eq!(classifier.classify_response(&7), Classification::Complete(Outcome::Success));
/// ```
pub fn classify_fn<F>(f: F) -> ClassifyFn<F> {
    ClassifyFn(f)
}

impl<F, Res, E> Classify<Res, E> for ClassifyFn<F>
where
    F: Fn(Result<&Res, &E>) -> Outcome,
{
    fn classify_response(&self, response: &Res) -> Classification {
        Classification::Complete((self.0)(Ok(response)))
    }

    fn classify_error(&self, error: &E) -> Outcome {
        (self.0)(Err(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_fail_and_responses_succeed() {
        let c = ErrorsAsFailures;
        assert_eq!(
            Classify::<u8, ()>::classify_response(&c, &1),
            Classification::Complete(Outcome::Success)
        );
        assert_eq!(
            Classify::<u8, ()>::classify_error(&c, &()),
            Outcome::Failure
        );
    }
}
