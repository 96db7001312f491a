//! Helpers shared by the CLI's integration tests: a scratch directory and running the
//! built `sagrada` binary.

#![allow(dead_code)] // Each test file uses its own subset.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A scratch directory for one test, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sagrada-cli-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn sagrada<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sagrada"))
        .args(args)
        .output()
        .expect("run sagrada")
}

/// Runs `sagrada ARGS`, which must succeed; its standard output.
#[track_caller]
pub fn ok<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let out = sagrada(args);
    assert!(
        out.status.success(),
        "sagrada {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `sagrada ARGS`, which must fail; its standard error.
#[track_caller]
pub fn fails<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let out = sagrada(args);
    assert!(
        !out.status.success(),
        "sagrada {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}
