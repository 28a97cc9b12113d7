//! `zkpilot aws ...`: AWS deployment helpers.

use clap::Subcommand;

/// `zkpilot aws` subcommands.
#[derive(Debug, Subcommand)]
pub enum AwsCommand {
    /// Print a CloudFormation template (JSON) for an ensemble on an Auto Scaling group.
    Template {
        /// `elastic` (a replacement is a new server) or `slot` (fixed interfaces and volumes).
        #[arg(long, default_value = "elastic", value_parser = ["elastic", "slot"])]
        identity: String,
        /// Number of identity slots (slot mode).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=31))]
        slots: u32,
    },
}

/// Dispatches `zkpilot aws`.
#[cfg(feature = "aws")]
pub fn run(cmd: AwsCommand) -> anyhow::Result<()> {
    use zkpilot_aws::template::{Identity, TemplateOptions, render};
    let AwsCommand::Template { identity, slots } = cmd;
    let identity = if identity == "slot" { Identity::Slot { slots } } else { Identity::Elastic };
    println!("{}", serde_json::to_string_pretty(&render(&TemplateOptions { identity }))?);
    Ok(())
}

/// Dispatches `zkpilot aws`.
#[cfg(not(feature = "aws"))]
pub fn run(_cmd: AwsCommand) -> anyhow::Result<()> {
    Err(without_aws())
}

/// What a build without the `aws` feature answers when asked for AWS.
#[cfg(not(feature = "aws"))]
pub fn without_aws() -> anyhow::Error {
    anyhow::anyhow!("this zkpilot was built without the `aws` feature; rebuild with `cargo build --features aws`")
}
