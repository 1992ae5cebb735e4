//! Every Rust snippet in the README and the guides is cut from an example that compiles and
//! runs in CI: a snippet that drifts from the code fails here.
//!
//! Each ```` ```rust ```` block is preceded by a marker naming its source,
//! `<!-- snippet: examples/axum_server.rs -->` (invisible on GitHub and docs.rs), and its
//! code — white space and `//` comments aside — must appear in that file, piece by piece, in
//! order. Snippets may leave lines out of the example (a guide shows the part that matters)
//! and may be laid out differently (a README line may hold what rustfmt spreads over
//! three), but cannot say anything the example does not.

use std::path::{Path, PathBuf};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Markdown files users read code in.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    for dir in ["docs", "crates"] {
        let mut found: Vec<_> = walk(&root().join(dir))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n != "target" && n != "fuzz")
            {
                files.extend(walk(&path));
            }
        } else {
            files.push(path);
        }
    }
    files
}

/// A ```` ```rust ```` block: where it is, the source its marker names, and its lines.
struct Snippet {
    at: String,
    source: Option<String>,
    lines: Vec<String>,
}

fn snippets(document: &Path) -> Vec<Snippet> {
    let text = std::fs::read_to_string(document).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_start();
        if fence.starts_with("```rust") {
            let source = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| l.trim().strip_prefix("<!-- snippet:"))
                .and_then(|l| l.strip_suffix("-->"))
                .map(|s| s.trim().to_owned());
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].trim_start().starts_with("```"))
                .expect("a closed block");
            found.push(Snippet {
                at: format!("{}:{}", document.display(), i + 1),
                source,
                lines: lines[i + 1..end].iter().map(|l| (*l).to_owned()).collect(),
            });
            i = end;
        }
        i += 1;
    }
    found
}

/// `line` without its `//` comment (one that starts the line or follows white space, so
/// that `redis://` in a string stays), without any white space, and without a comma before
/// a closing bracket (rustfmt adds one where it spreads a call over lines).
fn code_of(line: &str) -> String {
    let mut cut = line.len();
    let bytes = line.as_bytes();
    for (at, _) in line.match_indices("//") {
        if at == 0 || bytes[at - 1].is_ascii_whitespace() {
            cut = at;
            break;
        }
    }
    let mut code: String = line[..cut].chars().filter(|c| !c.is_whitespace()).collect();
    for close in [",)", ",]", ",}"] {
        code = code.replace(close, &close[1..]);
    }
    code
}

/// A source line as code: a doc comment's line as the code it holds (a doc test compiles
/// and runs too), hidden lines (`# `) included.
fn source_code_of(line: &str) -> String {
    let line = line.trim_start();
    let line = line
        .strip_prefix("///")
        .or_else(|| line.strip_prefix("//!"))
        .map_or(line, |doc| {
            let doc = doc.trim_start();
            doc.strip_prefix("# ").unwrap_or(doc)
        });
    code_of(line)
}

/// Where `snippet` strays from `source`: the first line of code not found after the
/// previous one.
fn first_stray(snippet: &[String], source: &str) -> Option<String> {
    let code: String = source.lines().map(source_code_of).collect();
    // A source line's trailing comma may stand before the next line's closing bracket.
    let code = code_of(&code);
    let mut from = 0;
    for line in snippet {
        let piece = code_of(line);
        // The snippet's next line may close what this one leaves open.
        let piece = piece.strip_suffix(',').unwrap_or(&piece);
        if piece.is_empty() {
            continue;
        }
        match code[from..].find(piece) {
            Some(at) => from += at + piece.len(),
            None => return Some(line.clone()),
        }
    }
    None
}

#[test]
fn every_snippet_is_cut_from_a_compiled_example() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for document in documents() {
        for snippet in snippets(&document) {
            let Some(source) = &snippet.source else {
                problems.push(format!(
                    "{}: no `<!-- snippet: examples/FILE.rs -->` marker",
                    snippet.at
                ));
                continue;
            };
            let Ok(text) = std::fs::read_to_string(root().join(source)) else {
                problems.push(format!("{}: cannot read {source}", snippet.at));
                continue;
            };
            if let Some(stray) = first_stray(&snippet.lines, &text) {
                problems.push(format!(
                    "{}: not in {source}: `{}`",
                    snippet.at,
                    stray.trim()
                ));
            }
            checked += 1;
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    assert!(checked >= 10, "only {checked} snippets found");
}

#[test]
fn a_snippet_that_says_what_the_example_does_not_is_caught() {
    let source = "let app = Router::new()\n    .route(\"/a\", get(a))\n    .layer(x); // why\n";
    let same = [
        "let app = Router::new().route(\"/a\", get(a))",
        ".layer(x);",
    ];
    let same: Vec<String> = same.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(first_stray(&same, source), None);
    let reordered: Vec<String> = vec![".layer(x);".into(), ".route(\"/a\", get(a))".into()];
    assert_eq!(
        first_stray(&reordered, source).as_deref(),
        Some(".route(\"/a\", get(a))")
    );
    let invented: Vec<String> = vec![".layer(y);".into()];
    assert!(first_stray(&invented, source).is_some());
    assert_eq!(
        code_of("connect(\"redis://h/\") // c"),
        "connect(\"redis://h/\")"
    );
    assert_eq!(code_of("f(\n  a,\n  b,\n)"), "f(a,b)");
    assert_eq!(source_code_of("    /// # let x = 1;"), "letx=1;");
}
