//! `zkpilot plan`: what the agents of a local group would do next and why nothing else (a dry
//! run), and the one text rendering of a plan (`local status` shows the last plan with it too).

use clap::Args;
use zkpilot_core::Plan;

use super::args::DirArg;

/// Options of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Prints the plan.
pub async fn run(args: PlanArgs) -> anyhow::Result<()> {
    let p = zkpilot_ops::local::plan::plan(&args.dir.path()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        print!("{}", render(&p, ""));
    }
    Ok(())
}

/// A plan as text, every line starting with `indent`: the actions (`do ...`, or `no action`),
/// then the skipped candidates with their reasons (`skip <subject>: <reason>`).
pub fn render(p: &Plan, indent: &str) -> String {
    let mut s = String::new();
    if p.actions.is_empty() {
        s.push_str(&format!("{indent}no action\n"));
    }
    for a in &p.actions {
        s.push_str(&format!("{indent}do   {a}\n"));
    }
    for k in &p.skipped {
        s.push_str(&format!("{indent}skip {}: {}\n", k.subject, k.reason));
    }
    s
}
