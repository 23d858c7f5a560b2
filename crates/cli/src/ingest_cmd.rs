//! `medvqa ingest`.

#[derive(clap::Args)]
pub struct IngestArgs {
    /// Files or directories (walked recursively; DICOMDIR honoured).
    #[arg(required = true)]
    pub inputs: Vec<std::path::PathBuf>,
    /// Output directory for <name>.npy, <name>.json and errors.jsonl.
    #[arg(long)]
    pub out: std::path::PathBuf,
}

pub fn run(_args: IngestArgs) -> i32 {
    2
}
