//! The deskprobe binary: everything lives in the library; see `deskprobe::cli`.

fn main() -> std::process::ExitCode {
    deskprobe::cli::main()
}
