//! `deskprobe check`: validate the config and say what it holds.

use std::process::ExitCode;

use crate::cli::Global;

pub fn run(g: &Global) -> anyhow::Result<ExitCode> {
    let Some(c) = super::load_config(g)? else {
        return Ok(ExitCode::from(super::EXIT_INVALID_CONFIG));
    };
    let unverified: Vec<&str> = c
        .targets
        .iter()
        .filter(|t| !t.verified)
        .map(|t| t.id.as_str())
        .collect();
    println!(
        "{}: ok — {} target(s), {} mailbox(es), {} persona(s), {} script(s), {} schedule(s); sha256 {}",
        c.file.display(),
        c.targets.len(),
        c.mailboxes.len(),
        c.personas.len(),
        c.scripts.len(),
        c.schedules.len(),
        c.sha256
    );
    if !unverified.is_empty() {
        println!(
            "note: not verified yet (sending refused): {}",
            unverified.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
