//! loadgen: shardgate's load generator (`run`) and mock upstream (`mock`).
//! Both run on glommio, a different runtime from the gateway they measure,
//! pinned one executor per CPU so they can be kept off the gateway's cores.

mod args;
mod client;
mod cores;
mod deadline;
mod drive;
mod mock;
mod plot;
mod readbuf;
mod report;
mod rng;
mod run;
mod stats;
mod validate;
mod workload;

use args::Flags;

/// True when `args` asks for help: asking is an answer (usage on stdout,
/// exit 0), not a bad flag (exit 2).
fn wants_help(args: &[String]) -> bool {
    args.iter().any(|a| a == "--help" || a == "-h")
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let help = match argv.first().map(String::as_str) {
        Some("mock") if wants_help(&argv[1..]) => Some(mock::USAGE.to_string()),
        Some("run") if wants_help(&argv[1..]) => Some(run::RunConfig::usage().to_string()),
        Some("help" | "--help" | "-h") => Some(format!(
            "usage:\n{}\n\n{}",
            run::RunConfig::usage(),
            mock::USAGE
        )),
        _ => None,
    };
    if let Some(text) = help {
        println!("{text}");
        return;
    }
    let result: Result<(), String> = match argv.first().map(String::as_str) {
        Some("mock") => Flags::parse(&argv[1..], &[]).and_then(|mut f| {
            let config = mock::MockConfig::from_flags(&mut f)?;
            f.finish()?;
            mock::serve(config, |addr| eprintln!("loadgen mock listening on {addr}"))
        }),
        Some("run") => Flags::parse(&argv[1..], &["json"]).and_then(|mut f| {
            let config = run::RunConfig::from_flags(&mut f)?;
            f.finish()?;
            run::run(config)
        }),
        _ => Err(format!(
            "usage:\n{}\n\n{}",
            run::RunConfig::usage(),
            mock::USAGE
        )),
    };
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(2);
    }
}
