//! `threatflow eval prompt` and `threatflow bench prompt`: the operator's command-line
//! arguments (listed in its [`super::SPEC`]); the work is in [`crate::model_cli`].

use std::path::PathBuf;

use clap::{Args, FromArgMatches};

use crate::model_cli::BenchPromptOptions;
use crate::operators::table::{OperatorCommand, Verb};

/// `threatflow eval prompt`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Labelled prompts.
    #[arg(long)]
    data: PathBuf,
    /// Model root holding `prompt/<version>` and `prompt/rules/rules.toml`.
    #[arg(long, default_value = "models")]
    model_dir: PathBuf,
    /// Engine config whose `[operators.prompt]` settings apply; defaults otherwise.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Prompts per scoring call (1 measures single-prompt latency).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Score with the rules alone (no ONNX Runtime).
    #[arg(long)]
    rules_only: bool,
    /// Print the figures as one JSON object on the last line of stdout.
    #[arg(long)]
    json: bool,
}

/// The prompt operator's commands.
pub const COMMANDS: &[OperatorCommand] = &[
    OperatorCommand {
        verb: Verb::Eval,
        name: "prompt",
        command: || {
            EvalArgs::augment_args(clap::Command::new("prompt")).about(
                "Prompt operator (normalize + L1 rules + L2 classifier) on labelled prompts: JSON \
                 lines `{\"text\": ..., \"label\": 0|1}` or CSV `text,label`",
            )
        },
        run: |matches| {
            let args = EvalArgs::from_arg_matches(matches)?;
            crate::model_cli::eval_prompt(&crate::model_cli::EvalPromptOptions {
                data: args.data,
                model_dir: args.model_dir,
                config: args.config,
                batch: args.batch,
                rules_only: args.rules_only,
                json: args.json,
            })
        },
    },
    OperatorCommand {
        verb: Verb::Bench,
        name: "prompt",
        command: || {
            BenchPromptOptions::augment_args(clap::Command::new("prompt")).about(
                "The prompt path: bare L2 (tokenize + ONNX Runtime) per batch size over fixed \
                 batches, then the whole operator through the dynamic batcher at open-loop \
                 arrival rates",
            )
        },
        run: |matches| {
            crate::model_cli::bench_prompt(&BenchPromptOptions::from_arg_matches(matches)?)
        },
    },
];
