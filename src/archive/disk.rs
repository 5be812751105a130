//! The disk under `--record-dir`: free space, and names that stay inside it.

use std::path::Path;

/// Bytes available to an unprivileged writer on the file system holding `dir`
/// (`statvfs(3)`: `f_bavail × f_frsize`).
///
/// Errors: the `statvfs` call's (the folder does not exist, no permission).
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// `s` as one path component that cannot leave its folder: ASCII letters, digits, `-`
/// and `_` kept, every other character (`.`, `/`, anything else) becomes `_`; at most
/// 48 characters; never empty.
pub fn component(s: &str) -> String {
    let out: String = s
        .chars()
        .take(48)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        "_".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_cannot_climb_or_nest() {
        assert_eq!(component(".."), "__");
        assert_eq!(component("a/b"), "a_b");
        assert_eq!(component(""), "_");
        assert_eq!(component("Alice-1_x"), "Alice-1_x");
        assert_eq!(component("ü"), "_");
        assert_eq!(component(&"x".repeat(100)).len(), 48);
    }

    #[test]
    fn free_space_of_a_real_folder() {
        let dir = std::env::temp_dir();
        assert!(free_bytes(&dir).is_ok());
        assert!(free_bytes(Path::new("/nonexistent/folder/x")).is_err());
    }
}
