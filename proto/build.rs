fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=pullguard/v1/verifier.proto");
    tonic_build::configure().compile_protos(&["pullguard/v1/verifier.proto"], &["."])?;
    Ok(())
}
