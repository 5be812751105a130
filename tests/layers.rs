//! The module tree is layered (`docs/architecture.md`): a module of the server crate
//! uses only modules of the layers below its own, never one above — so the forwarder
//! cannot reach into a room, a room cannot reach into the runtime, and the sans-IO core
//! can be driven by a simulation without the async code. This test reads every source
//! file of `src/` and fails on an import (`crate::…` in code, comments excluded) that
//! goes up.

use std::path::{Path, PathBuf};

/// The layers, bottom first. Modules in one layer do not use each other.
const LAYERS: &[&[&str]] = &[
    &["ids", "limits"],
    &["bwe", "codec"],
    &["metrics"],
    &["dtls", "net"],
    &["data", "forwarder", "record"],
    &["session"],
    &["shard", "conference"],
    &["room", "webhook"],
    &["archive"],
    &["runtime"],
    &["auth", "cluster"],
    &["config"],
    &["config_file"],
    &["api"],
    &["tls"],
    &["http_serve"],
    &["server"],
];

/// Imports that are allowed to go up, with why.
const EXCEPTIONS: &[(&str, &str, &str)] = &[(
    "config",
    "config_file",
    "the flags and the file they may come from are one concern in two files",
)];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/room/join.rs` → `room`,
/// `src/auth_tests.rs` → `auth`, whose child it is).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    Some(name.trim_end_matches("_tests").to_owned())
}

#[test]
fn no_module_imports_from_a_module_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut up = Vec::new();
    let mut unplaced = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        if matches!(module.as_str(), "lib" | "main" | "bin") {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            unplaced.push(module);
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let used: String = code[i + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if used == module {
                    continue;
                }
                if EXCEPTIONS
                    .iter()
                    .any(|(from, to, _)| *from == module && *to == used)
                {
                    continue;
                }
                match layer_of(&used) {
                    Some(l) if l < own => {}
                    Some(_) => up.push(format!(
                        "{}:{}: `{module}` uses `{used}`",
                        file.display(),
                        n + 1
                    )),
                    None => unplaced.push(used),
                }
            }
        }
    }
    unplaced.sort();
    unplaced.dedup();
    assert!(
        unplaced.is_empty(),
        "modules missing from LAYERS: {unplaced:?}"
    );
    assert!(
        up.is_empty(),
        "imports that go up a layer:\n{}",
        up.join("\n")
    );
}
