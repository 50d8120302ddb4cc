//! `tenantry`: run any subset of Tenantry's services, or apply migrations.
//! The command line itself is [`tenantry::cli`].

fn main() -> std::process::ExitCode {
    tenantry::cli::main()
}
