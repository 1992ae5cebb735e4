//! A scenario's results: JSON for machines, a markdown table for people, SVG plots.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::plot::Series;

/// What a scenario produced.
pub(crate) struct Report {
    pub(crate) scenario: &'static str,
    /// One row per system, fields in display order.
    pub(crate) results: Vec<Map<String, Value>>,
    /// Time series to plot, one file per chart.
    pub(crate) charts: Vec<Chart>,
}

pub(crate) struct Chart {
    pub(crate) file: &'static str,
    pub(crate) title: String,
    pub(crate) y_label: &'static str,
    pub(crate) series: Vec<Series>,
}

impl Report {
    pub(crate) fn json(&self) -> String {
        let value = json!({ "scenario": self.scenario, "results": self.results });
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }

    pub(crate) fn table(&self) -> String {
        let Some(first) = self.results.first() else {
            return String::new();
        };
        let columns: Vec<&String> = first.keys().collect();
        let mut out = format!(
            "## {}\n\n| {} |\n|",
            self.scenario,
            columns
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        out.push_str(&"---|".repeat(columns.len()));
        for row in &self.results {
            let cells: Vec<String> = columns
                .iter()
                .map(|c| match row.get(*c) {
                    Some(Value::Number(n)) if n.is_f64() => {
                        format!("{:.4}", n.as_f64().unwrap_or_default())
                    }
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                })
                .collect();
            out.push_str(&format!("\n| {} |", cells.join(" | ")));
        }
        out
    }

    pub(crate) fn plot(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        self.charts
            .iter()
            .map(|chart| {
                let path = dir.join(chart.file);
                crate::plot::line_chart(&path, &chart.title, chart.y_label, &chart.series)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                Ok(path)
            })
            .collect()
    }
}
