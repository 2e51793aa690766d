fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "ics/v1/event.proto",
        "ics/v1/log.proto",
        "ics/v1/raft.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["."])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
