//! Mesa's Vulkan drivers print `error: XDG_RUNTIME_DIR is invalid or not
//! set in the environment.` on stderr, once per instance, when the variable
//! is unset, so every run on lavapipe started with driver noise. kiln gives
//! the process a private directory before it opens its first instance; a
//! usable value the user set is kept.

use std::sync::Once;

/// Points `XDG_RUNTIME_DIR` at a directory of this user's (mode 0700, under
/// the temporary directory) when it is unset or not a directory. Runs once,
/// before any instance exists, so no driver thread reads the environment
/// while it changes.
pub(crate) fn ensure_runtime_dir() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(target_os = "linux")]
        set_private_runtime_dir();
    });
}

#[cfg(target_os = "linux")]
fn set_private_runtime_dir() {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    use std::path::Path;

    let usable = std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| Path::new(&d).is_dir());
    if usable {
        return;
    }
    // Our uid, without a libc dependency: the owner of our own /proc entry.
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("kiln-runtime-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    // Another user's directory of that name is never adopted.
    let ours = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == uid);
    if ours {
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}
