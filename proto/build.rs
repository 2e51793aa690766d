fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "ics/core/v1/event.proto",
        "ics/core/v1/log.proto",
        "ics/core/v1/raft.proto",
        "ics/identity/v1/identity.proto",
        "ics/pki/v1/pki.proto",
        "ics/ca/v1/ca.proto",
        "ics/policy/v1/policy.proto",
        "ics/federation/v1/federation.proto",
        "ics/tlog/v1/tlog.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        .codec_path("crate::codec::StrictCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
