//! containerd's image-verifier hook; see the `pullguard-hook` crate.

fn main() -> std::process::ExitCode {
    pullguard_hook::main()
}
