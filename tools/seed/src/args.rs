//! The seeder's command-line flags, as `authz-origin seed` takes them.

use crate::{Scale, SeedOptions};

/// `--scale`, `--seed`, `--quiet`.
#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// Dataset size.
    #[arg(long, value_enum, default_value = "small")]
    pub scale: Scale,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl SeedArgs {
    /// The options these flags ask for.
    pub const fn options(&self) -> SeedOptions {
        SeedOptions {
            scale: self.scale,
            seed: self.seed,
            progress: !self.quiet,
        }
    }
}
