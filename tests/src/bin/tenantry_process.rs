//! The `tenantry` program, built inside the test package so that tests can
//! start it as a separate process (`CARGO_BIN_EXE_tenantry-process`) and
//! always run the current code: it is `tenantry::cli::main`, nothing else.

// The same allocator as the `tenantry` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tenantry::cli::main()
}
