//! Reading palisade's own metrics back for the live view: the Prometheus text the gateway
//! serves at `/metrics`, summed by name and labels.

use std::collections::BTreeMap;

/// One scrape.
pub(crate) struct Scrape {
    samples: Vec<Sample>,
}

/// `name{labels} value`.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn has(&self, key: &str, value: &str) -> bool {
        self.labels.iter().any(|(k, v)| k == key && v == value)
    }
}

impl Scrape {
    pub(crate) fn new(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(parse_line)
            .collect();
        Self { samples }
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> {
        self.samples
            .iter()
            .filter(move |s| s.name == name && labels.iter().all(|(k, v)| s.has(k, v)))
    }

    /// The sum of the samples of `name` that carry every label in `labels`.
    pub(crate) fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        // Folded from +0.0: `Sum` for floats starts at -0.0, which prints as "-0".
        self.matching(name, labels)
            .fold(0.0, |sum, s| sum + s.value)
    }

    /// As [`sum`](Self::sum), leaving out the samples that carry `except`.
    pub(crate) fn sum_except(
        &self,
        name: &str,
        except: (&str, &str),
        labels: &[(&str, &str)],
    ) -> f64 {
        self.matching(name, labels)
            .filter(|s| !s.has(except.0, except.1))
            .fold(0.0, |sum, s| sum + s.value)
    }

    /// The samples of `name` summed by the value of `label`, renamed by `rename`, as
    /// `a 12 · b 30`.
    pub(crate) fn by_label(
        &self,
        name: &str,
        label: &str,
        rename: impl Fn(&str) -> String,
    ) -> String {
        let mut sums: BTreeMap<String, f64> = BTreeMap::new();
        for sample in self.matching(name, &[]) {
            if let Some((_, v)) = sample.labels.iter().find(|(k, _)| k == label) {
                *sums.entry(rename(v)).or_default() += sample.value;
            }
        }
        sums.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(" · ")
    }

    /// The `state` label of the sample of `name` whose value is 1 (a state gauge).
    /// The values of `label` on the samples of `name` that are `value` (the gauges that say
    /// "yes"), renamed by `rename`, as `a, b`; `-` for none.
    pub(crate) fn where_value(
        &self,
        name: &str,
        label: &str,
        value: f64,
        rename: impl Fn(&str) -> String,
    ) -> String {
        let found: Vec<String> = (self.matching(name, &[]))
            .filter(|s| s.value == value)
            .filter_map(|s| s.labels.iter().find(|(k, _)| k == label))
            .map(|(_, v)| rename(v))
            .collect();
        if found.is_empty() {
            "-".to_owned()
        } else {
            found.join(", ")
        }
    }

    pub(crate) fn state(&self, name: &str, labels: &[(&str, &str)]) -> String {
        self.matching(name, labels)
            .find(|s| s.value == 1.0)
            .and_then(|s| s.labels.iter().find(|(k, _)| k == "state"))
            .map_or_else(|| "-".to_owned(), |(_, v)| v.clone())
    }
}

/// `name{a="1",b="2"} 3.5`.
fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, rest)) = series.split_once('{') else {
        return Some(Sample {
            name: series.to_owned(),
            labels: Vec::new(),
            value,
        });
    };
    let labels = rest
        .trim_end_matches('}')
        .split("\",")
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.trim().to_owned(), v.trim_matches('"').to_owned()))
        })
        .collect();
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}
