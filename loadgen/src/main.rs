//! loadgen: shardgate's load generator (`run`) and mock upstream (`mock`).
//! Both run on glommio, a different runtime from the gateway they measure,
//! pinned one executor per CPU so they can be kept off the gateway's cores.

mod args;
mod cores;
mod mock;
mod readbuf;
mod rng;
mod wire;

use args::Flags;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result: Result<(), String> = match argv.first().map(String::as_str) {
        Some("mock") => Flags::parse(&argv[1..], &[]).and_then(|mut f| {
            let config = mock::MockConfig::from_flags(&mut f)?;
            f.finish()?;
            mock::serve(config, |addr| eprintln!("loadgen mock listening on {addr}"))
        }),
        _ => Err(format!("usage:\n{}", mock::USAGE)),
    };
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(2);
    }
}
