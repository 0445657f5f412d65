//! This test binary run again as a child process (one of its ignored `child_…` tests, chosen by
//! name, with environment variables telling it what to do), so that a test can kill it with
//! SIGKILL.
#![allow(dead_code)]

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A child process running one ignored test of this binary; killed when dropped, so a failing
/// test leaves nothing running.
pub(crate) struct ChildRun {
    process: Option<Child>,
    stderr: PathBuf,
}

impl ChildRun {
    /// Runs the ignored test `test` with `env` set, its stderr written to the file `stderr`.
    pub(crate) fn start(test: &str, env: &[(&str, &str)], stderr: PathBuf, stdout: Stdio) -> Self {
        let process = Command::new(std::env::current_exe().expect("this test binary"))
            .args([
                "--exact",
                test,
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .envs(env.iter().copied())
            .stdout(stdout)
            .stderr(File::create(&stderr).expect("a file for the child's stderr"))
            .spawn()
            .expect("start the child");
        Self {
            process: Some(process),
            stderr,
        }
    }

    pub(crate) fn process(&mut self) -> &mut Child {
        self.process.as_mut().expect("a child not yet killed")
    }

    /// What the child wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// `Err` (with what it wrote to stderr) if the child ended on its own.
    pub(crate) fn alive(&mut self) -> Result<(), String> {
        match self.process().try_wait().expect("the child's status") {
            None => Ok(()),
            Some(status) => Err(format!(
                "the child ended on its own ({status}); its stderr:\n{}",
                self.stderr()
            )),
        }
    }

    /// SIGKILL, then waits for it to be gone. Fails if the child had already ended on its own.
    pub(crate) fn kill(&mut self) {
        self.alive()
            .unwrap_or_else(|why| panic!("before the kill: {why}"));
        let mut process = self.process.take().expect("a child not yet killed");
        process.kill().expect("SIGKILL the child");
        let status = process.wait().expect("the child's status");
        assert!(!status.success(), "the child was killed: {status:?}");
    }
}

impl Drop for ChildRun {
    /// A failing test must not leave a child running.
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}
