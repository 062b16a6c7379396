//! The derivation pages (docs/derivations/*.md) cannot rot: every test,
//! function, type and file a page cites must exist in the code, every page
//! names at least one test that proves it, and every link from a doc comment
//! to a section of a page (`crate::derivations::glow#actnorm`) lands on a
//! heading of that page.
//!
//! The convention the pages follow (the module doc of src/derivations.rs
//! says it for the writers of pages):
//!
//! - A test or function is cited by its name in backticks:
//!   `affine_coupling_passes_check_flow`. A property test may be qualified
//!   by its module in the `proptests` binary:
//!   `tensor_kernels::block_masked_products_match_the_dense_masked_ones`.
//! - Code is cited by its item path in backticks, from the crate root
//!   (`flows::coupling::AffineCoupling`) or from a type
//!   (`Dequantize::log_det`, `Transform::Gated`, `Made::input_degrees`);
//!   arguments may follow (`Mask::half(dim, flip)`).
//! - A file is cited by its path from the crate root: `tests/checkpoint.rs`.
//!
//! What is checked, in backticks outside fenced blocks: every path with
//! `::`; every bare `snake_case_name` with an underscore (it must be a `fn`,
//! a module or a field); every bare `CamelCase` name (a type, trait or enum
//! variant) and `UPPER_CASE` name (a constant); every file path. Other
//! backticked text (expressions, shapes, commands, one-word variables such
//! as `net` or `z1`) is left alone. Names are looked up in src/, tests/,
//! proptests/, benches/ and examples/.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Names from the standard library a page may cite bare.
const STD_NAMES: [&str; 8] = [
    "Vec", "Arc", "Rc", "Box", "Option", "String", "Mutex", "HashMap",
];

/// Crates a page may cite that are not this one.
const EXTERNAL: [&str; 8] = [
    "std",
    "core",
    "rand",
    "rand_distr",
    "matrixmultiply",
    "rayon",
    "byteorder",
    "proptest",
];

/// Every `.rs` file under `dir`: (path from the crate root, text).
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = path
                .strip_prefix(root)
                .expect("under the crate root")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            out.push((name, text));
        }
    }
}

/// The words that follow `keyword ` anywhere in `text` (`fn` → the names
/// of every function, test and method).
fn names_after(text: &str, keyword: &str) -> Vec<String> {
    let mut names = Vec::new();
    let pattern = format!("{keyword} ");
    let mut rest = text;
    while let Some(at) = rest.find(&pattern) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + pattern.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
    }
    names
}

/// Whether `text` declares `name` as a field (`name: T` at the start of a
/// line, `pub` allowed) or an enum variant (`Name,` `Name {` `Name(` alone
/// at the start of a line).
fn declares_member(text: &str, name: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim_start();
        let line = line
            .strip_prefix("pub(crate) ")
            .or_else(|| line.strip_prefix("pub "))
            .unwrap_or(line);
        line.strip_prefix(name).is_some_and(|after| {
            let after = after.trim_start();
            after.starts_with(':') && !after.starts_with("::")
                || after.is_empty()
                || after.starts_with(',')
                || after.starts_with('{')
                || after.starts_with('(')
        })
    })
}

/// Whether `word` appears in `text` as a whole identifier.
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        !text[..at].chars().next_back().is_some_and(ident)
            && !text[at + word.len()..].chars().next().is_some_and(ident)
    })
}

/// The code, indexed for look-ups.
struct Code {
    root: PathBuf,
    /// (path from the crate root, text) of every Rust file.
    files: Vec<(String, String)>,
    fns: BTreeSet<String>,
    /// Tests: functions defined under tests/ and proptests/, and in the
    /// `#[cfg(test)]` part of a file of src/.
    test_fns: BTreeSet<String>,
    types: BTreeSet<String>,
    consts: BTreeSet<String>,
    mods: BTreeSet<String>,
}

impl Code {
    fn read(root: &Path) -> Code {
        let mut files = Vec::new();
        for dir in ["src", "tests", "proptests", "benches", "examples"] {
            rust_files(root, &root.join(dir), &mut files);
        }
        let collect = |keywords: &[&str], filter: &dyn Fn(&str) -> bool| -> BTreeSet<String> {
            files
                .iter()
                .filter(|(name, _)| filter(name))
                .flat_map(|(_, text)| keywords.iter().flat_map(move |k| names_after(text, k)))
                .collect()
        };
        let all = |_: &str| true;
        let fns = collect(&["fn"], &all);
        let test_fns = files
            .iter()
            .flat_map(|(name, text)| {
                let tests = if name.starts_with("src/") {
                    text.split_once("#[cfg(test)]").map_or("", |(_, t)| t)
                } else {
                    text
                };
                names_after(tests, "fn")
            })
            .collect();
        let types = collect(&["struct", "enum", "trait", "type", "union"], &all);
        let consts = collect(&["const", "static"], &all);
        let mut mods = collect(&["mod"], &all);
        // Module files: src/flows/coupling.rs is module `coupling`.
        for (name, _) in &files {
            let stem = Path::new(name)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .to_string();
            mods.insert(stem);
        }
        Code {
            root: root.to_path_buf(),
            files,
            fns,
            test_fns,
            types,
            consts,
            mods,
        }
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }

    /// The file of the module at `path` from `src/` (`["flows", "coupling"]`).
    fn module_file(&self, path: &[&str]) -> Option<String> {
        let joined = path.join("/");
        let candidates = if path.is_empty() {
            vec!["src/lib.rs".to_string()]
        } else {
            vec![format!("src/{joined}.rs"), format!("src/{joined}/mod.rs")]
        };
        candidates.into_iter().find(|c| self.text(c).is_some())
    }

    /// Whether `text` defines `item` (a fn, type, const or inline module)
    /// or re-exports it with `pub use`.
    fn defines_or_reexports(text: &str, item: &str) -> bool {
        let defines = [
            "fn", "struct", "enum", "trait", "type", "const", "static", "mod",
        ]
        .iter()
        .any(|k| names_after(text, k).iter().any(|n| n == item));
        let reexports = text
            .split("pub use ")
            .skip(1)
            .any(|statement| has_word(statement.split(';').next().unwrap_or(""), item));
        defines || reexports
    }

    /// The files that define type `ty` or implement something for it.
    fn files_about(&self, ty: &str) -> Vec<&str> {
        self.files
            .iter()
            .filter(|(_, text)| {
                ["struct", "enum", "trait", "type"]
                    .iter()
                    .any(|k| names_after(text, k).iter().any(|n| n == ty))
                    || text.split("impl").skip(1).any(|rest| {
                        let head = rest.split(['{', ';']).next().unwrap_or("");
                        has_word(head, ty)
                    })
            })
            .map(|(_, text)| text.as_str())
            .collect()
    }

    /// `member` of type `ty`: a method, field or variant.
    fn has_member(&self, ty: &str, member: &str) -> bool {
        self.files_about(ty).iter().any(|text| {
            names_after(text, "fn").iter().any(|n| n == member) || declares_member(text, member)
        })
    }

    /// Why the citation `path` (segments split at `::`) does not resolve,
    /// or `None` when it does.
    fn check_path(&self, segments: &[&str]) -> Option<String> {
        let first = segments[0];
        if EXTERNAL.contains(&first) {
            return None;
        }
        let is_type = |s: &str| {
            s.starts_with(|c: char| c.is_ascii_uppercase()) && s.chars().any(|c| c.is_lowercase())
        };
        if segments.len() == 1 {
            return self.check_bare(first);
        }
        // A test qualified by its module of the proptests binary.
        if self.text(&format!("proptests/{first}.rs")).is_some()
            && self.module_file(&[first]).is_none()
        {
            let text = self.text(&format!("proptests/{first}.rs")).unwrap();
            return match segments {
                [_, name] if names_after(text, "fn").iter().any(|n| n == name) => None,
                _ => Some(format!(
                    "no `fn {}` in proptests/{first}.rs",
                    segments[1..].join("::")
                )),
            };
        }
        // From a type: Type::member.
        if is_type(first) {
            if !self.types.contains(first) {
                return Some(format!("no type `{first}`"));
            }
            return self.check_members(first, &segments[1..]);
        }
        // From the crate root: modules, then an item, then its members.
        let mut module: Vec<&str> = Vec::new();
        let mut i = 0;
        while i < segments.len() {
            let mut deeper = module.clone();
            deeper.push(segments[i]);
            if self.module_file(&deeper).is_some() {
                module = deeper;
                i += 1;
            } else {
                break;
            }
        }
        if module.is_empty() {
            return Some(format!(
                "`{first}` is neither a module of the crate nor a known crate"
            ));
        }
        let Some(item) = segments.get(i) else {
            return None; // a module
        };
        let file = self.module_file(&module).expect("found above");
        if !Self::defines_or_reexports(self.text(&file).unwrap(), item) {
            return Some(format!("{file} neither defines nor re-exports `{item}`"));
        }
        if is_type(item) {
            self.check_members(item, &segments[i + 1..])
        } else if segments.len() > i + 1 {
            Some(format!(
                "`{item}` in {file} is not a type, so it has no `{}`",
                segments[i + 1]
            ))
        } else {
            None
        }
    }

    /// The first of `members` must be a method, field or variant of type
    /// `ty`; what follows it (a variant's field, say) is not checked.
    fn check_members(&self, ty: &str, members: &[&str]) -> Option<String> {
        match members {
            [] => None,
            [member, ..] if !self.has_member(ty, member) => {
                Some(format!("`{ty}` has no method, field or variant `{member}`"))
            }
            _ => None,
        }
    }

    /// A name cited without a path.
    fn check_bare(&self, name: &str) -> Option<String> {
        let upper = name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if upper {
            return (!self.consts.contains(name)).then(|| format!("no `const {name}`"));
        }
        if name.starts_with(|c: char| c.is_ascii_uppercase()) {
            if STD_NAMES.contains(&name) {
                return None;
            }
            let variant = self.files.iter().any(|(_, t)| declares_member(t, name));
            return (!self.types.contains(name) && !variant)
                .then(|| format!("no type, trait or variant `{name}`"));
        }
        let field = || self.files.iter().any(|(_, t)| declares_member(t, name));
        (!self.fns.contains(name) && !self.mods.contains(name) && !field())
            .then(|| format!("no `fn {name}` (nor a module or field of that name)"))
    }
}

/// A backticked span of a page, outside fenced blocks, with its line.
fn code_spans(page: &str) -> Vec<(usize, String)> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for (n, line) in page.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let parts: Vec<&str> = line.split('`').collect();
        // Odd pieces are inside backticks (when the backtick that closes them exists).
        for k in (1..parts.len().saturating_sub(1)).step_by(2) {
            spans.push((n + 1, parts[k].to_string()));
        }
    }
    spans
}

/// What a span cites, if it is a citation: a path or name (arguments cut
/// off) or a file.
enum Citation<'a> {
    Path(Vec<&'a str>),
    File(&'a str),
}

fn citation(span: &str) -> Option<Citation<'_>> {
    let ident = |s: &str| {
        !s.is_empty()
            && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if [
        "src/",
        "tests/",
        "proptests/",
        "benches/",
        "examples/",
        "docs/",
    ]
    .iter()
    .any(|d| span.starts_with(d))
        && !span.contains(' ')
    {
        return Some(Citation::File(span));
    }
    // Cut one trailing argument list: `Mask::half(dim, flip)`, not
    // `log_det(z) == 0` or `f(a)(b)`.
    let path = match span.find('(') {
        None => span,
        Some(open) => {
            let mut depth = 0;
            let close = span[open..].char_indices().find_map(|(k, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                (depth == 0).then_some(open + k)
            })?;
            if close + 1 != span.len() {
                return None;
            }
            &span[..open]
        }
    };
    let segments: Vec<&str> = path.split("::").collect();
    if !segments.iter().all(|s| ident(s)) {
        return None;
    }
    let only = segments[0];
    let cited = segments.len() > 1
        || only.contains('_') && only.chars().any(|c| c.is_ascii_lowercase())
        || only.starts_with(|c: char| c.is_ascii_uppercase());
    cited.then_some(Citation::Path(segments))
}

/// The derivation pages: (file name, text).
fn pages(root: &Path) -> Vec<(String, String)> {
    let dir = root.join("docs/derivations");
    let mut pages: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read_to_string(&p).expect("read a page"))
        })
        .collect();
    pages.sort();
    pages
}

/// Every citation of `page` that does not resolve, as `page:line: message`.
fn broken_citations(code: &Code, name: &str, page: &str) -> Vec<String> {
    code_spans(page)
        .into_iter()
        .filter_map(|(line, span)| {
            let why = match citation(&span)? {
                Citation::File(file) => {
                    (!code.root.join(file).exists()).then(|| "no such file".to_string())
                }
                Citation::Path(segments) => code.check_path(&segments),
            }?;
            Some(format!("docs/derivations/{name}:{line}: `{span}`: {why}"))
        })
        .collect()
}

/// The text of the section that starts with heading `title`, to the next
/// heading of the same or a higher level.
fn section<'a>(page: &'a str, title: &str) -> Option<&'a str> {
    let start = page.find(&format!("## {title}\n"))?;
    let body = &page[start + title.len() + 4..];
    let end = body.find("\n## ").unwrap_or(body.len());
    Some(&body[..end])
}

/// The tests of the code that a page's "What the tests prove" cites.
fn cited_tests(code: &Code, page: &str) -> Vec<String> {
    let Some(section) = section(page, "What the tests prove") else {
        return Vec::new();
    };
    code_spans(section)
        .into_iter()
        .filter_map(|(_, span)| match citation(&span)? {
            Citation::Path(segments) => {
                let name = *segments.last().unwrap();
                code.test_fns.contains(name).then(|| name.to_string())
            }
            Citation::File(_) => None,
        })
        .collect()
}

/// The id rustdoc gives a heading: its text lower-cased, spaces to `-`,
/// characters other than letters, digits, `-` and `_` dropped (backticks,
/// `$` and the math inside them included), as in rustdoc's `IdMap`.
fn heading_id(text: &str) -> String {
    text.trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The ids of a page's headings.
fn heading_ids(page: &str) -> BTreeSet<String> {
    let mut fenced = false;
    page.lines()
        .filter(|line| {
            if line.starts_with("```") {
                fenced = !fenced;
            }
            !fenced && line.starts_with('#')
        })
        .map(|line| heading_id(line.trim_start_matches('#')))
        .collect()
}

/// Module name in `crate::derivations` → page file, from src/derivations.rs.
fn page_modules(code: &Code) -> BTreeMap<String, String> {
    let text = code.text("src/derivations.rs").expect("src/derivations.rs");
    let mut map = BTreeMap::new();
    let mut page = None;
    for line in text.lines() {
        if let Some(rest) = line.split("docs/derivations/").nth(1) {
            page = rest.split('"').next().map(str::to_string);
        }
        if let (Some(p), Some(m)) = (&page, line.strip_prefix("pub mod ")) {
            map.insert(m.trim_end_matches(" {}").trim().to_string(), p.clone());
            page = None;
        }
    }
    map
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_name_a_page_cites_exists_in_the_code() {
    let code = Code::read(&root());
    let broken: Vec<String> = pages(&root())
        .iter()
        .flat_map(|(name, page)| broken_citations(&code, name, page))
        .collect();
    assert!(
        broken.is_empty(),
        "{} citation(s) in docs/derivations name nothing in the code:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn every_page_names_a_test_that_proves_it() {
    let code = Code::read(&root());
    let without: Vec<String> = pages(&root())
        .iter()
        .filter(|(_, page)| cited_tests(&code, page).is_empty())
        .map(|(name, _)| name.clone())
        .collect();
    assert!(
        without.is_empty(),
        "pages without a \"What the tests prove\" section naming a test (of tests/, proptests/ or a unit test): {without:?}"
    );
}

#[test]
fn every_page_is_a_module_of_the_docs() {
    let code = Code::read(&root());
    let included: BTreeSet<String> = page_modules(&code).into_values().collect();
    let missing: Vec<String> = pages(&root())
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !included.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "pages src/derivations.rs does not include: {missing:?}"
    );
}

#[test]
fn every_link_to_a_section_lands_on_a_heading() {
    let code = Code::read(&root());
    let modules = page_modules(&code);
    let pages: BTreeMap<String, String> = pages(&root()).into_iter().collect();
    let mut broken = Vec::new();
    let mut links = 0;
    for (file, text) in code.files.iter().filter(|(n, _)| n.starts_with("src/")) {
        for (n, line) in text.lines().enumerate() {
            for rest in line.split("crate::derivations::").skip(1) {
                let target: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || "_#-".contains(*c))
                    .collect();
                let Some((module, anchor)) = target.split_once('#') else {
                    continue;
                };
                links += 1;
                let ids = modules
                    .get(module)
                    .and_then(|page| pages.get(page))
                    .map(|page| heading_ids(page));
                match ids {
                    None => broken.push(format!("{file}:{}: no derivation page `{module}`", n + 1)),
                    Some(ids) if !ids.contains(anchor) => broken.push(format!(
                        "{file}:{}: `{module}#{anchor}`: no such heading (the page has {ids:?})",
                        n + 1
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    assert!(
        links > 0,
        "no doc comment links to a section of a derivation page"
    );
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn a_page_citing_a_missing_test_fails_naming_the_line() {
    let code = Code::read(&root());
    let page = "# A page\n\n## What the tests prove\n\n\
                `affine_coupling_passes_check_flow` and\n\
                `affine_coupling_is_secretly_linear` (no such test),\n\
                `flows::coupling::AffineCoupling`, `flows::coupling::Afine`,\n\
                `Mask::half(dim, flip)`, `Mask::halve`, `tests/nowhere.rs`, `data::preprocess::Logit`.\n\
                Not citations: `z1`, `inverse(forward(z)) == z`, `[batch, dim]`.\n\
                ```rust\nfn not_checked_in_a_fence() { made_up_name(); }\n```\n";
    let broken = broken_citations(&code, "toy.md", page);
    assert_eq!(broken.len(), 5, "{broken:#?}");
    assert!(
        broken[0].starts_with("docs/derivations/toy.md:6: `affine_coupling_is_secretly_linear`")
    );
    assert!(broken[1].contains("`flows::coupling::Afine`"));
    assert!(broken[2].contains("`Mask` has no method, field or variant `halve`"));
    assert!(broken[3].contains("`tests/nowhere.rs`: no such file"));
    assert!(broken[4].contains("src/data/mod.rs neither defines nor re-exports `preprocess`"));
    assert_eq!(
        cited_tests(&code, page),
        vec!["affine_coupling_passes_check_flow"]
    );
}
