//! The lab's experiment run natively, for the figures the browser must
//! reproduce: `lab-reference [key=value …] [--checkpoint FILE]` prints the
//! run's summary JSON (as the page shows it) on one line, and writes the
//! checkpoint bytes to FILE if asked.
//!
//! Example: `cargo run --release -p flowzoo-web --bin lab-reference --
//! data=moons flow=realnvp steps=300`.

use flowzoo_web::{train, LabConfig, Recorder};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut settings = Vec::new();
    let mut checkpoint = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--checkpoint" {
            checkpoint = args.next();
        } else {
            settings.push(arg);
        }
    }
    let config = match LabConfig::parse(&settings.join(" ")) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("lab-reference: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut recorder = Recorder::default();
    match train(&config, &mut recorder) {
        Ok(outcome) => {
            println!("{}", outcome.summary.to_json());
            if let Some(path) = checkpoint {
                if let Err(e) = std::fs::write(&path, &outcome.checkpoint) {
                    eprintln!("lab-reference: cannot write {path}: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lab-reference: {e}");
            ExitCode::FAILURE
        }
    }
}
