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
mod run_config;
mod stats;
mod validate;
mod workload;

use args::Cmd;

fn main() {
    // Help (`--help`, `-h`, `help`, `run --help`, ...) prints on stdout and
    // exits 0; a bad flag, a stray argument or no command exits 2.
    let cmd = args::parse(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let result: Result<(), String> = match cmd {
        Cmd::Mock(mut f) => mock::MockConfig::from_flags(&mut f).and_then(|config| {
            mock::serve(config, |addr| eprintln!("loadgen mock listening on {addr}"))
        }),
        Cmd::Run(mut f) => run_config::RunConfig::from_flags(&mut f).and_then(run::run),
    };
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(2);
    }
}
