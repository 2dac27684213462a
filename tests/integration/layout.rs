//! The test layout itself: every integration test lives in this one binary. A feature file
//! left undeclared in `main.rs` would never compile or run, and a file directly under
//! `tests/` would silently become a binary of its own, with its own copy of the harness.

use std::collections::BTreeSet;
use std::path::Path;

fn tests_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests"))
}

/// File stems of the `.rs` files directly in `dir`.
fn rust_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Module names declared with `mod NAME;` in `main.rs`.
fn declared_modules() -> BTreeSet<String> {
    let main = std::fs::read_to_string(tests_dir().join("integration/main.rs")).unwrap();
    main.lines()
        .filter_map(|line| line.trim().strip_prefix("mod ")?.strip_suffix(';'))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_feature_file_is_a_module() {
    let mut files = rust_files(&tests_dir().join("integration"));
    files.remove("main");
    let declared = declared_modules();
    let missing: Vec<_> = files.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "tests/integration/{{{}}}.rs: not declared in tests/integration/main.rs, so never run",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(declared.contains("common") && declared.contains("layout"));
}

#[test]
fn no_test_binary_besides_integration() {
    let strays = rust_files(tests_dir());
    assert!(
        strays.is_empty(),
        "tests/{{{}}}.rs would each compile into a separate test binary; move them into \
         tests/integration/ and declare them in its main.rs",
        strays.into_iter().collect::<Vec<_>>().join(",")
    );
    for entry in std::fs::read_dir(tests_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name != "integration" {
            assert!(
                !dir.join("main.rs").exists(),
                "tests/{name}/main.rs is a second test binary"
            );
        }
    }
}
