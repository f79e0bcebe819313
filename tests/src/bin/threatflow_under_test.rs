//! The engine's own CLI, built inside the test crate so that the end-to-end tests can run it
//! as a real process (and kill it) via `CARGO_BIN_EXE_threatflow-under-test`.

fn main() -> std::process::ExitCode {
    threatflow::cli::main()
}
