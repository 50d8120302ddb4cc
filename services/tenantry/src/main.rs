//! `tenantry`: run any subset of Tenantry's services, or apply migrations.
//! The command line itself is [`tenantry::cli`].

// mimalloc: every call allocates (headers, messages, strings), and the
// system allocator showed up at ~6 % of a saturated CheckPermission profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tenantry::cli::main()
}
