//! `heapscape`: parse the arguments, run the command, map the error to an exit code.

use std::process::ExitCode;

use clap::Parser;
use heapscape_cli::{Cli, run};

fn main() -> ExitCode {
    let Cli::Recommend(args) = Cli::parse();
    match run(&args) {
        Ok(outcome) => {
            print!("{}", outcome.output);
            ExitCode::from(outcome.code)
        }
        Err(error) => {
            eprintln!("heapscape recommend: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
