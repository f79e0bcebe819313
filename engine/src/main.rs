//! The `threatflow` binary; everything lives in the library (see `threatflow::cli`).

fn main() -> std::process::ExitCode {
    threatflow::cli::main()
}
