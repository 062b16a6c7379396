//! The module order is the reading order (STYLE.md §1, issue 12): every file
//! of `src/` imports only from its own module or from modules earlier in
//!
//! ```text
//! tensor -> autodiff -> nn -> flows -> error.rs -> data -> train -> bin
//! ```
//!
//! and no files form an import cycle, except the tape and its `Var` handle
//! (`autodiff/tape.rs` <-> `autodiff/var.rs`), one idea in two files.
//!
//! `src/error.rs` sits at the crate root after `flows` and before `data`:
//! it re-exports `flows::error::FlowError`, and the data readers return its
//! `DataError`.
//!
//! What counts as an import: a `use` of a `crate::`, `super::`, `self::` or
//! (in the command-line tool) `flowzoo::` path, or of a child module, and
//! such a path written inline in code. What does not: comments and doc
//! comments (so doc links may point anywhere), strings, a `mod.rs` (or
//! `lib.rs`, `main.rs`) re-exporting its own children with `pub use`, and a
//! path that stays inside its own file. A path to an item that a `mod.rs`
//! re-exports counts as an import of the file that defines the item.
//!
//! The checker reads the source text (no compiler internals): it blanks out
//! comments and strings, expands `use` trees, and resolves each path through
//! the module files of `src/`. A failure names the importing file and line,
//! the path as written, and the file it reaches.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// The library's modules in their order; `error` is `src/error.rs`. The
/// command-line tool (`src/bin/`) comes after all of them.
const ORDER: [&str; 7] = [
    "tensor", "autodiff", "nn", "flows", "error", "data", "train",
];

/// The one cycle of files the design allows.
const ALLOWED_CYCLE: [&str; 2] = ["src/autodiff/tape.rs", "src/autodiff/var.rs"];

/// Cycles that were there when this test was written and must still be
/// broken: each entry must still be a cycle (once it is broken the test
/// fails until the entry is deleted), so the list can only shrink. The last
/// one, `data::npy` <-> `data::tabular`, was broken by moving `read_table`
/// into `data/mod.rs`.
const KNOWN_CYCLES: [&[&str]; 0] = [];

/// Which crate a file belongs to: the library, or the binary of that name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Krate {
    Lib,
    Bin(String),
}

/// One source file: its name, its module, and its code with comments and
/// strings blanked out (line numbers kept).
struct SourceFile {
    /// Path from the crate root with `/` separators (`src/nn/mlp.rs`).
    name: String,
    krate: Krate,
    /// Module path inside its crate (`["nn", "mlp"]`; empty for a crate root).
    module: Vec<String>,
    /// `lib.rs`, `main.rs` or `mod.rs`: a file whose child modules are files.
    is_parent: bool,
    code: String,
}

/// One `use` leaf or inline path, before it is resolved.
struct PathUse {
    line: usize,
    /// The module the path is written in (inline `mod` blocks included).
    context: Vec<String>,
    segments: Vec<String>,
    /// Written as `pub use` (or `pub(crate) use`): a re-export.
    public_use: bool,
    /// For a re-export, the name it is exported under.
    exported_as: Option<String>,
}

/// One import: the file and line it is written on, the path, and the file
/// it reaches.
#[derive(Clone, Debug)]
struct Import {
    from: String,
    line: usize,
    path: String,
    to: String,
}

impl std::fmt::Display for Import {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: `{}` reaches {}",
            self.from, self.line, self.path, self.to
        )
    }
}

/// The crate and module path of a file given relative to `src/`
/// (`flows/coupling.rs` → library, `["flows", "coupling"]`), and whether
/// it is a parent file.
fn module_of(relative: &str) -> (Krate, Vec<String>, bool) {
    let mut parts: Vec<String> = relative.split('/').map(str::to_string).collect();
    let stem = parts
        .pop()
        .expect("a path has a file name")
        .trim_end_matches(".rs")
        .to_string();
    let (krate, mut module) = if parts.first().map(String::as_str) == Some("bin") {
        parts.remove(0);
        if parts.is_empty() {
            // src/bin/NAME.rs: a binary of one file.
            return (Krate::Bin(stem), Vec::new(), true);
        }
        (Krate::Bin(parts.remove(0)), parts)
    } else {
        (Krate::Lib, parts)
    };
    let root = module.is_empty()
        && matches!(
            (&krate, stem.as_str()),
            (Krate::Lib, "lib") | (Krate::Bin(_), "main")
        );
    let is_parent = stem == "mod" || root;
    if !is_parent {
        module.push(stem);
    }
    (krate, module, is_parent)
}

/// `text` with comments, string and character literals replaced by spaces
/// (newlines kept, so every offset keeps its line).
fn strip_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let after_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        // Where a raw string's quote would be: r"…", r#"…"#, br#"…"#.
        let raw_start = match (c, next) {
            ('r', _) => Some(i + 1),
            ('b', Some('r')) => Some(i + 2),
            _ => None,
        }
        .filter(|_| !after_ident);
        let raw_hashes = raw_start.and_then(|s| {
            let hashes = chars[s..].iter().take_while(|&&h| h == '#').count();
            (chars.get(s + hashes) == Some(&'"')).then_some((s, hashes))
        });
        let end = if c == '/' && next == Some('/') {
            (i..chars.len())
                .find(|&j| chars[j] == '\n')
                .unwrap_or(chars.len())
        } else if c == '/' && next == Some('*') {
            // Block comments nest.
            let (mut depth, mut j) = (0, i);
            while j < chars.len() {
                if chars[j] == '/' && chars.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if chars[j] == '*' && chars.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            j
        } else if let Some((s, hashes)) = raw_hashes {
            let body = s + hashes + 1;
            (body..chars.len())
                .find(|&j| {
                    chars[j] == '"'
                        && chars[j + 1..].iter().take(hashes).all(|&h| h == '#')
                        && j + hashes < chars.len()
                })
                .map_or(chars.len(), |j| j + 1 + hashes)
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            (j + 1).min(chars.len())
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A character literal ('a', '\n', '\u{e9}'); a lifetime ('t)
            // has no closing quote two characters on.
            (i + 2..chars.len())
                .find(|&j| chars[j] == '\'' && chars[j - 1] != '\\')
                .map_or(chars.len(), |j| j + 1)
        } else {
            out.push(c);
            i += 1;
            continue;
        };
        out.extend(chars[i..end].iter().map(|&c| blank(c)));
        i = end;
    }
    out
}

/// A token of code: an identifier or keyword, or one punctuation mark
/// (`::` counts as one).
#[derive(Clone, Debug, PartialEq)]
struct Token {
    text: String,
    line: usize,
}

fn tokenize(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let (mut tokens, mut line, mut i) = (Vec::new(), 1, 0);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token {
                text: chars[start..i].iter().collect(),
                line,
            });
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            tokens.push(Token {
                text: c.to_string(),
                line,
            });
            i += 1;
        }
    }
    tokens
}

/// The leaves of the `use` tree in `tokens` (up to the `;`): `a::{b, c::d
/// as e}` gives (`a::b`, `b`) and (`a::c::d`, `e`): each full path and the
/// name it is bound to.
fn use_leaves(tokens: &[Token]) -> Vec<(Vec<String>, String)> {
    fn tree(
        tokens: &[Token],
        pos: &mut usize,
        prefix: Vec<String>,
        out: &mut Vec<(Vec<String>, String)>,
    ) {
        let mut path = prefix;
        while *pos < tokens.len() {
            let t = tokens[*pos].text.as_str();
            match t {
                "{" => {
                    *pos += 1;
                    while *pos < tokens.len() && tokens[*pos].text != "}" {
                        tree(tokens, pos, path.clone(), out);
                        if *pos < tokens.len() && tokens[*pos].text == "," {
                            *pos += 1;
                        }
                    }
                    *pos += 1; // the `}`
                    return;
                }
                "::" => *pos += 1,
                "," | "}" | ";" => break,
                "as" => {
                    let alias = tokens.get(*pos + 1).map_or("_", |t| t.text.as_str());
                    out.push((path.clone(), alias.to_string()));
                    *pos += 2;
                    return;
                }
                _ => {
                    path.push(t.to_string());
                    *pos += 1;
                }
            }
        }
        let bound = match path.last().map(String::as_str) {
            Some("self") => path
                .get(path.len().wrapping_sub(2))
                .cloned()
                .unwrap_or_default(),
            Some(last) => last.to_string(),
            None => return,
        };
        out.push((path, bound));
    }
    let mut out = Vec::new();
    let mut pos = 0;
    tree(tokens, &mut pos, Vec::new(), &mut out);
    out
}

/// Every path a file writes: its `use` leaves and its inline
/// `crate::`/`super::`/`self::`/`flowzoo::` paths, each with the module it
/// is written in.
fn paths_in(file: &SourceFile) -> Vec<PathUse> {
    let tokens = tokenize(&file.code);
    let mut uses = Vec::new();
    // Inline `mod name { … }` blocks: (name, brace depth inside the block).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].text.as_str();
        let context = |inline: &[(String, usize)]| {
            let mut m = file.module.clone();
            m.extend(inline.iter().map(|(name, _)| name.clone()));
            m
        };
        match t {
            "{" => depth += 1,
            "}" => {
                if inline.last().is_some_and(|&(_, d)| d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t.text == "{") => {
                inline.push((tokens[i + 1].text.clone(), depth + 1));
            }
            "use" => {
                let end = (i..tokens.len())
                    .find(|&j| tokens[j].text == ";")
                    .unwrap_or(tokens.len());
                // `pub use` or `pub(crate) use` (and `pub(super)`, `pub(in …)`).
                let public = i >= 1
                    && (tokens[i - 1].text == "pub"
                        || (tokens[i - 1].text == ")"
                            && (1..=6).any(|k| i > k && tokens[i - 1 - k].text == "pub")));
                for (segments, bound) in use_leaves(&tokens[i + 1..end]) {
                    uses.push(PathUse {
                        line: tokens[i].line,
                        context: context(&inline),
                        segments,
                        public_use: public,
                        exported_as: public.then_some(bound),
                    });
                }
                i = end;
                continue;
            }
            "crate" | "super" | "self" | "flowzoo"
                if tokens.get(i + 1).is_some_and(|t| t.text == "::")
                    && !(i >= 1 && (tokens[i - 1].text == "$" || tokens[i - 1].text == "::")) =>
            {
                let mut segments = vec![t.to_string()];
                let mut j = i + 1;
                while j + 1 < tokens.len()
                    && tokens[j].text == "::"
                    && tokens[j + 1]
                        .text
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_')
                {
                    segments.push(tokens[j + 1].text.clone());
                    j += 2;
                }
                uses.push(PathUse {
                    line: tokens[i].line,
                    context: context(&inline),
                    segments,
                    public_use: false,
                    exported_as: None,
                });
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    uses
}

/// The source files and where each path leads.
struct Tree {
    files: Vec<SourceFile>,
    by_module: HashMap<(Krate, Vec<String>), usize>,
    /// Per file: its `pub use` re-exports, by exported name.
    reexports: Vec<HashMap<String, PathUse>>,
}

impl Tree {
    fn new(sources: &[(String, String)]) -> Tree {
        let files: Vec<SourceFile> = sources
            .iter()
            .map(|(relative, text)| {
                let (krate, module, is_parent) = module_of(relative);
                SourceFile {
                    name: format!("src/{relative}"),
                    krate,
                    module,
                    is_parent,
                    code: strip_comments_and_strings(text),
                }
            })
            .collect();
        let by_module = files
            .iter()
            .enumerate()
            .map(|(i, f)| ((f.krate.clone(), f.module.clone()), i))
            .collect();
        let reexports = files
            .iter()
            .map(|f| {
                paths_in(f)
                    .into_iter()
                    .filter_map(|u| Some((u.exported_as.clone()?, u)))
                    .collect()
            })
            .collect();
        Tree {
            files,
            by_module,
            reexports,
        }
    }

    /// The file that holds module `module` of `krate`: the file of the
    /// longest prefix of it that is a file (a module declared inline lives
    /// in its parent's file).
    fn file_of(&self, krate: &Krate, module: &[String]) -> Option<usize> {
        (0..=module.len()).rev().find_map(|n| {
            self.by_module
                .get(&(krate.clone(), module[..n].to_vec()))
                .copied()
        })
    }

    fn is_file_module(&self, krate: &Krate, module: &[String]) -> bool {
        self.by_module
            .contains_key(&(krate.clone(), module.to_vec()))
    }

    /// The file a path written in `file` (in module `context`) reaches, or
    /// `None` for a path outside the crate (`std::`, `rand::`).
    fn resolve(
        &self,
        file: usize,
        context: &[String],
        segments: &[String],
        hops: usize,
    ) -> Option<usize> {
        let mut krate = self.files[file].krate.clone();
        let (mut module, rest): (Vec<String>, &[String]) = match segments.first()?.as_str() {
            "crate" => (Vec::new(), &segments[1..]),
            "flowzoo" if krate != Krate::Lib => {
                krate = Krate::Lib;
                (Vec::new(), &segments[1..])
            }
            "self" => (context.to_vec(), &segments[1..]),
            "super" => {
                let ups = segments.iter().take_while(|s| *s == "super").count();
                (
                    context[..context.len().checked_sub(ups)?].to_vec(),
                    &segments[ups..],
                )
            }
            first => {
                // A relative path: a child module (a file, or declared inline).
                let mut child = context.to_vec();
                child.push(first.to_string());
                let inline = self.files[file].code.contains(&format!("mod {first} {{"))
                    || self.files[file].code.contains(&format!("mod {first}{{"));
                if !self.is_file_module(&krate, &child) && !inline {
                    return None;
                }
                (context.to_vec(), segments)
            }
        };
        let mut item = None;
        for seg in rest {
            let mut deeper = module.clone();
            deeper.push(seg.clone());
            if seg == "self" || seg == "*" {
                break;
            }
            if self.is_file_module(&krate, &deeper) {
                module = deeper;
            } else {
                item = Some(seg.clone());
                break;
            }
        }
        let target = self.file_of(&krate, &module)?;
        // Follow a re-export to the file that defines the item.
        if let Some(name) = item {
            if hops < 8 {
                if let Some(re) = self.reexports[target].get(&name) {
                    if let Some(defining) =
                        self.resolve(target, &re.context, &re.segments, hops + 1)
                    {
                        return Some(defining);
                    }
                }
            }
        }
        Some(target)
    }

    /// Every import of every file, re-exports of a parent's own children
    /// and paths into the same file left out.
    fn imports(&self) -> Vec<Import> {
        let mut imports = Vec::new();
        for (i, file) in self.files.iter().enumerate() {
            for u in paths_in(file) {
                let Some(to) = self.resolve(i, &u.context, &u.segments, 0) else {
                    continue;
                };
                let target = &self.files[to];
                let own_child = file.is_parent
                    && u.public_use
                    && target.krate == file.krate
                    && target.module.len() > file.module.len()
                    && target.module.starts_with(&file.module);
                if to == i || own_child {
                    continue;
                }
                imports.push(Import {
                    from: file.name.clone(),
                    line: u.line,
                    path: u.segments.join("::"),
                    to: target.name.clone(),
                });
            }
        }
        imports
    }

    /// A file's place in [`ORDER`] (the tool after all of it); `None` for
    /// the crate root and the derivation pages, which import nothing.
    fn rank(&self, name: &str) -> Option<usize> {
        let file = self.files.iter().find(|f| f.name == name)?;
        match &file.krate {
            Krate::Bin(_) => Some(ORDER.len()),
            Krate::Lib => ORDER
                .iter()
                .position(|m| file.module.first().map(String::as_str) == Some(*m)),
        }
    }
}

/// The imports that go up the order, each printed as a line.
fn upward_imports(tree: &Tree, imports: &[Import]) -> Vec<String> {
    imports
        .iter()
        .filter_map(|imp| {
            let (from, to) = (tree.rank(&imp.from)?, tree.rank(&imp.to)?);
            (from < to).then(|| {
                let name = |r: usize| ORDER.get(r).copied().unwrap_or("bin");
                format!("{imp}: `{}` may not import `{}`", name(from), name(to))
            })
        })
        .collect()
}

/// The sets of files that import each other in a cycle (strongly connected
/// components of more than one file, by Tarjan's algorithm), sorted.
fn cycles(imports: &[Import]) -> Vec<BTreeSet<String>> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for imp in imports {
        graph.entry(&imp.from).or_default().insert(&imp.to);
        graph.entry(&imp.to).or_default();
    }
    struct State<'a> {
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(v: &'a str, graph: &BTreeMap<&'a str, BTreeSet<&'a str>>, s: &mut State<'a>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in &graph[v] {
            if !s.index.contains_key(w) {
                visit(w, graph, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for &v in graph.keys() {
        if !state.index.contains_key(v) {
            visit(v, &graph, &mut state);
        }
    }
    state.found.sort();
    state.found
}

/// The cycles other than the allowed one and those in `known`, each with
/// the imports inside it.
fn forbidden_cycles(imports: &[Import], known: &[&[&str]]) -> Vec<String> {
    let allowed: BTreeSet<String> = ALLOWED_CYCLE.iter().map(|s| s.to_string()).collect();
    let known: Vec<BTreeSet<String>> = known
        .iter()
        .map(|c| c.iter().map(|s| s.to_string()).collect())
        .collect();
    cycles(imports)
        .into_iter()
        .filter(|c| *c != allowed && !known.contains(c))
        .map(|c| {
            let inside: Vec<String> = imports
                .iter()
                .filter(|i| c.contains(&i.from) && c.contains(&i.to))
                .map(|i| format!("    {i}"))
                .collect();
            format!(
                "a cycle of {} files: {}\n{}",
                c.len(),
                c.iter().cloned().collect::<Vec<_>>().join(", "),
                inside.join("\n")
            )
        })
        .collect()
}

/// Every `.rs` file under `dir`, as (path relative to `src/`, text).
fn read_sources(src: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_sources(src, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path
                .strip_prefix(src)
                .expect("under src/")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            out.push((relative, text));
        }
    }
}

fn crate_sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Vec::new();
    read_sources(&src, &src, &mut sources);
    sources
}

#[test]
fn no_module_imports_a_later_one() {
    let tree = Tree::new(&crate_sources());
    let imports = tree.imports();
    // The checker must see the imports that are there: every module after
    // `tensor` reaches one before it, so an empty parse cannot pass.
    for module in ["autodiff", "nn", "flows", "data", "train"] {
        let rank = ORDER.iter().position(|m| *m == module).unwrap();
        assert!(
            imports.iter().any(|i| i.from.starts_with(&format!("src/{module}/"))
                && tree.rank(&i.to).is_some_and(|r| r < rank)),
            "the checker found no import from {module} into an earlier module: it does not read the code"
        );
    }
    let upward = upward_imports(&tree, &imports);
    assert!(
        upward.is_empty(),
        "{} import(s) go up the order {}:\n{}",
        upward.len(),
        ORDER.join(" -> ") + " -> bin",
        upward.join("\n")
    );
}

#[test]
fn no_files_import_each_other_in_a_cycle() {
    let tree = Tree::new(&crate_sources());
    let imports = tree.imports();
    let found = forbidden_cycles(&imports, &KNOWN_CYCLES);
    let all = cycles(&imports);
    for known in KNOWN_CYCLES {
        let known: BTreeSet<String> = known.iter().map(|s| s.to_string()).collect();
        assert!(
            all.contains(&known),
            "{known:?} no longer import each other: delete the entry from KNOWN_CYCLES"
        );
        eprintln!("known cycle, still to be broken: {known:?}");
    }
    assert!(
        found.is_empty(),
        "files that import each other (only {} may):\n{}",
        ALLOWED_CYCLE.join(" <-> "),
        found.join("\n")
    );
}

/// A small crate, written here, with one of each thing the checker must
/// see and each thing it must ignore.
/// `changed` replaces the file of the same name or adds one.
fn toy_crate(changed: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut files = vec![
        (
            "lib.rs",
            "pub mod tensor;\npub mod nn;\npub mod train;\npub mod error;\npub use error::Error;\n",
        ),
        (
            "error.rs",
            "/// Wraps [`crate::train::Fit`], a doc link, not an import.\npub struct Error;\n",
        ),
        (
            "tensor/mod.rs",
            "pub mod element;\npub use element::Element;\npub struct Tensor;\n",
        ),
        ("tensor/element.rs", "pub trait Element {}\n"),
        (
            "nn/mod.rs",
            "pub mod linear;\npub use linear::Linear;\npub use crate::tensor::Element;\n",
        ),
        (
            "nn/linear.rs",
            "use crate::tensor::{Element, Tensor};\n// use crate::train::Fit; (a comment)\n\
             const S: &str = \"crate::train::Fit\";\npub struct Linear;\n\
             #[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
        ),
        (
            "train/mod.rs",
            "pub struct Fit;\nuse crate::nn::{self, Linear};\n",
        ),
    ];
    for &(name, text) in changed {
        files.retain(|(n, _)| *n != name);
        files.push((name, text));
    }
    files
        .into_iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

#[test]
fn the_checker_reads_use_trees_re_exports_and_skips_comments() {
    let tree = Tree::new(&toy_crate(&[]));
    let imports = tree.imports();
    let mut found: Vec<String> = imports
        .iter()
        .map(|i| format!("{}:{} -> {}", i.from, i.line, i.to))
        .collect();
    found.sort();
    // `Element` through two re-exports reaches the file that defines it;
    // `nn::{self, …}` reaches nn/mod.rs; the children's `pub use` lines,
    // the comment, the string, the doc link and `super::*` count for nothing.
    assert_eq!(
        found,
        vec![
            "src/nn/linear.rs:1 -> src/tensor/element.rs",
            "src/nn/linear.rs:1 -> src/tensor/mod.rs",
            "src/nn/mod.rs:3 -> src/tensor/element.rs",
            "src/train/mod.rs:2 -> src/nn/linear.rs",
            "src/train/mod.rs:2 -> src/nn/mod.rs",
        ]
    );
    assert!(upward_imports(&tree, &imports).is_empty());
    assert!(forbidden_cycles(&imports, &[]).is_empty());
}

#[test]
fn the_checker_reports_an_upward_import_and_a_cycle_with_their_lines() {
    let upward = [(
        "tensor/element.rs",
        "pub trait Element {}\nfn f() { let _ = crate::train::Fit; }\n",
    )];
    let tree = Tree::new(&toy_crate(&upward));
    let imports = tree.imports();
    let report = upward_imports(&tree, &imports);
    assert_eq!(
        report,
        vec![
            "src/tensor/element.rs:2: `crate::train::Fit` reaches src/train/mod.rs: \
             `tensor` may not import `train`"
        ]
    );
    // tensor/element.rs -> train/mod.rs -> nn/mod.rs -> tensor/element.rs
    let found = forbidden_cycles(&imports, &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("a cycle of 4 files"), "{}", found[0]);
    assert!(found[0].contains("src/tensor/element.rs:2: `crate::train::Fit`"));
}
