use super::{Limit, Sample};

/// A limit that never moves.
#[derive(Debug, Clone, Copy)]
pub struct Fixed(pub usize);

impl Limit for Fixed {
    fn initial(&self) -> usize {
        self.0
    }

    fn update(&mut self, _: usize, _: Sample) -> usize {
        self.0
    }

    fn bounds(&self) -> (usize, usize) {
        (self.0, self.0)
    }

    fn needs_samples(&self) -> bool {
        false
    }
}
