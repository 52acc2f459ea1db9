//! Embeds the watch page's languages: every `web/i18n/*.json` becomes an entry of
//! `LANGUAGES`, so adding a language is adding a file, with no code.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let dir = Path::new("web/i18n");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("web/i18n is there")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out =
        String::from("/// (language tag, its strings as JSON), one per file in web/i18n.\n");
    out.push_str("pub const LANGUAGES: &[(&str, &str)] = &[\n");
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let tag = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 file name");
        let absolute = std::fs::canonicalize(&path).expect("the file is readable");
        writeln!(
            out,
            "    ({tag:?}, include_str!({:?})),",
            absolute.display().to_string()
        )
        .expect("writing to a String");
    }
    out.push_str("];\n");
    let target = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("i18n.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
}
