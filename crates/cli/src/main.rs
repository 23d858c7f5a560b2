//! `medvqa`: the command-line program. It parses flags and wires the library crates together;
//! anything a library user would want lives in the crates, not here.

use clap::{Parser, Subcommand};

mod ingest_cmd;

#[derive(Parser)]
#[command(name = "medvqa", version, about = "Medical visual question answering toolkit")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read DICOM / NIfTI / PNG / JPEG / TIFF into float32 .npy arrays with JSON sidecars.
    Ingest(ingest_cmd::IngestArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Ingest(args) => ingest_cmd::run(args),
    };
    std::process::exit(code);
}
