//! `deskprobe-demo`: run deskprobe's whole job against simulated desks on loopback and write
//! the reports (see `deskprobe_sandbox::desks::demo`). `scripts/demo` builds and runs it.
//!
//! ```text
//! deskprobe-demo [--minutes N | --seconds N | --short] [--every S] [--out-dir DIR]
//!                [--deskprobe PATH] [--quiet]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use deskprobe_sandbox::desks::demo::{self, DemoOptions};

const USAGE: &str = "usage: deskprobe-demo [--minutes N | --seconds N | --short] \
                     [--every SECONDS] [--out-dir DIR] [--deskprobe PATH] [--quiet]";

fn parse() -> Result<DemoOptions, String> {
    let mut opts = DemoOptions {
        deskprobe: std::env::var_os("DESKPROBE_BIN")
            .map(PathBuf::from)
            .or_else(|| {
                // Built together: the deskprobe binary sits next to this one.
                std::env::current_exe()
                    .ok()
                    .and_then(|p| p.parent().map(|d| d.join("deskprobe")))
            })
            .unwrap_or_else(|| PathBuf::from("deskprobe")),
        out_dir: PathBuf::from("demo-output"),
        run_for: Duration::from_secs(180),
        every_s: 5,
        verbose: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        let number = |v: String, name: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{name} takes a whole number, not `{v}`"))
        };
        match a.as_str() {
            "--minutes" => opts.run_for = Duration::from_secs(60 * number(value(&a)?, &a)?),
            "--seconds" => opts.run_for = Duration::from_secs(number(value(&a)?, &a)?),
            "--every" => opts.every_s = number(value(&a)?, &a)?.clamp(1, 59) as u32,
            "--out-dir" => opts.out_dir = PathBuf::from(value(&a)?),
            "--deskprobe" => opts.deskprobe = PathBuf::from(value(&a)?),
            "--short" => {
                opts.run_for = Duration::from_secs(30);
                opts.every_s = 3;
            }
            "--quiet" => opts.verbose = false,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(opts)
}

#[tokio::main]
async fn main() -> ExitCode {
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match demo::run(&opts).await {
        Ok(out) => {
            for (name, received, acked, replied, errors) in &out.desks {
                println!(
                    "{name}, simulated: {received} probe(s) received, {acked} acknowledged, {replied} answered by a human"
                );
                for e in errors {
                    eprintln!("  {name}: {e}");
                }
            }
            println!("config:   {}", out.config.display());
            println!("report:   {}", out.html.display());
            println!(
                "also:     {}, {}, {}",
                out.markdown.display(),
                out.csv.display(),
                out.json.display()
            );
            if let Ok(md) = std::fs::read_to_string(&out.markdown) {
                // The comparison table, for the terminal.
                let table: Vec<&str> = md
                    .lines()
                    .skip_while(|l| !l.starts_with("| Target"))
                    .take_while(|l| l.starts_with('|'))
                    .collect();
                println!("\n{}", table.join("\n"));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::from(1)
        }
    }
}
