//! The breaker's phase, packed into one `u64` so that every transition — and every
//! half-open probe admission — is a single compare-and-swap.
//!
//! Packing is what makes the guarantees hold without a lock: two failures that race to trip
//! the breaker race on the same word, so exactly one wins; two callers that race for the last
//! probe slot race on the same word, so at most the permitted number get one. The generation
//! lets an outcome that arrives late (a call admitted before a transition) be recognised and
//! kept from driving a state it was never part of.
//!
//! ```text
//!  63        48 47        32 31              4 3    2 1   0
//! +------------+------------+-----------------+------+-----+
//! | successes  | in flight  |   generation    | over | st  |
//! +------------+------------+-----------------+------+-----+
//! ```

/// The breaker's own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum St {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

/// What the handle has imposed over the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Override {
    None = 0,
    ForcedOpen = 1,
    Disabled = 2,
}

const ST_MASK: u64 = 0b11;
const OVER_SHIFT: u32 = 2;
const OVER_MASK: u64 = 0b11 << OVER_SHIFT;
const GEN_SHIFT: u32 = 4;
const GEN_MASK: u64 = ((1 << 28) - 1) << GEN_SHIFT;
const IN_FLIGHT_SHIFT: u32 = 32;
const SUCCESSES_SHIFT: u32 = 48;

/// The largest number of probes or successes a phase can count.
pub(crate) const MAX_PROBES: u32 = u16::MAX as u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Phase(pub(crate) u64);

impl Phase {
    pub(crate) const INITIAL: Phase = Phase(0);

    pub(crate) fn st(self) -> St {
        match self.0 & ST_MASK {
            0 => St::Closed,
            1 => St::Open,
            _ => St::HalfOpen,
        }
    }

    pub(crate) fn over(self) -> Override {
        match (self.0 & OVER_MASK) >> OVER_SHIFT {
            0 => Override::None,
            1 => Override::ForcedOpen,
            _ => Override::Disabled,
        }
    }

    pub(crate) fn generation(self) -> u32 {
        ((self.0 & GEN_MASK) >> GEN_SHIFT) as u32
    }

    pub(crate) fn in_flight(self) -> u32 {
        ((self.0 >> IN_FLIGHT_SHIFT) & 0xffff) as u32
    }

    pub(crate) fn successes(self) -> u32 {
        (self.0 >> SUCCESSES_SHIFT) as u32
    }

    /// A phase in `st` one generation on, with no probes counted.
    pub(crate) fn next(self, st: St) -> Phase {
        let generation = u64::from(self.generation().wrapping_add(1)) << GEN_SHIFT & GEN_MASK;
        Phase(st as u64 | (self.0 & OVER_MASK) | generation)
    }

    /// The same phase with other probe counts.
    pub(crate) fn with_probes(self, in_flight: u32, successes: u32) -> Phase {
        let kept = self.0 & (ST_MASK | OVER_MASK | GEN_MASK);
        Phase(
            kept | u64::from(in_flight.min(MAX_PROBES)) << IN_FLIGHT_SHIFT
                | u64::from(successes.min(MAX_PROBES)) << SUCCESSES_SHIFT,
        )
    }

    /// The same phase under another override, one generation on (so outcomes admitted under
    /// the old override do not drive the new state).
    pub(crate) fn with_override(self, over: Override) -> Phase {
        let next = self.next(self.st());
        Phase((next.0 & !OVER_MASK) | (over as u64) << OVER_SHIFT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_independent() {
        let p = Phase::INITIAL.next(St::HalfOpen).with_probes(3, 2);
        assert_eq!(p.st(), St::HalfOpen);
        assert_eq!(p.generation(), 1);
        assert_eq!(p.in_flight(), 3);
        assert_eq!(p.successes(), 2);
        assert_eq!(p.over(), Override::None);
        let forced = p.with_override(Override::ForcedOpen);
        assert_eq!(forced.over(), Override::ForcedOpen);
        assert_eq!(forced.st(), St::HalfOpen);
        assert_eq!(forced.generation(), 2);
        let closed = forced.next(St::Closed);
        assert_eq!(
            closed.over(),
            Override::ForcedOpen,
            "overrides survive transitions"
        );
        assert_eq!((closed.in_flight(), closed.successes()), (0, 0));
    }

    #[test]
    fn generation_wraps_without_touching_other_fields() {
        let mut p = Phase::INITIAL.with_override(Override::Disabled);
        p = Phase(p.0 | GEN_MASK);
        let next = p.next(St::Open);
        assert_eq!(next.generation(), 0);
        assert_eq!(next.st(), St::Open);
        assert_eq!(next.over(), Override::Disabled);
    }
}
