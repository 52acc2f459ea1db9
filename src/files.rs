//! Files the server writes outside the database: written whole or not at all, and on disk
//! before they are used.
//!
//! [`write_durably`] writes a temporary file beside the target, fsyncs it, renames it over
//! the target and fsyncs the directory: after a crash (`kill -9`, power loss) the target is
//! either its old content or its new, never a torn mix, and a name a client was given always
//! names a whole file.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically and durably; `private` makes it 0600 (secrets).
pub fn write_durably(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A name of its own per writer: two uploads of one file never share a temporary.
    let tmp = dir.join(format!(
        ".{name}.{}.tmp",
        fieldcast_core::ids::random_hex(6)
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let written = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Removes what [`write_durably`] left behind when the process died between writing and
/// renaming (called at start, before anything writes). Returns how many it removed.
pub fn remove_leftovers(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with('.') && name.ends_with(".tmp")
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_nothing_is_left_beside_it() {
        let dir = std::env::temp_dir().join(format!("fieldcast-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("photo.png");
        write_durably(&path, b"first", false).unwrap();
        write_durably(&path, b"second", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.join(".photo.png.abc.tmp"), b"torn").unwrap();
        assert_eq!(remove_leftovers(&dir), 1);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["photo.png"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
