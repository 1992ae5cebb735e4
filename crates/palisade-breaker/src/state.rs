//! The states a breaker can be in, as its handle and metrics report them.

use std::fmt;

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls pass and their outcomes are counted.
    Closed,
    /// Calls are refused until the open duration has passed.
    Open,
    /// A few probe calls pass; enough successes close the breaker, one failure opens it.
    HalfOpen,
    /// Forced open through the handle: every call is refused until it is released.
    ForcedOpen,
    /// Disabled through the handle (resilience4j's `METRICS_ONLY`): every call passes and
    /// is counted, and the breaker never trips.
    Disabled,
}

impl State {
    /// Every state, in the order of their metric values.
    pub const ALL: [State; 5] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
        State::Disabled,
    ];

    /// The state's place in [`ALL`](Self::ALL).
    pub(crate) fn index(self) -> usize {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
            State::ForcedOpen => 3,
            State::Disabled => 4,
        }
    }

    /// The state's name as a metric label: `closed`, `open`, `half_open`, `forced_open`,
    /// `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
        }
    }

    /// Whether calls are refused in this state (all of them, or all but the probes).
    pub fn is_open(self) -> bool {
        !matches!(self, State::Closed | State::Disabled)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
}
